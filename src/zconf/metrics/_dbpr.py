"""Deviance-based partial R² ("DBPR"): how much of D's and each gene's deviance Z-hat explains."""

from __future__ import annotations

import numpy as np

from zconf.glm import design_matrix, fit_logistic_glm, fit_nb_glm


def deviance_partial_r2_from_arrays(counts, covariates, d, z_hat, *, offset=None, device: str = "cpu") -> dict:
    """DBPR values of Z-hat beyond the baselines without Z, from arrays.

    w' = 1 − dev(D | 1, X, Z-hat) / dev(D | 1, X), McFadden's partial R² of the treatment model, and
    v'_g = 1 − dev_g(Y | 1, X, D, Z-hat) / dev_g(Y | 1, X, D) per gene. Both are fitted by IRLS to
    convergence. The NB dispersion of each gene is estimated once, on the baseline, and shared by both fits,
    so the models are nested and every v'_g lies in [0, 1].

    Parameters
    ----------
    counts
        Counts ``(n_obs, n_vars)``.
    covariates
        Covariate design without intercept ``(n_obs, n_covariates)``.
    d
        Binary treatment ``(n_obs,)``.
    z_hat
        Z-hat or probabilities ``(n_obs, n_latent)``.
    offset
        Log size factors ``(n_obs,)``, or ``None``.
    device
        Torch device of the IRLS fits.

    Returns
    -------
    Dict with ``treatment`` (w'), ``genes`` (v', ``(n_vars,)``) and ``genes_mean`` (mean of v').
    """
    n_obs = len(d)
    x = np.asarray(covariates, dtype=float).reshape(n_obs, -1)
    z = np.asarray(z_hat, dtype=float).reshape(n_obs, -1)
    d = np.asarray(d, dtype=float)
    dev_d0 = fit_logistic_glm(d, design_matrix(x).matrix, device=device).deviance[0]
    dev_d1 = fit_logistic_glm(d, design_matrix(x, z=z).matrix, device=device).deviance[0]
    base = fit_nb_glm(counts, design_matrix(x, d).matrix, offset=offset, device=device)
    full_design = design_matrix(x, d, z).matrix
    full = fit_nb_glm(counts, full_design, offset=offset, dispersion=base.dispersion, device=device)
    with np.errstate(invalid="ignore", divide="ignore"):
        genes = np.clip(1.0 - full.deviance / base.deviance, 0.0, 1.0)
    genes[~(base.deviance > 0)] = np.nan
    treatment = float(np.clip(1.0 - dev_d1 / dev_d0, 0.0, 1.0)) if dev_d0 > 0 else float("nan")
    return {"treatment": treatment, "genes": genes, "genes_mean": float(np.nanmean(genes))}


def deviance_partial_r2(model, adata=None, *, soft: bool = False) -> dict:
    """DBPR values (w' for D, v'_g per gene) of a trained :class:`~zconf.ZConf`: the same as ``model.sensitivity``.

    Kept for compatibility; the model-level analysis lives on the model (:meth:`zconf.ZConf.sensitivity`).

    Parameters
    ----------
    model
        A trained :class:`~zconf.ZConf`.
    adata
        AnnData set up like the training data; the training data when ``None``.
    soft
        Use the probabilities instead of the hard Z-hat.

    Returns
    -------
    As :func:`deviance_partial_r2_from_arrays`.
    """
    return model.sensitivity(adata, soft=soft)
