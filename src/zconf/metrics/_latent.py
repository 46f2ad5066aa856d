"""Recovery of Z and treatment leakage: arrays in, numbers out."""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import roc_auc_score

from zconf.glm import design_matrix


def _as_2d(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        msg = f"`{name}` must be 1-D or 2-D (n_obs, n_latent), got shape {array.shape}."
        raise ValueError(msg)
    return array


def _check_lengths(**arrays: np.ndarray) -> None:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        msg = f"Inputs must have the same number of cells, got {lengths}."
        raise ValueError(msg)


def pearson(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Pearson r and its p-value over the finite pairs; NaN when under 3 pairs or one side is constant.

    Examples
    --------
    >>> pearson(np.array([1.0, 2.0, 3.0, np.nan]), np.array([2.0, 4.0, 7.0, 1.0]))[0] > 0.98
    True
    """
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    r, p = stats.pearsonr(a, b)
    return float(r), float(p)


def latent_recovery(z_true, z_hat) -> dict[str, float | list]:
    """How well Z-hat (hard or probabilities) recovers the true binary Z.

    Z is identified only up to a label switch, so each Z-hat column is sign-aligned (Z-hat vs 1 − Z-hat);
    with several latents the columns are first matched to the true ones by the Hungarian method on
    abs(corr). NaNs are dropped pairwise.

    Parameters
    ----------
    z_true
        True binary Z, ``(n_obs,)`` or ``(n_obs, n_latent)``.
    z_hat
        Estimated Z-hat or probabilities, ``(n_obs,)`` or ``(n_obs, n_latent_hat)``.

    Returns
    -------
    Dict with ``abs_corr`` (mean over matched columns of abs(Pearson r), the point-biserial r),
    ``corr`` (aligned r, ≥ 0), ``pvalue``, ``accuracy`` (of Z-hat > 0.5 after alignment), ``auroc``
    (aligned), their ``raw_*`` counterparts before alignment, ``flipped`` and ``matching`` (the Z-hat
    column used for each true column), and per-column lists under ``per_latent``.

    Examples
    --------
    >>> latent_recovery([0, 1, 1, 0], [1, 0, 0, 1])["corr"]
    1.0
    """
    z_true, z_hat = _as_2d(z_true, "z_true"), _as_2d(z_hat, "z_hat")
    _check_lengths(z_true=z_true, z_hat=z_hat)
    k_true, k_hat = z_true.shape[1], z_hat.shape[1]
    corr = np.array([[pearson(z_true[:, i], z_hat[:, j])[0] for j in range(k_hat)] for i in range(k_true)])
    rows, cols = linear_sum_assignment(-np.nan_to_num(np.abs(corr), nan=0.0))
    per = []
    for i, j in zip(rows, cols, strict=True):
        t, h = z_true[:, i], z_hat[:, j]
        keep = np.isfinite(t) & np.isfinite(h)
        t, h = t[keep], h[keep]
        r, p = pearson(t, h)
        flipped = bool(np.isfinite(r) and r < 0)
        h_aligned = 1.0 - h if flipped else h
        raw_acc = float(np.mean((h > 0.5) == (t > 0.5))) if len(t) else float("nan")
        acc = float(np.mean((h_aligned > 0.5) == (t > 0.5))) if len(t) else float("nan")
        two_classes = len(np.unique(t)) == 2
        raw_auc = float(roc_auc_score(t, h)) if two_classes else float("nan")
        per.append(
            {
                "true_column": int(i),
                "hat_column": int(j),
                "corr": abs(r) if np.isfinite(r) else r,
                "raw_corr": r,
                "pvalue": p,
                "accuracy": acc,
                "raw_accuracy": raw_acc,
                "auroc": (1.0 - raw_auc if flipped else raw_auc),
                "raw_auroc": raw_auc,
                "flipped": flipped,
            }
        )

    def mean(key: str) -> float:
        values = [c[key] for c in per]
        return float(np.mean(values)) if values else float("nan")

    return {
        "abs_corr": mean("corr"),
        "corr": mean("corr"),
        "raw_corr": mean("raw_corr"),
        "pvalue": float(max(c["pvalue"] for c in per)) if per else float("nan"),
        "accuracy": mean("accuracy"),
        "raw_accuracy": mean("raw_accuracy"),
        "auroc": mean("auroc"),
        "raw_auroc": mean("raw_auroc"),
        "flipped": [c["flipped"] for c in per],
        "matching": [c["hat_column"] for c in per],
        "per_latent": per,
    }


def _residualise(values: np.ndarray, design: np.ndarray) -> np.ndarray:
    design = design_matrix(np.asarray(design, dtype=float).reshape(len(values), -1)).matrix
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    return values - design @ coef


def leakage(z_hat, d, z_true=None) -> dict[str, float]:
    """How much Z-hat tracks the treatment D instead of (or beyond) the confounder.

    Parameters
    ----------
    z_hat
        Z-hat or probabilities, ``(n_obs,)`` or ``(n_obs, n_latent)``.
    d
        Binary treatment, ``(n_obs,)``.
    z_true
        True Z where known; adds the partial correlation of Z-hat and D given Z.

    Returns
    -------
    Dict with ``corr_d`` (max over columns of abs(corr(Z-hat, D))) and, with ``z_true``, ``pcorr_d_given_z``
    (max over columns of abs(partial corr(Z-hat, D given Z)): near 0 when Z-hat carries no D beyond Z).

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    >>> d = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    >>> round(leakage(z, d, z_true=z)["pcorr_d_given_z"], 3)  # Z-hat equal to Z carries nothing of D beyond Z
    0.0
    """
    z_hat = _as_2d(z_hat, "z_hat")
    d = np.asarray(d, dtype=float).ravel()
    _check_lengths(z_hat=z_hat, d=d)
    out = {"corr_d": float(np.nanmax([abs(pearson(z_hat[:, j], d)[0]) for j in range(z_hat.shape[1])]))}
    if z_true is not None:
        z_true = _as_2d(z_true, "z_true")
        _check_lengths(z_hat=z_hat, z_true=z_true)
        d_res = _residualise(d, z_true)
        pcorr = []
        for j in range(z_hat.shape[1]):
            z_res = _residualise(z_hat[:, j], z_true)
            # Z-hat fully explained by Z (e.g. perfect recovery): no D left to leak, define the value as 0
            explained = np.nanstd(z_res) <= 1e-8 * max(np.nanstd(z_hat[:, j]), 1e-12)
            pcorr.append(0.0 if explained else abs(pearson(z_res, d_res)[0]))
        out["pcorr_d_given_z"] = float(np.nanmax(pcorr))
    return out


def covariate_r2(z_hat, covariates) -> np.ndarray:
    """R² of each Z-hat column regressed (OLS, with intercept) on the covariate design.

    Near 1 means Z-hat is (almost) a function of the measured covariates: it then adds nothing the heads
    cannot already explain with X, and it is not an unmeasured factor.

    Parameters
    ----------
    z_hat
        Z-hat or probabilities, ``(n_obs,)`` or ``(n_obs, n_latent)``.
    covariates
        Design matrix ``(n_obs, n_covariates)`` (may have 0 columns).

    Returns
    -------
    Array ``(n_latent,)``; NaN for a constant Z-hat column.
    """
    z_hat = _as_2d(z_hat, "z_hat")
    x = np.asarray(covariates, dtype=float).reshape(len(z_hat), -1)
    _check_lengths(z_hat=z_hat, covariates=x)
    out = []
    for j in range(z_hat.shape[1]):
        column = z_hat[:, j]
        total = np.sum((column - column.mean()) ** 2)
        out.append(float("nan") if total <= 0 else 1.0 - np.sum(_residualise(column, x) ** 2) / total)
    return np.array(out)
