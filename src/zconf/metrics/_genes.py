"""Per-gene and treatment-prediction diagnostics."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


def per_gene_correlation(pred, truth) -> np.ndarray:
    """Pearson r of each column of ``pred`` with the same column of ``truth``, vectorised.

    Used for predicted log-means against the true log-means. Constant columns give NaN; NaNs in the
    inputs are ignored pairwise per column.

    Parameters
    ----------
    pred, truth
        Arrays of the same shape ``(n_obs, n_vars)``.

    Returns
    -------
    Array ``(n_vars,)`` of correlations.

    Examples
    --------
    >>> import numpy as np
    >>> pred = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]])
    >>> truth = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]])
    >>> per_gene_correlation(pred, truth)
    array([ 1., nan])
    """
    pred, truth = np.asarray(pred, dtype=float), np.asarray(truth, dtype=float)
    if pred.shape != truth.shape:
        msg = f"`pred` and `truth` must have the same shape, got {pred.shape} and {truth.shape}."
        raise ValueError(msg)
    if pred.ndim == 1:
        pred, truth = pred[:, None], truth[:, None]
    keep = np.isfinite(pred) & np.isfinite(truth)
    n = keep.sum(axis=0)
    p = np.where(keep, pred, 0.0)
    t = np.where(keep, truth, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_mean, t_mean = p.sum(0) / n, t.sum(0) / n
        p_c = np.where(keep, p - p_mean, 0.0)
        t_c = np.where(keep, t - t_mean, 0.0)
        cov = (p_c * t_c).sum(0)
        denom = np.sqrt((p_c**2).sum(0) * (t_c**2).sum(0))
        r = cov / denom
    r[~np.isfinite(r) | (denom <= 1e-12 * np.maximum(1.0, np.abs(cov)))] = np.nan
    return np.clip(r, -1.0, 1.0)


def treatment_auroc_from_arrays(covariates, d, z_hat, *, random_state: int = 0) -> dict[str, float]:
    """In-sample AUROC of D from X alone and from [X, Z-hat], by logistic regression.

    Parameters
    ----------
    covariates
        Design matrix X, ``(n_obs, n_covariates)`` (may have 0 columns).
    d
        Binary treatment ``(n_obs,)``.
    z_hat
        Z-hat ``(n_obs, n_latent)`` or ``(n_obs,)``.
    random_state
        Seed of the solver.

    Returns
    -------
    Dict with ``auroc_x``, ``auroc_x_zhat`` and ``improvement`` (their difference).
    """
    x = np.asarray(covariates, dtype=float).reshape(len(d), -1)
    z = np.asarray(z_hat, dtype=float).reshape(len(d), -1)
    d = np.asarray(d, dtype=float).ravel()
    if len(np.unique(d)) != 2:
        msg = "`d` must contain both treatment levels to compute an AUROC."
        raise ValueError(msg)

    def auc(features: np.ndarray) -> float:
        if features.shape[1] == 0:
            return 0.5
        fit = LogisticRegression(C=1e6, max_iter=1000, random_state=random_state).fit(features, d)
        return float(roc_auc_score(d, fit.decision_function(features)))

    auroc_x, auroc_xz = auc(x), auc(np.column_stack([x, z]))
    return {"auroc_x": auroc_x, "auroc_x_zhat": auroc_xz, "improvement": auroc_xz - auroc_x}


def treatment_auroc(model, adata=None) -> dict[str, float]:
    """AUROC of D from X alone versus from [X, Z-hat] for a trained :class:`~zconf.ZConf`.

    Parameters
    ----------
    model
        A trained :class:`~zconf.ZConf`.
    adata
        AnnData registered with the model; the training data when ``None``.

    Returns
    -------
    Dict with ``auroc_x``, ``auroc_x_zhat`` and ``improvement``.
    """
    covariates, d = model.get_design(adata)
    return treatment_auroc_from_arrays(covariates, d, model.get_latent_representation(adata))
