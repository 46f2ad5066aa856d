"""Quasi-likelihood dispersions from bias-adjusted NB deviances (after edgeR v4's ``glmQLFit(legacy=FALSE)``).

The QL dispersion of a gene is its residual deviance over its residual df. At small counts an NB unit deviance
is far from the χ²₁ that this assumes: its mean is below 1 (near 2μ for μ → 0) and its spread differs, so the
ratio both underestimates the gene's dispersion and is no scaled χ² with the residual df, which misleads the
empirical-Bayes prior that every gene is squeezed to (Chen, Chen, Lun, Baldoni & Smyth 2024, edgeR 4.0,
Nucleic Acids Res. 53:gkaf018). Following edgeR v4, each unit deviance ``d_i`` is matched to a scaled χ² by
its exact mean ``m_i`` and variance ``v_i`` under the fitted NB: ``d_i ≈ (v_i / 2m_i) χ²_{k_i}`` with
``k_i = 2m_i² / v_i``. The adjusted deviance ``Σ (2m_i / v_i) d_i`` is then a sum of χ² variables with
``Σ k_i (1 - h_i)`` degrees of freedom (``h_i`` the leverage of observation ``i``), and the QL dispersion is
their ratio, with that fractional df carried into the prior and the F-test.

edgeR computes ``m_i`` and ``v_i`` from Chebyshev fits in C; here they are exact sums over the NB
probabilities for small means, and the gamma limit with shape ``1 / (φ + 1/μ)`` above :data:`EXACT_MAX_MEAN`
or where the sum would run over more than :data:`MAX_EXACT_TERMS` counts
(the NB tends to a gamma of that squared coefficient of variation; at the switch the two agree within 2%,
see ``tests/analysis/test_ql_deviance.py``). Arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import special

from zconf.glm import nb_unit_deviance

#: Means up to this are given exact deviance moments (a sum over the NB probabilities); above, the gamma limit.
EXACT_MAX_MEAN = 100.0
#: Observations whose complementary leverage ``1 - h`` is below this are fitted exactly and carry no residual
#: information: they drop out of both sums (edgeR's ``thresholdzero``).
MIN_COMPLEMENTARY_LEVERAGE = 1e-4
#: Most count values an exact sum runs over; an entry whose count range (:func:`_count_range`) lies beyond (a large
#: dispersion, e.g. φ = 10 at μ = 100) gets the gamma limit instead.
MAX_EXACT_TERMS = 5000
#: Most (entry, count value) pairs held at once by the exact sums (8 bytes each: 32 MB).
_BLOCK_VALUES = 4_000_000


def _unit_deviance(y: np.ndarray, mu: np.ndarray, dispersion: np.ndarray) -> np.ndarray:
    """:func:`zconf.glm.nb_unit_deviance` (the IRLS fits' own) on numpy arrays that broadcast together."""
    y, mu, dispersion = (torch.as_tensor(np.array(v, dtype=float)) for v in (y, mu, dispersion))
    return nb_unit_deviance(y, mu, dispersion).numpy()


def _gamma_limit_moments(mu: np.ndarray, dispersion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of a gamma unit deviance with shape ``k = 1 / (φ + 1/μ)`` (the NB's squared CV).

    With ``u = y/μ ~ Gamma(k, 1/k)`` the deviance is ``2k (u - 1 - log u)``, so its mean is
    ``2k (log k - ψ(k))`` and its variance ``4k² (ψ'(k) - 1/k)``.
    """
    k = 1.0 / (dispersion + 1.0 / mu)
    mean = 2.0 * k * (np.log(k) - special.digamma(k))
    var = 4.0 * k**2 * (special.polygamma(1, k) - 1.0 / k)
    return mean, var


def _count_range(mu: np.ndarray, dispersion: np.ndarray) -> np.ndarray:
    """A count beyond the NB's 1 - 1e-10 quantile: 10 standard deviations plus the gamma tail of the dispersion.

    Closed form, so that it costs nothing beside the sums (scipy's ``nbinom.isf`` took 5 s for 100,000 entries).
    Above the exact quantile for every dispersion from 0 to 100 and mean from 0.01 to 100
    (``tests/analysis/test_ql_deviance.py``); the mass beyond changes the moments by less than 1e-6.
    """
    return np.ceil(mu + 10.0 * np.sqrt(mu + dispersion * mu**2) + 23.0 * dispersion * mu + 15.0)


def _exact_moments(mu: np.ndarray, dispersion: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the NB unit deviance by summing over counts ``0..top`` (:func:`_count_range`)."""
    mean, var = np.empty_like(mu), np.empty_like(mu)
    order = np.argsort(top, kind="stable")
    start = 0
    while start < len(order):
        width = int(top[order[start]]) + 2
        stop = start + max(1, _BLOCK_VALUES // width)
        idx = order[start:stop]
        width = int(top[idx].max()) + 2
        m, a = mu[idx], dispersion[idx]
        theta = (1.0 / a)[:, None]
        y = np.arange(width, dtype=float)[None, :]
        # the NB log-probabilities written out, log Γ(y + θ) - log Γ(θ) as a running sum of log(θ + k): scipy's
        # nbinom.pmf was measured 3x slower on these grids
        rising = np.zeros((len(idx), width))
        np.cumsum(np.log(theta + y[:, :-1]), axis=1, out=rising[:, 1:])
        log_prob = rising - special.gammaln(y + 1.0)
        log_prob += theta * np.log(theta / (theta + m[:, None])) + special.xlogy(y, m[:, None] / (theta + m[:, None]))
        prob = np.exp(log_prob)
        d = _unit_deviance(y, m[:, None], a[:, None])
        first = np.sum(prob * d, axis=1)
        mean[idx] = first
        var[idx] = np.sum(prob * d**2, axis=1) - first**2
        start = stop
    return mean, var


def deviance_moments(mu: np.ndarray, dispersion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the NB unit deviance ``d(y; μ, φ)`` for ``y ~ NB(μ, φ)``, elementwise.

    Parameters
    ----------
    mu
        Fitted means (any shape), positive.
    dispersion
        NB dispersions φ (variance ``μ + φμ²``), broadcastable to ``mu``, positive.

    Returns
    -------
    Mean and variance arrays with the shape of ``mu``. A Poisson deviance (φ → 0) has mean ≈ 2μ for small μ
    and tends to the χ²₁ moments (1, 2) as μ grows.
    """
    mu = np.asarray(mu, dtype=float)
    dispersion = np.broadcast_to(np.asarray(dispersion, dtype=float), mu.shape)
    flat_mu, flat_a = mu.ravel(), np.clip(dispersion.ravel(), 1e-8, None)
    mean, var = _gamma_limit_moments(flat_mu, flat_a)
    top = np.full(flat_mu.shape, np.inf)
    small = flat_mu <= EXACT_MAX_MEAN
    top[small] = _count_range(flat_mu[small], flat_a[small])
    exact = small & (top <= MAX_EXACT_TERMS)
    if exact.any():
        mean[exact], var[exact] = _exact_moments(flat_mu[exact], flat_a[exact], top[exact])
    return mean.reshape(mu.shape), var.reshape(mu.shape)


def leverages(design: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Diagonal of the weighted hat matrix ``W½ X (XᵀWX)⁻¹ XᵀW½`` for every gene.

    ``design`` ``(n_obs, n_params)``, ``weight`` ``(n_obs, n_genes)`` IRLS weights; returns ``(n_obs, n_genes)``.
    """
    gram = np.einsum("ip,ig,iq->gpq", design, weight, design)
    inverse = np.linalg.pinv(gram)
    return weight * np.einsum("ip,gpq,iq->ig", design, inverse, design)


def adjusted_ql_dispersion(
    y: np.ndarray, mu: np.ndarray, design: np.ndarray, dispersion: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-adjusted QL dispersion and its residual df per gene (edgeR v4's adjusted deviance and df).

    Parameters
    ----------
    y
        Counts ``(n_obs, n_genes)``.
    mu
        Fitted means of the full model ``(n_obs, n_genes)``.
    design
        Design matrix ``(n_obs, n_params)`` of that fit.
    dispersion
        NB dispersions of that fit ``(n_genes,)``.

    Returns
    -------
    ``s2`` (adjusted deviance over adjusted df) and the adjusted df, both ``(n_genes,)``. The df are
    fractional: ``n_obs - n_params`` at large counts, and they can exceed it near a mean of 1, where a unit
    deviance varies less than a χ²₁ of its mean would. A gene whose df are 0 gets ``s2`` NaN.

    Examples
    --------
    >>> from zconf.glm import design_matrix
    >>> rng = np.random.default_rng(0)
    >>> design = design_matrix(np.zeros((8, 0))).matrix  # the intercept alone
    >>> mu = np.full((8, 2), [1.0, 500.0])
    >>> y = rng.poisson(mu).astype(float)
    >>> s2, df = adjusted_ql_dispersion(y, mu, design, np.full(2, 1e-6))
    >>> np.round(df, 1).tolist()
    [13.5, 7.0]
    """
    y, mu = np.asarray(y, dtype=float), np.asarray(mu, dtype=float)
    dispersion = np.broadcast_to(np.asarray(dispersion, dtype=float), (mu.shape[1],))[None, :]
    mean, var = deviance_moments(mu, dispersion)
    var = np.maximum(var, 1e-12)
    scale = 2.0 * mean / var  # d / scale-factor: the deviance in units of its matched χ²
    k = 2.0 * mean**2 / var  # that χ²'s degrees of freedom
    complement = 1.0 - leverages(np.asarray(design, dtype=float), mu / (1.0 + dispersion * mu))
    keep = complement > MIN_COMPLEMENTARY_LEVERAGE
    deviance = np.sum(np.where(keep, scale * _unit_deviance(y, mu, dispersion), 0.0), axis=0)
    df = np.sum(np.where(keep, k * complement, 0.0), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = np.where(df > 1e-8, deviance / df, np.nan)
    return s2, df
