"""The exact Bayes posterior of Z under the simulator's true parameters: the limit any Z-hat can reach."""

from __future__ import annotations

import itertools

import numpy as np
from anndata import AnnData
from scipy.special import gammaln, logsumexp


def _nb_logpmf(y: np.ndarray, log_mean: np.ndarray, dispersion: np.ndarray) -> np.ndarray:
    theta = 1.0 / dispersion
    log_theta_mean = np.logaddexp(np.log(theta), log_mean)
    return (
        gammaln(y + theta)
        - gammaln(theta)
        - gammaln(y + 1.0)
        + theta * (np.log(theta) - log_theta_mean)
        + y * (log_mean - log_theta_mean)
    )


def bayes_posterior(adata: AnnData, *, counts_layer: str = "counts", library_offset: bool = False) -> np.ndarray:
    """P(Z_j = 1 | X, D, Y) under the true parameters of :func:`~zconf.data.simulate`.

    Enumerates the 2**n_latent states of Z (two points for one latent) and combines the prior, the
    treatment model and the NB likelihood exactly.

    Parameters
    ----------
    adata
        Output of :func:`~zconf.data.simulate` (reads ``uns["simulation"]``, the ``x*`` and ``treatment``
        columns, ``var["dispersion_true"]`` and the counts).
    counts_layer
        Layer holding the counts.
    library_offset
        Condition on each cell's observed library, as ZConf's default head does (``use_observed_lib_size``
        with ``compositional_latent``): a state's means are the library times the softmax over genes of the
        true log-means, so the library's own information about Z is not used. The limit of a model that takes
        the library as given.

    Returns
    -------
    Marginal posterior probabilities, ``(n_obs, n_latent)``.

    Examples
    --------
    >>> import zconf
    >>> adata = zconf.data.simulate("seed", n_obs=300, n_vars=50)
    >>> posterior = zconf.data.bayes_posterior(adata)
    >>> posterior.shape
    (300, 1)
    """
    if "simulation" not in adata.uns:
        msg = "adata.uns['simulation'] not found; bayes_posterior needs data from zconf.data.simulate."
        raise KeyError(msg)
    sim = adata.uns["simulation"]
    params = sim["params"]
    d_cov = int(params["n_covariates"])
    k = int(params["n_latent"])
    x = adata.obs[[f"x{j}" for j in range(d_cov)]].to_numpy(dtype=float)
    d = adata.obs["treatment"].to_numpy(dtype=float)
    counts = adata.layers[counts_layer]
    y = np.asarray(counts.toarray() if hasattr(counts, "toarray") else counts, dtype=float)
    beta1, gamma1 = np.asarray(sim["beta1"]), np.asarray(sim["gamma1"])
    beta2, gamma2 = np.asarray(sim["beta2"]), np.asarray(sim["gamma2"])
    dispersion = adata.var["dispersion_true"].to_numpy(dtype=float)
    p_z = float(params["p_z"])
    base_d = x @ beta1
    base_y = float(params.get("intercept", 0.0)) + np.column_stack([x, d]) @ beta2
    log_library = np.log(np.clip(y.sum(axis=1, keepdims=True), 1.0, None))
    states = np.array(list(itertools.product([0.0, 1.0], repeat=k)))  # (n_states, n_latent)
    log_joint = []
    for state in states:
        logit = base_d + state @ gamma1
        log_p_d = -np.logaddexp(0.0, -np.where(d == 1, logit, -logit))
        log_mean = base_y + state @ gamma2
        if library_offset:
            log_mean = log_library + log_mean - logsumexp(log_mean, axis=1, keepdims=True)
        log_p_y = _nb_logpmf(y, log_mean, dispersion).sum(axis=1)
        log_prior = np.sum(state * np.log(p_z) + (1 - state) * np.log1p(-p_z))
        log_joint.append(log_prior + log_p_d + log_p_y)
    log_joint = np.column_stack(log_joint)  # (n_obs, n_states)
    posterior = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    return posterior @ states
