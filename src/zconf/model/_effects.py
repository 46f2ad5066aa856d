"""Confounder-adjusted per-gene treatment effects and the sensitivity summary of a trained ZConf."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from zconf._constants import REGISTRY_KEYS
from zconf.glm import fit_nb_glm

from ._validation import is_in_memory

Z_SOURCES = ("soft", "hard")


def _column_sums(matrix) -> np.ndarray:
    """Column sums of a dense or sparse matrix as a flat float array (sparse input stays sparse)."""
    return np.asarray(matrix.sum(0), dtype=float).ravel()


def _lrt_pvalues(counts, design, d_index, offset, fit, genes: np.ndarray, device) -> np.ndarray:
    """Likelihood-ratio p-values of the D coefficient for the selected genes (same dispersions, 1 df)."""
    columns = np.flatnonzero(genes)
    reduced = fit_nb_glm(
        counts[:, columns],
        np.delete(design, d_index, axis=1),
        offset=offset,
        dispersion=fit.dispersion[columns],
        device=device,
    )
    statistic = np.clip(reduced.deviance - fit.deviance[columns], 0.0, None)
    return stats.chi2.sf(statistic, df=1)


def _external_z(z, n_obs: int) -> np.ndarray:
    """Validate a user-supplied Z (or known factor) matrix for the effects design."""
    values = np.asarray(z)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] != n_obs:
        msg = f"`z` as an array must have shape (n_obs,) or (n_obs, k) with n_obs={n_obs}, got {values.shape}."
        raise ValueError(msg)
    if not np.issubdtype(values.dtype, np.number) and values.dtype != bool:
        msg = f"`z` as an array must be numeric (one-hot code categorical factors), got dtype {values.dtype}."
        raise TypeError(msg)
    values = values.astype(float)
    if not np.isfinite(values).all():
        msg = "`z` as an array contains NaN or infinite values."
        raise ValueError(msg)
    return values


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


class TreatmentEffectsMixin:
    """Adds :meth:`treatment_effects`, :meth:`sensitivity` and :meth:`regression_data` to :class:`~zconf.ZConf`."""

    def regression_data(
        self, adata: AnnData | None = None, reference_coding: bool | None = True
    ) -> dict[str, np.ndarray | None]:
        """Counts, covariates, treatment and log size-factor offset of the registered data.

        ``reference_coding`` is passed to :meth:`get_design` (``True``: first level of each categorical
        covariate dropped, for a GLM with intercept; ``None``: as the model's heads code them).

        Returns
        -------
        Dict with ``counts`` ``(n_obs, n_vars)`` (sparse stays sparse), ``covariates``, ``treatment`` and
        ``offset`` (``None`` without a registered size factor).
        """
        adata = self._validate_anndata(adata)
        manager = self.get_anndata_manager(adata, required=True)
        counts = manager.get_from_registry(REGISTRY_KEYS.X_KEY)
        covariates, treatment = self.get_design(adata, reference_coding=reference_coding)
        offset = None
        if REGISTRY_KEYS.SIZE_FACTOR_KEY in manager.data_registry:
            offset = np.log(np.asarray(manager.get_from_registry(REGISTRY_KEYS.SIZE_FACTOR_KEY), dtype=float).ravel())
        return {"counts": counts, "covariates": covariates, "treatment": treatment, "offset": offset}

    def treatment_effects(
        self,
        adata: AnnData | None = None,
        *,
        adjust: bool = True,
        z: str | np.ndarray = "soft",
        alpha: float = 0.05,
        robust: bool = False,
        dispersion: str = "estimate",
        min_cells: int = 3,
        device: str = "cpu",
    ) -> pd.DataFrame:
        """Per-gene treatment effects from a negative binomial GLM adjusted for Z-hat.

        For every gene, an NB GLM with log link of Y on [1, X, D, Z-hat] (or [1, X, D] with ``adjust=False``)
        is fitted by vectorised IRLS over all genes at once, with log size factors as offset when a size
        factor is registered. The effect is the D coefficient.

        Parameters
        ----------
        adata
            AnnData set up like the training data; the training data when ``None``.
        adjust
            Include Z-hat; ``False`` gives the naive estimate, for comparison.
        z
            ``"soft"`` (default): the probabilities P(Z=1 | X, D, Y) as regressors, which carry the
            uncertainty of uncertain cells into the fit instead of rounding it away; ``"hard"``: 0/1 Z-hat.
            An array of shape ``(n_obs,)`` or ``(n_obs, k)`` replaces Z-hat by these columns, for comparisons
            on the same footing: the true Z of a simulation (the oracle), or a one-hot coding of a known
            factor such as donor (drop one level; the intercept is already in the design).
        alpha
            Level of the confidence intervals (``1 - alpha``).
        robust
            Use the sandwich (HC0) standard errors instead of the model-based ones.
        dispersion
            ``"estimate"`` (default): per-gene NB dispersion re-estimated for this design (Pearson
            quasi-likelihood equation); ``"model"``: the NB head's trained dispersions.
        min_cells
            Genes with fewer than this many cells with non-zero counts (both arms together) are flagged
            ``too_sparse`` and get NaN statistics. Genes whose IRLS did not converge (for example all zeros in
            one arm: the MLE of the effect is infinite) keep ``converged=False`` and get NaN statistics too.
        device
            Torch device of the IRLS fit (``"cuda"`` for a GPU).

        Returns
        -------
        DataFrame indexed by gene with ``lfc`` (natural log), ``log2fc``, ``se``, ``stat`` (Wald z), ``pvalue``,
        ``padj`` (Benjamini–Hochberg over testable genes), ``ci_low``, ``ci_high``, ``mean_control``,
        ``mean_treated`` (mean counts per arm), ``dispersion``, ``converged``, ``too_sparse`` and ``separated``
        (all zeros in one arm only: ``lfc`` is ±inf, ``se``, ``stat`` and the interval are NaN, and the
        p-value comes from a likelihood-ratio test, which stays valid where the Wald test has no power).

        Examples
        --------
        >>> import zconf
        >>> adata = zconf.data.simulate("confounded", n_obs=300, n_vars=20)
        >>> zconf.ZConf.setup_anndata(adata, layer="counts", treatment_key="treatment")
        >>> model = zconf.ZConf(adata, n_hidden=16)
        >>> model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)
        >>> table = model.treatment_effects()
        >>> list(table.columns[:6])
        ['lfc', 'log2fc', 'se', 'stat', 'pvalue', 'padj']
        >>> oracle = model.treatment_effects(z=adata.obsm["z_true"])  # the true Z in place of Z-hat
        """
        if isinstance(z, str) and z not in Z_SOURCES:
            msg = f"`z` must be one of {list(Z_SOURCES)} or an array of shape (n_obs, k), got {z!r}."
            raise ValueError(msg)
        if dispersion not in ("estimate", "model"):
            msg = f"`dispersion` must be 'estimate' or 'model', got {dispersion!r}."
            raise ValueError(msg)
        if not 0 < alpha < 1:
            msg = f"`alpha` must lie in (0, 1), got {alpha}."
            raise ValueError(msg)
        self._check_trained()
        adata = self._validate_anndata(adata)
        data = self.regression_data(adata)
        counts, d = data["counts"], data["treatment"]
        if not is_in_memory(counts):
            msg = (
                "treatment_effects needs the counts in memory (the per-gene GLMs read every cell of each gene); "
                "this AnnData is backed. Load it with adata.to_memory() (a sparse matrix stays sparse)."
            )
            raise ValueError(msg)
        n_obs = len(d)
        columns = [np.ones((n_obs, 1)), data["covariates"], d[:, None]]
        if adjust and isinstance(z, str):
            columns.append(self.get_latent_representation(adata, soft=(z == "soft")))
        elif adjust:
            columns.append(_external_z(z, n_obs))
        design = np.hstack(columns)
        d_index = 1 + data["covariates"].shape[1]
        fixed = None
        if dispersion == "model":
            fixed = np.exp(-self.module.nb_head.clamped_log_theta().detach().cpu().numpy())
        fit = fit_nb_glm(counts, design, offset=data["offset"], dispersion=fixed, device=device)
        treated = d == 1
        # total, not per arm: a gene silent in control and induced by treatment (IFIT1 under IFN-β) is the
        # most informative of all, and must not be dropped for being sparse in one arm
        nonzero_treated = _column_sums(counts[treated] > 0)
        nonzero_control = _column_sums(counts[~treated] > 0)
        too_sparse = nonzero_treated + nonzero_control < min_cells
        lfc = fit.coef[:, d_index]
        se = (fit.robust_se if robust else fit.se)[:, d_index]
        # all zeros in one arm and not in the other: complete separation, the MLE of the effect is ±inf and
        # its Wald test has no power (Hauck-Donner: CXCL11 under IFN-β came out at lfc 21, se 763, p = 0.98)
        separated = ~too_sparse & ((nonzero_treated == 0) | (nonzero_control == 0))
        # IRLS that did not converge (a near-singular design, a few extreme outliers) has no trustworthy
        # estimate: report NaN with `converged=False` rather than a huge lfc at p = 0
        bad = too_sparse | separated | ~fit.converged | ~np.isfinite(se) | (se <= 0)
        lfc, se = np.where(bad, np.nan, lfc), np.where(bad, np.nan, se)
        stat = lfc / se
        pvalue = 2 * stats.norm.sf(np.abs(stat))
        if separated.any():
            # the likelihood-ratio test stays valid under separation: deviance of the fit without D against
            # the fit with D, same dispersions, on the separated genes only
            lfc[separated] = np.where(nonzero_treated[separated] > 0, np.inf, -np.inf)
            pvalue[separated] = _lrt_pvalues(counts, design, d_index, data["offset"], fit, separated, device)
        quantile = stats.norm.ppf(1 - alpha / 2)
        return pd.DataFrame(
            {
                "lfc": lfc,
                "log2fc": lfc / np.log(2),
                "se": se,
                "stat": stat,
                "pvalue": pvalue,
                "padj": benjamini_hochberg(pvalue),
                "ci_low": lfc - quantile * se,
                "ci_high": lfc + quantile * se,
                "mean_control": _column_sums(counts[~treated]) / max((~treated).sum(), 1),
                "mean_treated": _column_sums(counts[treated]) / max(treated.sum(), 1),
                "dispersion": fit.dispersion,
                "converged": fit.converged,
                "too_sparse": too_sparse,
                "separated": separated,
            },
            index=pd.Index(adata.var_names, name="gene"),
        )

    def sensitivity(self, adata: AnnData | None = None, *, soft: bool = False) -> dict:
        """How much deviance Z-hat explains beyond X (and D): the DBPR partial R² as sensitivity parameters.

        ``treatment`` is w' (McFadden's partial R² of D ~ X + Z-hat over D ~ X): the share of the treatment
        model's deviance that the inferred confounder accounts for. ``genes`` holds v'_g per gene (NB deviance
        of Y ~ X + D + Z-hat over Y ~ X + D). They describe Z-hat, an estimate: they are not the strength of
        the true confounder, and they do not bound the bias of NB coefficients (the Cinelli–Hazlett bound
        applies to linear models only).

        Returns
        -------
        Dict with ``treatment`` (float), ``genes`` (a :class:`pandas.Series` by gene) and ``genes_mean``.
        """
        from zconf.metrics import deviance_partial_r2

        adata = self._validate_anndata(adata)
        values = deviance_partial_r2(self, adata, soft=soft)
        values["genes"] = pd.Series(values["genes"], index=adata.var_names, name="partial_r2")
        return values
