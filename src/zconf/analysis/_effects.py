"""Per-cell treatment effects: one NB GLM per gene on [1, X, D, Z], as a function of the data and Z."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from zconf.glm import Design, GLMFit, RegressionData, fit_nb_glm


def _column_sums(matrix) -> np.ndarray:
    """Column sums of a dense or sparse matrix as a flat float array (sparse input stays sparse)."""
    return np.asarray(matrix.sum(0), dtype=float).ravel()


def _lrt_pvalues(counts, design: Design, offset, fit: GLMFit, genes: np.ndarray, device, weights=None) -> np.ndarray:
    """Likelihood-ratio p-values of the D coefficient for the selected genes (same dispersions, 1 df)."""
    columns = np.flatnonzero(genes)
    reduced = fit_nb_glm(
        counts[:, columns],
        design.without("treatment").matrix,
        offset=offset,
        dispersion=fit.dispersion[columns],
        device=device,
        weights=weights,
    )
    statistic = np.clip(reduced.deviance - fit.deviance[columns], 0.0, None)
    return stats.chi2.sf(statistic, df=1)


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values; NaNs stay NaN and are not counted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = ok.sum()
    if m == 0:
        return out
    order = np.argsort(p[ok])
    ranked = p[ok][order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    values = np.empty(m)
    values[order] = adjusted
    out[ok] = values
    return out


@dataclass(frozen=True)
class _ArmCounts:
    """Cells with non-zero counts and mean counts per gene, in each treatment arm."""

    nonzero_treated: np.ndarray
    nonzero_control: np.ndarray
    mean_treated: np.ndarray
    mean_control: np.ndarray

    @classmethod
    def of(cls, counts, treated: np.ndarray) -> _ArmCounts:
        return cls(
            nonzero_treated=_column_sums(counts[treated] > 0),
            nonzero_control=_column_sums(counts[~treated] > 0),
            mean_treated=_column_sums(counts[treated]) / max(treated.sum(), 1),
            mean_control=_column_sums(counts[~treated]) / max((~treated).sum(), 1),
        )


def _wald_table(fit: GLMFit, design: Design, arms: _ArmCounts, *, robust: bool, min_cells: int) -> dict:
    """The D coefficient's Wald statistics, with the genes that cannot be tested set to NaN."""
    d_index = design.treatment_index
    # total, not per arm: a gene silent in control and induced by treatment (IFIT1 under IFN-β) is the
    # most informative of all, and must not be dropped for being sparse in one arm
    too_sparse = arms.nonzero_treated + arms.nonzero_control < min_cells
    lfc = fit.coef[:, d_index]
    se = (fit.robust_se if robust else fit.se)[:, d_index]
    # all zeros in one arm and not in the other: complete separation, the MLE of the effect is ±inf and
    # its Wald test has no power (Hauck-Donner: CXCL11 under IFN-β came out at lfc 21, se 763, p = 0.98)
    separated = ~too_sparse & ((arms.nonzero_treated == 0) | (arms.nonzero_control == 0))
    # IRLS that did not converge (a near-singular design, a few extreme outliers) has no trustworthy
    # estimate: report NaN with `converged=False` rather than a huge lfc at p = 0
    bad = too_sparse | separated | ~fit.converged | ~np.isfinite(se) | (se <= 0)
    lfc, se = np.where(bad, np.nan, lfc), np.where(bad, np.nan, se)
    stat = lfc / se
    return {
        "lfc": lfc,
        "se": se,
        "stat": stat,
        "pvalue": 2 * stats.norm.sf(np.abs(stat)),
        "too_sparse": too_sparse,
        "separated": separated,
    }


def _centre_on_median_gene(columns: dict) -> float:
    """Report the D coefficients relative to the median tested gene; returns the shift taken off.

    With each cell's total count as offset, a treatment that raises a set of genes lowers every other gene's
    share of the total: IFN-β's interferon genes move all the rest by about the log of the library ratio.
    Subtracting the median gene's coefficient removes that shift (the estimate of a normalisation that, as
    DESeq2's median of ratios, assumes most genes do not change); the standard errors stay as they are, the
    median of thousands of genes being far more precise than any one gene.
    """
    tested = np.isfinite(columns["lfc"])
    if not tested.any():
        return 0.0
    shift = float(np.median(columns["lfc"][tested]))
    columns["lfc"] = columns["lfc"] - shift
    columns["stat"] = columns["lfc"] / columns["se"]
    columns["pvalue"] = 2 * stats.norm.sf(np.abs(columns["stat"]))
    return shift


def effects_table(columns: dict, arms: _ArmCounts, fit: GLMFit, alpha: float, gene_names) -> pd.DataFrame:
    """The effects DataFrame every zconf effects function returns (``lfc`` in natural log units)."""
    lfc, se = columns["lfc"], columns["se"]
    quantile = stats.norm.ppf(1 - alpha / 2)
    table = {
        "lfc": lfc,
        "log2fc": lfc / np.log(2),
        "se": se,
        "stat": columns["stat"],
        "pvalue": columns["pvalue"],
        "padj": benjamini_hochberg(columns["pvalue"]),
        "ci_low": lfc - quantile * se,
        "ci_high": lfc + quantile * se,
        "mean_control": arms.mean_control,
        "mean_treated": arms.mean_treated,
        "dispersion": fit.dispersion,
        "converged": fit.converged,
        "too_sparse": columns["too_sparse"],
        "separated": columns["separated"],
    }
    return pd.DataFrame(table, index=pd.Index(gene_names, name="gene"))


def check_alpha(alpha: float) -> None:
    """Raise a ValueError unless ``alpha`` lies in (0, 1)."""
    if not 0 < alpha < 1:
        msg = f"`alpha` must lie in (0, 1), got {alpha}."
        raise ValueError(msg)


def treatment_effects(
    data: RegressionData,
    z: np.ndarray | None = None,
    *,
    gene_names=None,
    alpha: float = 0.05,
    robust: bool = False,
    dispersion: np.ndarray | None = None,
    min_cells: int = 3,
    device: str = "cpu",
) -> pd.DataFrame:
    """Per-gene treatment effects from NB GLMs of Y on [1, X, D, Z], every cell a replicate.

    The p-values treat cells as independent replicates. When the treatment was given to samples (donors,
    wells, mice), cells of one sample share its deviations and these p-values are far too small: use the
    sample-aware :func:`zconf.analysis.pseudobulk_effects` (``ZConf.treatment_effects(sample_key=...)``).

    Parameters
    ----------
    data
        Counts, covariates, treatment and offset of the cells (:class:`~zconf.glm.RegressionData`); the counts
        must be in memory.
    z
        Columns of Z ``(n_obs, k)`` in the design, or ``None`` for the unadjusted fit [1, X, D].
    gene_names
        Index of the table (``range`` when ``None``).
    alpha
        Level of the confidence intervals (``1 - alpha``).
    robust
        Sandwich (HC0) standard errors instead of the model-based ones.
    dispersion
        Fixed NB dispersions ``(n_vars,)``; ``None`` re-estimates them for this design.
    min_cells
        Genes with fewer cells with non-zero counts (both arms together) are ``too_sparse`` (NaN statistics).
    device
        Torch device of the IRLS fit.

    Returns
    -------
    The table described in :meth:`zconf.ZConf.treatment_effects`.
    """
    check_alpha(alpha)
    counts = data.counts
    design = data.design(z)
    fit = fit_nb_glm(
        counts, design.matrix, offset=data.offset, dispersion=dispersion, device=device, weights=data.weights
    )
    arms = _ArmCounts.of(counts, data.treatment == 1)
    columns = _wald_table(fit, design, arms, robust=robust, min_cells=min_cells)
    null_offset = data.offset
    if data.offset_is_library:
        shift = _centre_on_median_gene(columns)
        null_offset = data.offset + shift * data.treatment  # the null of a centred lfc is D's coefficient = shift
    separated = columns["separated"]
    if separated.any():
        # the likelihood-ratio test stays valid under separation: deviance of the fit without D against
        # the fit with D, same dispersions, on the separated genes only
        columns["lfc"][separated] = np.where(arms.nonzero_treated[separated] > 0, np.inf, -np.inf)
        columns["pvalue"][separated] = _lrt_pvalues(counts, design, null_offset, fit, separated, device, data.weights)
    names = gene_names if gene_names is not None else np.arange(np.shape(counts)[1]).astype(str)
    return effects_table(columns, arms, fit, alpha, names)
