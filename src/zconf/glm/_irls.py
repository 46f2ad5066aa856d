"""Vectorised IRLS for per-gene negative binomial GLMs and a logistic GLM, in torch (CPU or GPU).

All genes of a chunk are fitted at once: the weighted normal equations of every gene are formed with one
``einsum`` and solved as a batch. Arrays in, arrays out; no AnnData.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

#: Linear predictors are clamped to this range during IRLS (exp(±30) is far outside count data).
ETA_CLAMP = 30.0
#: Bounds of the NB dispersion α (Var = μ + α μ²) when it is estimated.
DISPERSION_BOUNDS = (1e-8, 1e4)


@dataclass
class GLMFit:
    """Result of a batched GLM fit; arrays are numpy, one row per gene (or one row for the logistic fit)."""

    coef: np.ndarray  # (n_genes, n_params)
    se: np.ndarray  # (n_genes, n_params), from the expected information
    robust_se: np.ndarray  # (n_genes, n_params), sandwich (HC0)
    deviance: np.ndarray  # (n_genes,)
    dispersion: np.ndarray  # (n_genes,), NaN for the logistic fit
    converged: np.ndarray  # (n_genes,) bool
    n_iter: int


def _as_tensor(values, device, dtype=torch.float64) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.to(device=device, dtype=dtype)
    if sparse.issparse(values):
        values = values.toarray()
    return torch.as_tensor(np.asarray(values), device=device, dtype=dtype)


def nb_unit_deviance(y: torch.Tensor, mu: torch.Tensor, dispersion: torch.Tensor) -> torch.Tensor:
    """NB unit deviance 2·[y log(y/μ) − (y + θ) log((y + θ)/(μ + θ))], θ = 1/α; ≥ 0, 0 at μ = y."""
    theta = 1.0 / dispersion
    term_y = torch.where(y > 0, y * torch.log(y / mu), torch.zeros_like(y))
    return 2.0 * (term_y - (y + theta) * (torch.log(y + theta) - torch.log(mu + theta)))


def _weighted_gram(design: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """X^T diag(w_g) X for every gene g as one GEMM: (n_genes, n_obs) @ (n_obs, n_params²).

    Measured: ~100x faster than ``einsum("np,ng,nq->gpq")`` for 10,000 cells x 512 genes on 2 CPU cores.
    """
    n_params = design.shape[1]
    outer = (design[:, :, None] * design[:, None, :]).reshape(design.shape[0], n_params * n_params)
    # outer.T @ weight reads both operands row-major; weight.T @ outer was measured 1.6x slower on CPU
    return (outer.T @ weight).T.reshape(-1, n_params, n_params)


def _sandwich(design: torch.Tensor, bread_inv: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    meat = _weighted_gram(design, score**2)  # (n_genes, n_params, n_params)
    cov = bread_inv @ meat @ bread_inv
    return torch.sqrt(torch.diagonal(cov, dim1=-2, dim2=-1).clamp_min(0))


def _solve(xtwx: torch.Tensor, xtwz: torch.Tensor) -> torch.Tensor:
    # A tiny ridge keeps exactly collinear columns (e.g. a constant covariate) solvable without changing
    # well-posed fits beyond ~1e-10.
    scale = torch.diagonal(xtwx, dim1=-2, dim2=-1).mean(-1, keepdim=True).clamp_min(1e-12)
    eye = torch.eye(xtwx.shape[-1], dtype=xtwx.dtype, device=xtwx.device)
    return torch.linalg.solve(xtwx + 1e-10 * scale.unsqueeze(-1) * eye, xtwz.unsqueeze(-1)).squeeze(-1)


def _nb_irls(y, design, offset, dispersion, beta, max_iter, tol, prior=None):
    """IRLS for fixed dispersions; returns coefficients, the last μ and a per-gene convergence flag.

    ``prior`` ``(n_obs, 1)`` are prior weights of the cells (``None``: all 1), which multiply the IRLS weights.
    """
    n_genes = y.shape[1]
    converged = torch.zeros(n_genes, dtype=torch.bool, device=y.device)
    if beta is None:  # start from μ0 = (y + ȳ)/2, as statsmodels does
        mu = (y + y.mean(0, keepdim=True)) / 2 + 1e-8
        eta = torch.log(mu)
    else:
        eta = (offset[:, None] + design @ beta.T).clamp(-ETA_CLAMP, ETA_CLAMP)
        mu = torch.exp(eta)
    linear = eta - offset[:, None]  # the linear predictor without the offset
    # The working response z = linear + (y - μ)/μ and weight w = μ/(1 + αμ) enter only as w and w·z =
    # w·linear + (y - μ)/(1 + αμ). Every (n_obs, n_genes) step is written in place where it can be, and the
    # products put the long axis inside (X^T (w z), not (w z)^T X): measured on 10,000 cells x 512 genes
    # (float64, 2 CPU cores), one iteration went from 0.45 s to about 0.17 s.
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
        denom = torch.mul(mu, dispersion).add_(1.0)  # (n_obs, n_genes)
        weight = torch.div(mu, denom)
        weighted_z = torch.sub(y, mu).div_(denom).addcmul_(weight, linear)
        if prior is not None:
            weight.mul_(prior)
            weighted_z.mul_(prior)
        xtwx = _weighted_gram(design, weight)
        xtwz = (design.T @ weighted_z).T
        new_beta = _solve(xtwx, xtwz)
        if beta is not None:
            change = (new_beta - beta).abs().amax(-1) / (beta.abs().amax(-1) + 1e-3)
            converged = change < tol
        beta = new_beta
        eta = torch.add(design @ beta.T, offset[:, None]).clamp_(-ETA_CLAMP, ETA_CLAMP)
        linear = eta - offset[:, None]
        mu = torch.exp(eta)
        if bool(converged.all()):
            break
    return beta, mu, converged, n_iter


def _nb_dispersion_ml(y, mu, dispersion, n_steps: int = 25, tol: float = 1e-6, prior=None):
    """Per-gene ML of the dispersion given μ: Newton steps on log θ (θ = 1/α), vectorised over genes.

    Stops when no gene's log θ moves by more than ``tol`` (from a moment start, 5-8 steps instead of 25; each
    step evaluates digamma and trigamma over the whole chunk, the cost of this function).
    """
    lo, hi = DISPERSION_BOUNDS
    log_theta = torch.log(1.0 / dispersion)
    prior = torch.ones_like(y[:, :1]) if prior is None else prior
    for _ in range(n_steps):
        theta = torch.exp(log_theta)
        t = theta[None, :]
        grad = (
            prior
            * (torch.digamma(y + t) - torch.digamma(t) + torch.log(t) + 1 - torch.log(t + mu) - (y + t) / (t + mu))
        ).sum(0)
        hess = (
            prior * (torch.polygamma(1, y + t) - torch.polygamma(1, t) + 1 / t - 2 / (t + mu) + (y + t) / (t + mu) ** 2)
        ).sum(0)
        g = theta * grad  # d ℓ / d log θ
        h = theta**2 * hess + theta * grad
        step = torch.where(h < 0, -g / h, torch.sign(g) * 0.5)
        updated = (log_theta + step.clamp(-2.0, 2.0)).clamp(float(np.log(1 / hi)), float(np.log(1 / lo)))
        moved = float((updated - log_theta).abs().max()) if updated.numel() else 0.0
        log_theta = updated
        if moved < tol:
            break
    return 1.0 / torch.exp(log_theta)


def _nb_dispersion_pearson(y, mu, n_params: int, dispersion, n_steps: int = 30, prior=None):
    """Per-gene dispersion solving the Pearson equation Σ (y − μ)² / (μ + α μ²) = n_obs − n_params.

    With ``prior`` weights ``(n_obs, 1)``, each cell's term is weighted and ``n_obs`` is their sum.

    A quasi-likelihood estimator: consistent, and ~20x cheaper than ML on large data because it needs no
    digamma/trigamma over every count (measured: 10,000 cells x 2,000 genes, ML 147 s vs. Pearson 7 s).
    Newton steps on log α; genes that are not overdispersed get the lower bound.
    """
    lo, hi = DISPERSION_BOUNDS
    dof = max((y.shape[0] if prior is None else float(prior.sum())) - n_params, 1)
    resid2 = (y - mu) ** 2 if prior is None else (y - mu) ** 2 * prior
    log_alpha = torch.log(dispersion.clamp(lo, hi))
    for _ in range(n_steps):
        alpha_mu = mu * torch.exp(log_alpha)  # αμ, (n_obs, n_genes)
        ratio = torch.div(resid2, mu).div_(alpha_mu + 1.0)  # (y − μ)² / (μ + αμ²)
        f = ratio.sum(0) - dof
        df = -(ratio.mul_(alpha_mu).div_(alpha_mu.add_(1.0))).sum(0)  # d f / d log α (buffers reused in place)
        step = torch.where(df < 0, -f / df, torch.zeros_like(f)).clamp(-3.0, 3.0)
        log_alpha = (log_alpha + step).clamp(float(np.log(lo)), float(np.log(hi)))
        if float(step.abs().max()) < 1e-8:
            break
    poisson_like = (resid2 / mu).sum(0) <= dof
    return torch.where(poisson_like, torch.full_like(log_alpha, lo), torch.exp(log_alpha))


def fit_nb_glm(
    counts,
    design,
    *,
    offset=None,
    dispersion=None,
    max_iter: int = 100,
    tol: float = 1e-6,
    dispersion_rounds: int = 1,
    dispersion_method: str = "pearson",
    gene_chunk: int = 512,
    device: str | torch.device = "cpu",
    weights=None,
) -> GLMFit:
    """Fit one NB GLM with log link per gene (column of ``counts``) on a shared design, by IRLS.

    Parameters
    ----------
    counts
        Counts ``(n_obs, n_genes)``: dense array, tensor or scipy sparse matrix (densified ``gene_chunk``
        columns at a time).
    design
        Design matrix ``(n_obs, n_params)``; include the intercept column yourself.
    offset
        Log offset ``(n_obs,)`` (log size factors); zeros when ``None``.
    dispersion
        Fixed NB dispersions α ``(n_genes,)``; ``None`` estimates them, alternating ``dispersion_rounds``
        times with the coefficient fit.
    max_iter, tol
        IRLS iteration cap and relative coefficient-change tolerance (1e-6: coefficients to ~6 digits, far
        below their standard errors; measured 25% faster than 1e-8 on 10,000 cells x 2,000 genes).
    dispersion_rounds
        Alternations of dispersion estimation and IRLS when ``dispersion`` is ``None``.
    dispersion_method
        ``"pearson"`` (default; the quasi-likelihood Pearson equation, fast) or ``"ml"`` (maximum likelihood,
        exact but ~20x slower on large data).
    gene_chunk
        Genes fitted together (bounds memory at ~6 × n_obs × gene_chunk doubles).
    device
        Torch device.
    weights
        Prior weights of the cells ``(n_obs,)``, positive (``None``: all 1): each cell's log-likelihood term is
        multiplied by its weight, in the coefficients, the dispersion, the deviance and ``se`` (statsmodels'
        ``freq_weights``: as if each cell were repeated ``weight`` times); ``robust_se`` sums the squared weighted
        scores (statsmodels' ``var_weights`` with HC0), the sandwich for weights that are not counts of cells.
        Weights of mean 1 that give every sample the same total (:func:`zconf.glm.sample_weights`) make the
        estimate count each sample alike; the standard errors still count cells.

    Returns
    -------
    :class:`GLMFit`; ``se`` from the expected information (as statsmodels' IRLS), ``robust_se`` the HC0
    sandwich.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> from zconf.glm import design_matrix
    >>> design = design_matrix(rng.integers(0, 2, 500)).matrix  # [1, x]
    >>> counts = rng.poisson(np.exp(1.0 + 0.5 * design[:, 1:2]), size=(500, 3))
    >>> fit = fit_nb_glm(counts, design)
    >>> np.round(fit.coef[:, 1], 1)  # the effect of the second column, for each of the 3 genes
    array([0.5, 0.5, 0.5])
    """
    if dispersion_method not in ("pearson", "ml"):
        msg = f"`dispersion_method` must be 'pearson' or 'ml', got {dispersion_method!r}."
        raise ValueError(msg)
    x = _as_tensor(design, device)
    n_obs = x.shape[0]
    off = torch.zeros(n_obs, dtype=x.dtype, device=device) if offset is None else _as_tensor(offset, device)
    prior = None if weights is None else _checked_weights(weights, n_obs, device)
    if sparse.issparse(counts):
        # column chunks are densified one at a time (CSC slices columns cheaply): the full matrix never is
        counts = sparse.csc_matrix(counts)
    elif not isinstance(counts, torch.Tensor):
        counts = np.asarray(counts)
    n_genes = counts.shape[1]
    parts: dict[str, list] = {k: [] for k in ("coef", "se", "robust_se", "deviance", "dispersion", "converged")}
    n_iter_max = 0
    for start in range(0, n_genes, gene_chunk):
        y = _as_tensor(counts[:, start : start + gene_chunk], device)
        if dispersion is None:
            mean = y.mean(0)
            moments = ((y.var(0) - mean) / mean.clamp_min(1e-8) ** 2).clamp(*DISPERSION_BOUNDS)
            alpha = torch.where(mean > 0, moments, torch.ones_like(mean))
            # the first fit only feeds the dispersion estimate: a loose tolerance is enough (measured: 9-10
            # IRLS iterations down to 4-5 per chunk, the final refit converges to `tol` from there)
            beta, mu, converged, n_iter = _nb_irls(y, x, off, alpha, None, max_iter, max(tol, 1e-3), prior)
            for _ in range(dispersion_rounds):
                if dispersion_method == "ml":
                    alpha = _nb_dispersion_ml(y, mu, alpha, prior=prior)
                else:
                    alpha = _nb_dispersion_pearson(y, mu, x.shape[1], alpha, prior=prior)
                beta, mu, converged, n_iter = _nb_irls(y, x, off, alpha, beta, max_iter, tol, prior)
        else:
            alpha = _as_tensor(dispersion, device)[start : start + gene_chunk]
            beta, mu, converged, n_iter = _nb_irls(y, x, off, alpha, None, max_iter, tol, prior)
        n_iter_max = max(n_iter_max, n_iter)
        weight = mu / (1.0 + alpha * mu)
        score = (y - mu) / (1.0 + alpha * mu)
        deviance = nb_unit_deviance(y, mu, alpha)
        if prior is not None:
            weight, score, deviance = weight * prior, score * prior, deviance * prior
        xtwx = _weighted_gram(x, weight)
        bread_inv = torch.linalg.pinv(xtwx, hermitian=True)
        se = torch.sqrt(torch.diagonal(bread_inv, dim1=-2, dim2=-1).clamp_min(0))
        parts["coef"].append(beta)
        parts["se"].append(se)
        parts["robust_se"].append(_sandwich(x, bread_inv, score))
        parts["deviance"].append(deviance.sum(0))
        parts["dispersion"].append(alpha)
        parts["converged"].append(converged)
    out = {k: torch.cat(v).cpu().numpy() for k, v in parts.items()}
    return GLMFit(**out, n_iter=n_iter_max)


def _checked_weights(weights, n_obs: int, device) -> torch.Tensor:
    """Prior weights as an ``(n_obs, 1)`` tensor, after a clear error for a wrong shape or a non-positive value."""
    values = np.asarray(weights, dtype=float)
    if values.shape != (n_obs,):
        msg = f"`weights` must have shape ({n_obs},) (one per cell), got {values.shape}."
        raise ValueError(msg)
    if not (np.isfinite(values).all() and (values > 0).all()):
        msg = "`weights` must be finite and positive."
        raise ValueError(msg)
    return _as_tensor(values, device)[:, None]


def sample_weights(samples: np.ndarray) -> np.ndarray:
    """Cell weights that give every sample the same total, with mean 1 over the cells.

    When whole samples were treated, a cell-level fit weights each sample by its number of cells, and samples
    whose cell numbers differ between the arms (a drug that kills cells, a slice that yields fewer) shift the
    arms' mix of donors, states and tissue like a confounder. With these weights the arms are compared sample by
    sample, at the price of a large weight on a sample of few cells; ``ZConf.treatment_effects(weight_samples=True)``
    gives what was measured with them.

    Examples
    --------
    >>> sample_weights(np.array(["a", "a", "a", "b"]))
    array([0.66666667, 0.66666667, 0.66666667, 2.        ])
    """
    _, codes, counts = np.unique(np.asarray(samples), return_inverse=True, return_counts=True)
    per_cell = 1.0 / counts[codes]
    return per_cell / per_cell.mean()


def fit_logistic_glm(
    target, design, *, max_iter: int = 100, tol: float = 1e-10, device: str | torch.device = "cpu"
) -> GLMFit:
    """Fit a logistic GLM of a binary ``target`` ``(n_obs,)`` on ``design`` ``(n_obs, n_params)`` by IRLS.

    Returns
    -------
    :class:`GLMFit` with one row; ``deviance`` is −2 × the log-likelihood, ``dispersion`` NaN.
    """
    x = _as_tensor(design, device)
    d = _as_tensor(target, device).reshape(-1)
    beta = torch.zeros(x.shape[1], dtype=x.dtype, device=device)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
        eta = (x @ beta).clamp(-ETA_CLAMP, ETA_CLAMP)
        p = torch.sigmoid(eta)
        w = (p * (1 - p)).clamp_min(1e-10)
        working = eta + (d - p) / w
        new_beta = _solve((x.T * w) @ x, (x.T * w) @ working)
        change = (new_beta - beta).abs().max() / (beta.abs().max() + 1e-3)
        beta = new_beta
        if change < tol:
            converged = True
            break
    eta = (x @ beta).clamp(-ETA_CLAMP, ETA_CLAMP)
    p = torch.sigmoid(eta)
    w = p * (1 - p)
    bread_inv = torch.linalg.pinv((x.T * w) @ x, hermitian=True)
    se = torch.sqrt(torch.diagonal(bread_inv).clamp_min(0))
    robust = _sandwich(x, bread_inv[None], (d - p)[:, None])[0]
    deviance = -2.0 * (d * torch.nn.functional.logsigmoid(eta) + (1 - d) * torch.nn.functional.logsigmoid(-eta)).sum()
    return GLMFit(
        coef=beta[None].cpu().numpy(),
        se=se[None].cpu().numpy(),
        robust_se=robust[None].cpu().numpy(),
        deviance=np.array([deviance.item()]),
        dispersion=np.array([np.nan]),
        converged=np.array([converged]),
        n_iter=n_iter,
    )
