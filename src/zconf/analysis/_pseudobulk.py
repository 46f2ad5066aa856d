"""Sample-aware (pseudobulk) treatment effects: replicates are samples, not cells.

Counts are summed per sample (per sample and level of ``groups`` when given), and every gene gets an NB GLM on
``[1, sample-level covariates, D, Z-hat composition]`` with a quasi-likelihood F-test of D whose residual
degrees of freedom are those of the samples (edgeR's QL pipeline: Lund et al. 2012, Chen et al. 2016).

What the project keeps of its own, and why (measured in ``benchmarks/sample_null.py`` on Kang control PBMCs,
CD4 T cell pseudobulks of 8 donors x 1,287 genes, no Z; ``benchmarks/results/sample_null.md``): PyDESeq2 0.5.4
handed to :func:`zconf.glm.fit_nb_glm` with its own size factors and dispersions gives the same D coefficient
(median |difference| 7e-8, 99.1% of genes within 1e-3; 12 low-count genes differ by up to 0.19: each has a
fitted mean below 0.5 in some sample, where PyDESeq2 floors the means in its IRLS weights at ``min_mu=0.5`` as
DESeq2 does; with ``min_mu=1e-6`` every gene agrees within 4e-5), so the GLM fit is no reason to depend on it.
The test is: PyDESeq2 has Wald (normal
reference) and LRT (chi-square) tests on MAP-shrunk dispersions, neither of which carries the uncertainty of
the dispersion into the reference distribution, and with 8 samples (6 residual df) the QL F-test is the one
the pseudobulk comparisons found calibrated (Squair et al. 2021; Crowell et al. 2020); PyDESeq2 has none. It
also took 1.9-6.9 s per table against 0.02-0.1 s here (one CPU), and a ``groups`` call runs one table per
cell type. So the fit stays on the project's torch IRLS, and the F-test and edgeR 4's working dispersion are
implemented here, limma's likelihood fit of the prior (``fitFDistUnequalDF1``) and its robust form in
:mod:`._empirical_bayes`,
edgeR 4's bias-adjusted QL deviance in :mod:`._ql_deviance` (edgeR is R, and no Python port of it is on PyPI);
PyDESeq2 is the reference the benchmark checks against.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import sparse, stats

from zconf.glm import Design, RegressionData, design_matrix, fit_nb_glm, latent_block

from ._effects import benjamini_hochberg
from ._empirical_bayes import moderate_variances, running_trend
from ._ql_deviance import adjusted_ql_dispersion

#: Normalisations of the pseudobulk library sizes.
NORMALIZATIONS = ("median_ratio", "library")
#: Pseudobulks of fewer cells are left out by default (muscat's ``min_cells``).
MIN_CELLS = 10
#: Options for covariates that vary between the cells of one pseudobulk.
CELL_COVARIATES = ("error", "mean")
#: Output columns, in order (the per-cell table's, then the sample-aware additions).
COLUMNS = (
    "lfc",
    "log2fc",
    "se",
    "stat",
    "pvalue",
    "padj",
    "ci_low",
    "ci_high",
    "mean_control",
    "mean_treated",
    "dispersion",
    "converged",
    "too_sparse",
    "separated",
    "n_samples_control",
    "n_samples_treated",
    "df",
    "df_residual",
    "ql_dispersion",
    "z_adjusted",
)


def composition_factors(y: np.ndarray, library: np.ndarray) -> np.ndarray:
    """Median-of-ratios correction of library sizes (DESeq2's ``poscounts``), geometric mean 1.

    ``y`` ``(n_pseudobulks, n_genes)``, ``library`` ``(n_pseudobulks,)``. The factor of pseudobulk ``s`` is the
    median over its non-zero genes of ``(y_sg / L_s) / gm_g``, with ``gm_g`` the geometric mean of gene ``g``'s
    library-scaled counts over the pseudobulks where it is non-zero. Without it, a treatment that raises a tenth
    of the genes lowers every other gene's share of the library, and the test calls them down-regulated.
    """
    scaled = y / library[:, None]
    positive = y > 0
    log_scaled = np.where(positive, np.log(np.where(positive, scaled, 1.0)), 0.0)
    log_gm = log_scaled.sum(0) / y.shape[0]  # poscounts: zeros contribute 0 to the sum, n_pseudobulks divides
    usable = log_gm != 0
    factors = np.array(
        [
            np.median((log_scaled[s] - log_gm)[positive[s] & usable]) if (positive[s] & usable).any() else 0.0
            for s in range(y.shape[0])
        ]
    )
    return np.exp(factors - factors.mean())


def _indicator(labels: np.ndarray) -> tuple[np.ndarray, sparse.csr_matrix]:
    """Levels of ``labels`` and the sparse ``(n_levels, n_obs)`` 0/1 matrix that sums cells into them."""
    levels, codes = np.unique(labels, return_inverse=True)
    matrix = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(len(levels), len(codes)))
    return levels, matrix


def _check_labels(values, n_obs: int, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != n_obs:
        msg = f"`{name}` must have shape ({n_obs},) (one label per cell), got {array.shape}."
        raise ValueError(msg)
    missing = pd.isna(array)
    if missing.any():
        msg = f"`{name}` has {int(missing.sum())} missing values (first at cell {int(np.flatnonzero(missing)[0])})."
        raise ValueError(msg + " Give every cell a label, or subset the cells first.")
    return array.astype(str) if array.dtype == object else array


def check_samples_nest(treatment: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """The 0/1 treatment as floats; a ValueError names the samples with cells in both arms, or non-0/1 values."""
    d = np.asarray(treatment, dtype=float)
    if not np.isin(d, (0.0, 1.0)).all():
        bad = np.unique(d[~np.isin(d, (0.0, 1.0))])[:5]
        msg = f"`data.treatment` must be 0/1, got values such as {bad.tolist()}."
        raise ValueError(msg)
    frame = pd.DataFrame({"sample": samples, "d": d})
    arms = frame.groupby("sample", sort=True)["d"].nunique()
    both = arms.index[arms > 1].tolist()
    if both:
        msg = (
            f"Each sample must have one treatment value, but samples {both} have cells in both arms. "
            "The sample is the replicate unit of the test: pass a sample label that nests in the treatment "
            "(for example donor x condition)."
        )
        raise ValueError(msg)
    return d


def _check_z(z, n_obs: int) -> np.ndarray:
    values = latent_block(z, n_obs)
    if values.min(initial=0.0) < 0 or values.max(initial=1.0) > 1:
        msg = (
            "`z` must hold hard 0/1 states (or probabilities in [0, 1]); got values outside [0, 1]. "
            "Pass model.get_latent_representation() (hard) rather than a continuous embedding."
        )
        raise ValueError(msg)
    if values.shape[1] > 1 and np.allclose(values.sum(1), 1.0):
        values = values[:, 1:]  # one-hot levels of one categorical latent: the first is the reference
    return values


def _sample_covariates(covariates: np.ndarray, summer: sparse.csr_matrix, how: str, labels) -> np.ndarray:
    """Covariates of the pseudobulks: constant within each (or averaged, with ``how="mean"``)."""
    if covariates.shape[1] == 0:
        return np.zeros((summer.shape[0], 0))
    n_cells = np.asarray(summer.sum(1)).ravel()
    mean = np.asarray(summer @ covariates) / n_cells[:, None]
    if how == "mean":
        return mean
    spread = np.asarray(summer @ covariates**2) / n_cells[:, None] - mean**2
    varying = np.flatnonzero((spread > 1e-10).any(0))
    if varying.size:
        where = [str(labels[i]) for i in np.flatnonzero(spread[:, varying[0]] > 1e-10)[:5]]
        msg = (
            f"Covariate columns {varying.tolist()} vary between the cells of one sample (first column: in "
            f"samples {where}). A pseudobulk has one value per covariate: pass a cell-level categorical such as "
            "cell type as `groups=` (`groupby=` of ZConf.treatment_effects, `--groupby` of `zconf fit`: one table "
            "per level), leave it out of `data.covariates`, or set `cell_covariates='mean'` to use its per-sample "
            "mean (a composition for one-hot columns)."
        )
        raise ValueError(msg)
    return mean


#: edgeR's ``filterByExpr`` defaults: beyond this many samples in the smaller arm, only ``MIN_PROP`` of the extra
#: ones must reach the expression cut-off.
LARGE_N, MIN_PROP = 10, 0.7


def expressed(y: np.ndarray, library: np.ndarray, smallest_arm: int, min_count: float = 10) -> np.ndarray:
    """Genes expressed enough to test: edgeR's ``filterByExpr`` rule on a pseudobulk table.

    A gene is kept when at least ``smallest_arm`` pseudobulks (the size of the smaller arm; beyond 10, 10 plus
    70% of the rest) reach a CPM of ``min_count`` reads at the median library size, and its total count is at
    least ``1.5 * min_count``. The rule uses the arm sizes, not the labels, so it does not bias the test.

    Why not a total count alone (the earlier rule, total >= 10): on Kang control donors split 4 vs 4 with cell
    types as groups, genes with a few reads in a few pseudobulks gave discrete, conservative p-values, and the
    pooled null p-values were not uniform (KS p < 1e-4); see ``benchmarks/results/sample_null.md``.

    Parameters
    ----------
    y
        ``(n_pseudobulks, n_genes)`` counts.
    library
        ``(n_pseudobulks,)`` effective library sizes (times the normalisation factors).
    smallest_arm
        Number of pseudobulks in the smaller arm.
    min_count
        Reads at the median library size.

    Examples
    --------
    >>> y = np.array([[20, 0, 3], [30, 0, 2], [25, 40, 1], [22, 0, 4]])
    >>> expressed(y, np.full(4, 1e4), smallest_arm=2).tolist()
    [True, False, False]
    """
    n_min = smallest_arm if smallest_arm <= LARGE_N else LARGE_N + (smallest_arm - LARGE_N) * MIN_PROP
    cpm_cutoff = min_count / np.median(library) * 1e6
    cpm = y / library[:, None] * 1e6
    tolerance = 1e-14
    enough_samples = (cpm >= cpm_cutoff).sum(0) >= n_min - tolerance
    return enough_samples & (y.sum(0) >= 1.5 * min_count - tolerance)


def _informative(block: np.ndarray) -> np.ndarray:
    """Drop columns constant over the pseudobulks (absorbed by the intercept, e.g. one level's own one-hot)."""
    return block[:, np.ptp(block, axis=0) > 1e-12] if block.shape[1] else block


#: Share of the most abundant testable genes whose dispersions give the common NB dispersion (edgeR 4's
#: ``top.proportion``).
TOP_PROPORTION = 0.1
#: Quantile of the trend of the QL dispersions (on the fourth-root scale) that scales the common dispersion down
#: (edgeR 4's average QL dispersion).
AVERAGE_QL_QUANTILE = 0.9


def _fitted(fit, design: np.ndarray, offset: np.ndarray) -> np.ndarray:
    return np.exp(np.clip(design @ fit.coef.T + offset[:, None], -30, 30))


def working_dispersion(y, design: np.ndarray, offset, log_abundance, testable) -> np.ndarray:
    """The NB dispersion of every gene's fits, edgeR 4's (``glmQLFit(legacy=FALSE)``): one value for all genes.

    A common dispersion from the most abundant genes (:data:`TOP_PROPORTION`; the median of their Pearson
    estimates), divided by the average QL dispersion at it (:data:`AVERAGE_QL_QUANTILE` of the running trend of
    the bias-adjusted QL dispersions over abundance, on the fourth-root scale, at least 1). Gene-specific
    overdispersion is then the QL dispersion's, with its empirical-Bayes prior and F reference, not the NB
    weights'. Measured on the Kang control donors (35 splits, one table per cell type): the trended per-gene NB
    dispersion of earlier versions left the null p-values conservative (P(p < 0.1) = 0.097, pooled KS p 5e-8);
    with this one, 0.099 and KS p 0.09 (the power design's FDP 0.097 -> 0.101, power 0.756 -> 0.763).
    """
    n_genes = y.shape[1]
    usable = testable if testable.sum() >= 10 else np.ones(n_genes, dtype=bool)
    abundance = log_abundance[usable]
    top = abundance >= np.quantile(abundance, 1 - TOP_PROPORTION)
    per_gene = fit_nb_glm(y[:, usable][:, top], design, offset=offset).dispersion  # only the top genes' are used
    common = float(np.exp(np.median(np.log(np.clip(per_gene, 1e-4, 1e2)))))
    at_common = fit_nb_glm(y[:, usable], design, offset=offset, dispersion=np.full(usable.sum(), common))
    s2, df = adjusted_ql_dispersion(y[:, usable], _fitted(at_common, design, offset), design, common)
    ok = np.isfinite(s2) & (df > 1e-8)
    average = 1.0
    if ok.sum() >= 10:
        trend = running_trend(abundance[ok], np.sqrt(np.sqrt(s2[ok])), robust=False)
        average = max(float(np.quantile(trend, AVERAGE_QL_QUANTILE)), 1.0) ** 4
    return np.full(n_genes, common / average)


def _fit_table(y, offset, design: Design, d, n_cells, arm_cells_sum, opts: dict):
    """The QL pipeline on one pseudobulk table ``y`` ``(n_pseudobulks, n_genes)``; returns a dict of columns."""
    n_obs, n_params = design.matrix.shape
    df_res = n_obs - n_params
    reduced = design.without("treatment")
    min_count, min_samples, alpha = opts["min_count"], opts["min_samples"], opts["alpha"]
    trend, robust = opts["trend"], opts["robust"]
    lib = np.exp(offset)
    log_abundance = np.log(np.mean(y / lib[:, None], axis=0) * 1e6 + 0.5)
    nonzero = (y > 0).sum(0)
    treated = d == 1
    smallest_arm = int(min(treated.sum(), (~treated).sum()))
    too_sparse = ~expressed(y, lib, smallest_arm, min_count) | (nonzero < min_samples)
    separated = ~too_sparse & ((y[treated].sum(0) == 0) | (y[~treated].sum(0) == 0))
    # 1. the NB dispersion: one working value for all genes (edgeR 4), see working_dispersion
    dispersion = working_dispersion(y, design.matrix, offset, log_abundance, ~too_sparse)
    # 2. NB fits at that dispersion, with and without D: QL dispersion and the likelihood ratio
    full = fit_nb_glm(y, design.matrix, offset=offset, dispersion=dispersion)
    null = fit_nb_glm(y, reduced.matrix, offset=offset, dispersion=dispersion)
    # 3. QL dispersion from the bias-adjusted deviance, with fractional residual df per gene (edgeR 4)
    s2, df_gene = adjusted_ql_dispersion(y, _fitted(full, design.matrix, offset), design.matrix, dispersion)
    s2[too_sparse] = np.nan
    # 4. empirical-Bayes squeezing of the QL dispersion, F-test with df = residual df + prior df
    post, df_total = moderate_variances(s2, df_gene, log_abundance if trend else None, robust=robust)
    lr = np.clip(null.deviance - full.deviance, 0.0, None)
    f_stat = lr / post
    pvalue = stats.f.sf(f_stat, 1, df_total)
    j = design.treatment_index
    lfc = full.coef[:, j].copy()
    se = full.se[:, j] * np.sqrt(post)
    bad = too_sparse | separated | ~full.converged | ~np.isfinite(se) | (se <= 0)
    pvalue[too_sparse | (~full.converged & ~separated)] = np.nan
    lfc[bad] = np.nan
    se[bad] = np.nan
    lfc[separated] = np.where(y[treated][:, separated].sum(0) > 0, np.inf, -np.inf)
    quantile = stats.t.ppf(1 - alpha / 2, df_total)
    return {
        "lfc": lfc,
        "log2fc": lfc / np.log(2),
        "se": se,
        "stat": np.sign(lfc) * np.sqrt(f_stat),
        "pvalue": pvalue,
        "padj": benjamini_hochberg(pvalue),
        "ci_low": lfc - quantile * se,
        "ci_high": lfc + quantile * se,
        "mean_control": arm_cells_sum[0] / max(n_cells[~treated].sum(), 1),
        "mean_treated": arm_cells_sum[1] / max(n_cells[treated].sum(), 1),
        "dispersion": dispersion,
        "converged": full.converged,
        "too_sparse": too_sparse,
        "separated": separated,
        "n_samples_control": int((~treated).sum()),
        "n_samples_treated": int(treated.sum()),
        "df": df_total,
        "df_residual": np.full(y.shape[1], df_res),
        "ql_dispersion": post,
    }


def _effects_one(data_counts, d_cells, covariates, z, offset_cells, samples, opts) -> dict | None:
    """Pseudobulk the given cells per sample and run :func:`_fit_table`; ``None`` if an arm has too few samples."""
    levels, summer = _indicator(samples)
    y = np.asarray((summer @ data_counts).todense() if sparse.issparse(data_counts) else summer @ data_counts)
    y = y.astype(float)
    n_cells = np.asarray(summer.sum(1)).ravel()
    d = np.asarray(summer @ d_cells).ravel() / n_cells
    counts_per_cell = np.asarray(data_counts.sum(1)).ravel()
    if offset_cells is None:
        library = np.asarray(summer @ counts_per_cell).ravel()
    else:  # the expected pseudobulk count is Σ_cells s_i μ: its offset is log Σ s_i
        library = np.asarray(summer @ np.exp(offset_cells)).ravel()
    if (library <= 0).any():
        empty = levels[library <= 0][:5].tolist()
        msg = f"Samples {empty} have no counts (library size 0); remove them before testing."
        raise ValueError(msg)
    raw_library = library
    if opts["normalization"] == "median_ratio":
        library = library * composition_factors(y, library)
    arms = ((d == 0).sum(), (d == 1).sum())
    if min(arms) < opts["min_samples"]:
        return None
    x = _informative(_sample_covariates(covariates, summer, opts["cell_covariates"], levels))
    composition = None
    if z is not None:
        # share of each pseudobulk's library in each Z-hat state: its expected count is Σ_k L_k exp(β_k), so to
        # first order log μ moves with the library share of each state (a cell-count share ignores depth)
        weights = counts_per_cell if offset_cells is None else np.exp(offset_cells)
        composition = _informative(np.asarray(summer @ (z * weights[:, None])) / raw_library[:, None])
    design, with_z = _sample_design(x, d, composition, len(levels))
    treated_cells = d_cells == 1
    arm_sums = (
        np.asarray(data_counts[~treated_cells].sum(0)).ravel(),
        np.asarray(data_counts[treated_cells].sum(0)).ravel(),
    )
    table = _fit_table(y, np.log(library), design, d, n_cells, arm_sums, opts)
    return {**table, "z_adjusted": np.full(y.shape[1], with_z)}


def _sample_design(x: np.ndarray, d: np.ndarray, composition: np.ndarray | None, n_samples: int):
    """The pseudobulk design [1, X, D, Z-hat composition] and whether Z-hat is in it.

    Z-hat's columns are left out, with a warning, when they would leave no residual degrees of freedom and the
    design without them leaves some; a design that leaves none either way is an error.
    """
    without = design_matrix(x, d)
    if composition is None or composition.shape[1] == 0:
        design, with_z = without, False
    else:
        design, with_z = design_matrix(x, d, composition), True
        if not _testable(design.matrix) and _testable(without.matrix):
            warnings.warn(
                f"Z-hat's composition adds {composition.shape[1]} column(s) to the design of {n_samples} samples "
                "and leaves no residual degrees of freedom: these samples are tested without Z-hat (column "
                "z_adjusted is False). With so few samples, Z-hat's share in each sample cannot be told apart from "
                "the samples themselves; the sample-level covariates (for example the donor of paired samples) "
                "still enter.",
                UserWarning,
                stacklevel=5,
            )
            design, with_z = without, False
    if not _testable(design.matrix):
        msg = (
            f"The pseudobulk design has {design.matrix.shape[1]} columns (rank {np.linalg.matrix_rank(design.matrix)})"
            f" for {n_samples} samples: no residual degrees of freedom left for the test. Use more samples, fewer "
            "sample-level covariates or fewer Z-hat states."
        )
        raise ValueError(msg)
    return design, with_z


def _testable(design: np.ndarray) -> bool:
    """Whether a sample-level design leaves residual degrees of freedom and has full column rank."""
    return design.shape[0] > design.shape[1] and np.linalg.matrix_rank(design) == design.shape[1]


def pseudobulk_effects(
    data: RegressionData,
    samples: np.ndarray,
    z: np.ndarray | None = None,
    *,
    groups: np.ndarray | None = None,
    alpha: float = 0.05,
    min_samples: int = 2,
    min_count: int = 10,
    min_cells: int = MIN_CELLS,
    cell_covariates: str = "error",
    normalization: str = "median_ratio",
    trend: bool = True,
    robust: bool = True,
    gene_names=None,
) -> pd.DataFrame:
    """Per-gene treatment effects with samples as the replicates: pseudobulk NB GLM and quasi-likelihood F-test.

    Counts are summed per sample (per sample and level of ``groups``). Each gene gets an NB GLM with log link on
    ``[1, sample-level covariates, D, Z-hat composition]`` with the log library size of each pseudobulk (times
    a median-of-ratios factor) as offset, and D is tested with edgeR 4's quasi-likelihood F-test: one working NB
    dispersion for all genes (:func:`working_dispersion`), a QL dispersion (bias-adjusted residual deviance over
    its adjusted residual df: :mod:`zconf.analysis._ql_deviance`) squeezed towards an abundance trend by
    limma's likelihood fit of the prior (robustly: outlier genes get less prior weight), and F(1, residual df +
    prior df).
    Then Benjamini–Hochberg over the testable genes of a table.

    Why one pseudobulk per sample with Z-hat as a composition, and not one per (sample, Z-hat state): the
    pseudobulks of one sample share its deviation, so a fit on per-state pseudobulks takes its residual df from
    pseudobulks and is anti-conservative; measured in ``benchmarks/sample_null.py`` on Kang control donors.

    Parameters
    ----------
    data
        Counts ``(n_obs, n_genes)`` (dense or sparse), cell-level covariates, 0/1 treatment and optional log
        size factors (:class:`~zconf.glm.RegressionData`). With ``offset``, a pseudobulk's library size is
        Σ exp(offset) over its cells; without, its total count.
    samples
        ``(n_obs,)`` replicate unit of each cell (donor, well, mouse; donor x condition when both arms come from
        one donor). Each sample must have one treatment value.
    z
        Hard Z-hat ``(n_obs, k)``: 0/1 columns of binary latents, or the one-hot levels of a categorical
        latent (the first level becomes the reference). Enters as the share of each pseudobulk's library in
        each state (probabilities give the expected share); states constant over the pseudobulks are dropped.
        ``None``: no adjustment.
    groups
        Optional ``(n_obs,)`` cell-level categorical (cell type). Each level gets its own pseudobulks and its
        own table, as muscat does, and the result has a ``(group, gene)`` MultiIndex; levels with fewer than
        ``min_samples`` samples in an arm are skipped with a warning. Covariate columns constant within a level
        (that level's own one-hot) are dropped.
    alpha
        Level of the confidence intervals (``1 - alpha``, t with ``df`` degrees of freedom).
    min_samples
        Least number of samples per arm; fewer raises (or skips a group). Genes non-zero in fewer pseudobulks
        are ``too_sparse``.
    min_cells
        Pseudobulks of fewer cells are left out (muscat's ``min_cells``, default 10), with a warning naming
        them. A pseudobulk of a few cells carries the spread of those cells' states on top of its donor's
        deviation, more than its NB dispersion allows for. Measured on the Kang control donors (35 donor
        splits, cell types as groups; dendritic cells and megakaryocytes have 4-9 cells in some donors): the
        largest null fraction called fell from 0.011 to 0.008 and the pooled null p-values moved towards
        uniform (KS p 1e-11 to 5e-8). ``0`` keeps every pseudobulk.
    min_count
        Expression filter, edgeR's ``filterByExpr`` (:func:`expressed`): a gene is tested when as many
        pseudobulks as the smaller arm has reach ``min_count`` reads at the median library size (as CPM), and
        its total count is at least ``1.5 * min_count``; others are ``too_sparse`` (NaN statistics).
    cell_covariates
        Covariate columns that vary between the cells of one pseudobulk: ``"error"`` (default) refuses them
        and says how to pass them; ``"mean"`` uses their per-pseudobulk mean as a sample-level covariate.
    normalization
        ``"median_ratio"`` (default): each pseudobulk's library size times a median-of-ratios factor
        (:func:`composition_factors`), robust to a treatment that changes many genes; ``"library"``: the
        library size alone.
    trend
        Squeeze the QL dispersions towards an abundance trend (edgeR's default) instead of a constant.
    robust
        Give genes whose QL dispersion is an outlier above the prior less prior weight
        (:func:`~zconf.analysis._empirical_bayes.robust_prior_df`, limma's ``robust=TRUE`` right outliers): their ``df``
        fall towards ``df_residual``. On real donors the outliers are eQTL and HLA genes, which a split that
        lines up with their genotypes calls otherwise.
    gene_names
        Index of the table; ``0..n_genes-1`` when ``None``.

    Returns
    -------
    DataFrame by gene (or by ``(group, gene)``) with the per-cell table's columns: ``lfc`` (natural log),
    ``log2fc``, ``se`` (Wald se scaled by the posterior QL dispersion), ``stat`` (signed √F), ``pvalue``,
    ``padj``, ``ci_low``, ``ci_high``, ``mean_control`` and ``mean_treated`` (mean count per cell of each arm),
    ``dispersion`` (the working NB dispersion, one value per table), ``converged``, ``too_sparse``,
    ``separated`` (all zeros in one arm: ``lfc`` is ±inf, the p-value still comes from the F-test of the
    deviance); then ``n_samples_control``, ``n_samples_treated``, ``df`` (denominator df of the F-test: the
    gene's adjusted residual df + its prior df, so per gene), ``df_residual`` (samples minus design columns),
    ``ql_dispersion`` (posterior) and ``z_adjusted`` (whether Z-hat's composition entered the design: not when
    it is ``None``, nor when its columns would leave no residual degrees of freedom, which a warning says).

    Examples
    --------
    >>> import numpy as np
    >>> from zconf.glm import RegressionData
    >>> rng = np.random.default_rng(0)
    >>> samples = np.repeat(np.arange(6), 50)
    >>> d = (samples >= 3).astype(float)
    >>> counts = rng.poisson(2.0, size=(300, 40))
    >>> data = RegressionData(counts=counts, covariates=np.zeros((300, 0)), treatment=d)
    >>> table = pseudobulk_effects(data, samples)
    >>> int(table["df_residual"].iloc[0]), int(table["n_samples_treated"].iloc[0])
    (4, 3)
    """
    _check_options(cell_covariates, normalization, alpha, min_samples)
    if int(min_cells) != min_cells or min_cells < 0:
        msg = f"`min_cells` must be a non-negative integer, got {min_cells!r}."
        raise ValueError(msg)
    counts = _checked_counts(data)
    n_obs, n_genes = counts.shape
    samples = _check_labels(samples, n_obs, "samples")
    d = check_samples_nest(data.treatment, samples)
    covariates = np.asarray(data.covariates, dtype=float).reshape(n_obs, -1)
    z_values = None if z is None else _check_z(z, n_obs)
    offset = None if data.offset is None else np.asarray(data.offset, dtype=float).ravel()
    if offset is not None and (offset.shape != (n_obs,) or not np.isfinite(offset).all()):
        msg = f"`data.offset` must be finite with shape ({n_obs},), got shape {offset.shape}."
        raise ValueError(msg)
    genes = pd.Index(np.arange(n_genes) if gene_names is None else np.asarray(gene_names), name="gene")
    if len(genes) != n_genes:
        msg = f"`gene_names` has {len(genes)} names for {n_genes} genes."
        raise ValueError(msg)
    opts = {
        "min_samples": int(min_samples),
        "min_count": min_count,
        "cell_covariates": cell_covariates,
        "alpha": alpha,
        "trend": trend,
        "robust": robust,
        "normalization": normalization,
    }
    cells = (counts, d, covariates, z_values, offset, samples)
    group_labels = None if groups is None else _check_labels(groups, n_obs, "groups")
    keep = _cells_of_large_pseudobulks(samples, group_labels, int(min_cells))
    if not keep.all():
        cells = tuple(None if values is None else values[keep] for values in cells)
        group_labels = None if group_labels is None else group_labels[keep]
    if groups is None:
        out = _effects_one(*cells, opts)
        if out is None:
            kept_samples, kept_d = cells[-1], cells[1]
            n_control, n_treated = (len(np.unique(kept_samples[kept_d == arm])) for arm in (0, 1))
            msg = (
                f"Need at least min_samples={min_samples} samples per arm, got {n_control} control and "
                f"{n_treated} treated"
            )
            if not keep.all():
                msg += (
                    f" with at least min_cells={min_cells} cells ({len(np.unique(samples[~keep]))} samples had "
                    "fewer; pass min_cells=0 for counts that are already pseudobulks)"
                )
            raise ValueError(msg + ".")
        return pd.DataFrame(out, index=genes)[list(COLUMNS)]
    return _effects_by_group(cells, group_labels, genes, opts)


def _cells_of_large_pseudobulks(samples: np.ndarray, groups: np.ndarray | None, min_cells: int) -> np.ndarray:
    """Mask of the cells whose pseudobulk (sample, or group x sample) has at least ``min_cells`` cells.

    The pseudobulks left out are named in a warning.
    """
    keys = samples.astype(str)
    if groups is not None:
        keys = np.char.add(np.char.add(groups.astype(str), " / "), keys)
    names, codes, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    small = sizes < min_cells
    if small.any():
        listed = ", ".join(f"{name} ({size})" for name, size in zip(names[small][:8], sizes[small][:8], strict=True))
        more = f" and {int(small.sum()) - 8} more" if small.sum() > 8 else ""
        warnings.warn(
            f"Left out {int(small.sum())} pseudobulks with fewer than min_cells={min_cells} cells: {listed}{more}. "
            "Pass min_cells=0 to keep them.",
            UserWarning,
            stacklevel=3,
        )
    return ~small[codes]


def _check_options(cell_covariates: str, normalization: str, alpha: float, min_samples) -> None:
    """Raise a ValueError naming the first option of :func:`pseudobulk_effects` that is not valid."""
    if cell_covariates not in CELL_COVARIATES:
        msg = f"`cell_covariates` must be one of {list(CELL_COVARIATES)}, got {cell_covariates!r}."
        raise ValueError(msg)
    if normalization not in NORMALIZATIONS:
        msg = f"`normalization` must be one of {list(NORMALIZATIONS)}, got {normalization!r}."
        raise ValueError(msg)
    if not 0 < alpha < 1:
        msg = f"`alpha` must lie in (0, 1), got {alpha}."
        raise ValueError(msg)
    if int(min_samples) != min_samples or min_samples < 1:
        msg = f"`min_samples` must be a positive integer, got {min_samples!r}."
        raise ValueError(msg)


def _checked_counts(data: RegressionData):
    """The counts as a CSR matrix or a dense array, after checking their shape and values."""
    counts = data.counts
    if not (sparse.issparse(counts) or isinstance(counts, np.ndarray)):
        counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != data.n_obs:
        msg = f"`data.counts` must have shape ({data.n_obs}, n_genes), got {counts.shape}."
        raise ValueError(msg)
    counts = sparse.csr_matrix(counts) if sparse.issparse(counts) else counts
    values = counts.data if sparse.issparse(counts) else counts
    if values.size and (values.min() < 0 or not np.isfinite(values).all()):
        msg = "`data.counts` must be finite and non-negative raw counts."
        raise ValueError(msg)
    return counts


def _effects_by_group(cells: tuple, groups: np.ndarray, genes: pd.Index, opts: dict) -> pd.DataFrame:
    """One table per level of ``groups``, stacked with a ``(group, gene)`` MultiIndex."""
    tables, skipped = {}, []
    for level in pd.unique(groups):
        in_level = groups == level
        part = tuple(None if values is None else values[in_level] for values in cells)
        out = _effects_one(*part, opts)
        if out is None:
            skipped.append(level)
            continue
        tables[level] = pd.DataFrame(out, index=genes)[list(COLUMNS)]
    min_samples = opts["min_samples"]
    if skipped:
        warnings.warn(
            f"Groups {skipped} have fewer than min_samples={min_samples} samples in an arm and were skipped.",
            UserWarning,
            stacklevel=3,
        )
    if not tables:
        msg = f"No level of `groups` has min_samples={min_samples} samples in each arm."
        raise ValueError(msg)
    return pd.concat(tables, names=["group", "gene"])
