"""The public analysis methods of :class:`~zconf.ZConf`: thin wrappers over :mod:`zconf.analysis` functions.

They use only the model's public getters (``regression_data``, ``get_latent_representation``, ``get_predictions``),
so data flows one way: the model gives arrays, the analysis functions give tables.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
from anndata import AnnData

from zconf._constants import REGISTRY_KEYS
from zconf.analysis import pseudobulk_effects, state_overlap, treatment_effects
from zconf.analysis._pseudobulk import check_samples_nest
from zconf.analysis._signature_shift import shift_along_signature
from zconf.glm import RegressionData, latent_block, sample_weights
from zconf.metrics import deviance_partial_r2_from_arrays

from . import _outputs, _submodels
from ._docs import fill_doc
from ._validation import check_effects_options, is_in_memory, log_library_sizes, required_obs_column

logger = logging.getLogger(__name__)

Z_SOURCES = ("soft", "hard")


class AnalysisMethods:
    """The data of the analyses, treatment effects, sensitivity, cross-fitting and AnnData output of ZConf."""

    def get_marginal_log_likelihood(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """The exact log p(D, Y | X) = log Σ_z p(z) p(D | X, z) p(Y | X, D, z) of each cell, in nats.

        The sum runs over every state of Z under the learned prior, so the generator plays no part: a Z-hat
        that copies D cannot raise it. Scored on cells a model was not trained on, it compares models with
        different numbers of confounders (0 included) on the same footing.

        Returns
        -------
        Array of shape ``(n_obs,)``, in input order.
        """
        return self._per_cell(self.module.marginal_log_likelihood, adata, indices, batch_size)

    def get_confounding_gain(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """What the link between Z and the treatment adds to each cell's log p(D, Y | X), in nats.

        A confounder drives both who is treated and what the genes do. A hidden state that explains the counts
        but is not linked to the treatment (given X) is no confounder: adjusting for it cannot remove bias, and
        its Z-hat, inferred from counts that the treatment also moves, can add some. This is the model's
        likelihood minus that of the same model with Z independent of D given X
        (:meth:`zconf.module.ZConfModule.confounding_gain`): 0 when the classifier does not use Z. Over
        a candidate's cells, twice its sum is the likelihood-ratio statistic of the link that ``n_latent="auto"``
        requires of a candidate (:class:`zconf.analysis.TreatmentLink`; the ``treatment_link_per_cell`` and
        ``treatment_link_pvalue`` columns of ``latent_selection_``).

        Returns
        -------
        Array of shape ``(n_obs,)``, in input order (zeros for the model without Z).
        """
        return self._per_cell(self.module.confounding_gain, adata, indices, batch_size)

    def _per_cell(self, per_cell, adata, indices, batch_size) -> np.ndarray:
        """One value per cell from a module method on minibatches (:func:`zconf.model._outputs.collect_per_cell`)."""
        self._check_trained()
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        return _outputs.collect_per_cell(self.module, per_cell, loader)

    @fill_doc
    def get_design(
        self, adata: AnnData | None = None, reference_coding: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The covariate design X ``(n_obs, n_covariates)`` and treatment D ``(n_obs,)``, in input order.

        Parameters
        ----------
        {param_adata}
        reference_coding
            Drop the first level of each categorical covariate (default: as the heads do, i.e. when they
            have an intercept).
        """
        adata = self._validate_anndata(adata)
        return _outputs.collect_design(self.module, self._make_data_loader(adata=adata), reference_coding)

    def regression_data(self, adata: AnnData | None = None, reference_coding: bool | None = True) -> RegressionData:
        """Counts, covariates, treatment and log library offset of the registered cells.

        ``reference_coding`` is passed to :meth:`get_design` (``True``: first level of each categorical
        covariate dropped, for a GLM with intercept; ``None``: as the model's heads code them).

        Returns
        -------
        :class:`~zconf.glm.RegressionData` (sparse counts stay sparse; ``offset`` is the log size factor when
        one is registered, else the log total count of each cell, ``None`` with ``use_observed_lib_size=False``).
        """
        adata = self._validate_anndata(adata)
        manager = self.get_anndata_manager(adata, required=True)
        covariates, treatment = self.get_design(adata, reference_coding=reference_coding)
        counts = manager.get_from_registry(REGISTRY_KEYS.X_KEY)
        # the same precedence as the NB head's offset (ZConfModule.log_library), here for all cells at once
        if REGISTRY_KEYS.SIZE_FACTOR_KEY in manager.data_registry:
            size_factor = np.asarray(manager.get_from_registry(REGISTRY_KEYS.SIZE_FACTOR_KEY), dtype=float)
            return RegressionData(counts, covariates, treatment, np.log(size_factor.ravel()))
        if self.module.use_observed_lib_size:
            return RegressionData(counts, covariates, treatment, log_library_sizes(counts, len(treatment)), True)
        return RegressionData(counts, covariates, treatment)

    def _effects_z(self, adata: AnnData, adjust: bool, z, n_obs: int) -> np.ndarray | None:
        """The Z columns of the effects design: Z-hat (soft or hard), a user's array, or none."""
        if isinstance(z, str) and z not in Z_SOURCES:
            msg = f"`z` must be one of {list(Z_SOURCES)} or an array of shape (n_obs, k), got {z!r}."
            raise ValueError(msg)
        if not adjust:
            return None
        if not isinstance(z, str):
            return latent_block(z, n_obs)
        # a categorical Z drops its first level beside the intercept
        values = self.module.latent.design_columns(self.get_latent_representation(adata, soft=(z == "soft")))
        return values if values.shape[1] else None  # the model without Z: the unadjusted fit

    @fill_doc
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
        sample_key: str | None = None,
        groupby: str | None = None,
        shift_correction: bool | None = None,
        weight_samples: bool = False,
    ) -> pd.DataFrame:
        """Per-gene treatment effects from a negative binomial GLM adjusted for Z-hat.

        For every gene, an NB GLM with log link of Y on [1, X, D, Z-hat] (or [1, X, D] with ``adjust=False``)
        is fitted by vectorised IRLS over all genes at once, with log size factors as offset when a size
        factor is registered. The effect is the D coefficient. These p-values treat every cell as an
        independent replicate: when whole samples (donors, wells, mice) were treated, they are far too small,
        and ``sample_key`` gives sample-aware (pseudobulk) tests instead.

        Parameters
        ----------
        {param_adata}
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
        sample_key
            ``adata.obs`` column naming the replicate unit (donor, well, mouse; donor x condition when both arms
            come from each donor). Given, the effects are sample-aware: counts are summed per sample, Z-hat
            enters as each sample's composition (its share of the library in each state), and D is tested by
            a quasi-likelihood F-test whose degrees of freedom come from samples
            (:func:`zconf.analysis.pseudobulk_effects`, with its defaults: pseudobulks of fewer than 10 cells
            are left out with a warning). Each sample must have one treatment value. ``robust``,
            ``dispersion`` and ``min_cells`` apply to the per-cell fit only.
        groupby
            With ``sample_key``: an ``adata.obs`` column of cell groups (cell type) that get one table each, as
            muscat does (a ``(group, gene)`` MultiIndex). Needed when a registered covariate varies within
            samples.
        shift_correction
            Whether Z-hat is shifted in the treated arm so that most genes carry no effect along its signature
            (:func:`zconf.analysis.shift_along_signature`). A continuous Z leaves that shift unidentified: its mean
            moving between the arms and effects proportional to its signature fit the counts equally. ``None``
            (default): for the ``"normal"`` latent only, the one family with that ambiguity; binary and
            categorical states are identified by their mixture proportions. The shift is in
            ``table.attrs["z_shift"]``. It assumes that most genes are unaffected by the treatment, as the
            median-gene centring of a library offset does.
        weight_samples
            Per-cell fit only: weight the cells so that every sample registered by
            ``setup_anndata(sample_key=...)`` has the same total (:func:`zconf.glm.sample_weights`), in the
            naive and the adjusted fit alike. Where samples' cell numbers differ between the arms (a drug that
            kills cells, a slice that yields fewer), the pooled cells mix donors or tissues differently in each
            arm, a confounding that no state's share across samples shows. It also changes what is estimated
            (an average over samples, not over cells) and gives a few-cell sample a large weight. Measured
            (``benchmarks/real_confounded.py --sample-key``, effects against the cell-pooled patient- or
            donor-adjusted fit of the full data): glioblastoma slices of 55-500 cells, one per patient and arm,
            0.46-0.50x the naive fit's distance (the hidden-patient oracle 0.40-0.59x); Kang wells of 113-3,138
            cells, 3 donors, 1.24-2.84x: so it is not the default. Only the estimate counts samples alike: the
            p-values still count cells as replicates (``robust=True`` gives the sandwich SEs of weighted cells);
            for tests with samples as replicates use ``sample_key``.

        Returns
        -------
        DataFrame indexed by gene (by ``(group, gene)`` with ``groupby``) with ``lfc`` (natural log),
        ``log2fc``, ``se``, ``stat`` (Wald z), ``pvalue``, ``padj`` (Benjamini–Hochberg over testable genes),
        ``ci_low``, ``ci_high``, ``mean_control`` and ``mean_treated`` (mean counts per arm), ``dispersion``,
        ``converged``, ``too_sparse`` and ``separated``
        (all zeros in one arm only: ``lfc`` is ±inf, ``se``, ``stat`` and the interval are NaN, and the
        p-value comes from a likelihood-ratio test, which stays valid where the Wald test has no power). With
        ``sample_key`` also ``n_samples_control``, ``n_samples_treated``, ``df`` (the F-test's denominator
        degrees of freedom), ``df_residual``, ``ql_dispersion`` and ``z_adjusted`` (False where Z-hat's share in
        each sample would leave the test no residual degrees of freedom; a warning says so); ``stat`` is then the
        signed √F.

        Examples
        --------
        {example_trained_zconf}
        >>> table = model.treatment_effects()
        >>> list(table.columns[:6])
        ['lfc', 'log2fc', 'se', 'stat', 'pvalue', 'padj']
        >>> oracle = model.treatment_effects(z=adata.obsm["z_true"])  # the true Z in place of Z-hat
        """
        check_effects_options(alpha, dispersion)
        self._check_trained()
        adata = self._validate_anndata(adata)
        data = self.regression_data(adata)
        if not is_in_memory(data.counts):
            msg = (
                "treatment_effects needs the counts in memory (the per-gene GLMs read every cell of each gene); "
                "this AnnData is backed. Load it with adata.to_memory() (a sparse matrix stays sparse)."
            )
            raise ValueError(msg)
        if weight_samples:
            data = replace(data, weights=self._sample_weights(adata, sample_key, groupby))
        z_columns = self._effects_z(adata, adjust, z, data.n_obs)
        shift = None
        if z_columns is not None and isinstance(z, str) and self._shifts_z(shift_correction):
            z_columns, shift = shift_along_signature(data, z_columns, device=device)
            logger.info("Z-hat shifted by %.3f in the treated arm along its gene signature (shift_correction).", shift)
        if sample_key is not None or groupby is not None:
            table = self._pseudobulk_effects(adata, data, z_columns, sample_key, groupby, alpha)
            table.attrs["z_shift"] = shift
            return table
        fixed = None
        if dispersion == "model":
            fixed = self.get_predictions(adata, indices=[0])["dispersion"]
        table = treatment_effects(
            data,
            z_columns,
            gene_names=adata.var_names,
            alpha=alpha,
            robust=robust,
            dispersion=fixed,
            min_cells=min_cells,
            device=device,
        )
        table.attrs["z_shift"] = shift
        return table

    def _setup_arg(self, name: str, adata: AnnData | None = None):
        """An argument of ``setup_anndata`` as registered (``None`` when absent: models saved before it existed)."""
        manager = self.get_anndata_manager(adata if adata is not None else self.adata, required=True)
        return manager.registry["setup_args"].get(name)

    def _sample_weights(self, adata: AnnData, sample_key: str | None, groupby: str | None) -> np.ndarray:
        """:func:`zconf.glm.sample_weights` of the samples registered by ``setup_anndata(sample_key=...)``."""
        if sample_key is not None or groupby is not None:
            msg = "`weight_samples` weights the per-cell fit; the sample-aware effects (`sample_key`) count samples."
            raise ValueError(msg)
        registered = self._setup_arg("sample_key", adata)
        if registered is None:
            msg = (
                "`weight_samples=True` needs the samples the treatment was given to: register them with "
                "ZConf.setup_anndata(..., sample_key=<obs column>)."
            )
            raise ValueError(msg)
        return sample_weights(required_obs_column(adata, registered, "sample_key", "of the samples").to_numpy())

    def _shifts_z(self, shift_correction: bool | None) -> bool:
        """Whether the effects shift Z-hat along its signature: as asked, else for the normal latent only."""
        if shift_correction is None:
            return self.latent_distribution_ == "normal"
        if not isinstance(shift_correction, bool):
            msg = f"`shift_correction` must be True, False or None, got {shift_correction!r}."
            raise ValueError(msg)
        if shift_correction and self.module.latent.n_columns != 1:
            msg = (
                "shift_correction=True needs one continuous Z-hat column (latent_distribution='normal'); this model "
                f"has {self.latent_distribution_} {self.n_latent_}."
            )
            raise ValueError(msg)
        return shift_correction

    def _pseudobulk_effects(self, adata, data, z_columns, sample_key, groupby, alpha) -> pd.DataFrame:
        """Sample-aware effects on the registered cells: the ``sample_key`` branch of :meth:`treatment_effects`.

        ``adata`` is validated already; :func:`~zconf.analysis.pseudobulk_effects` checks that the samples nest in
        the treatment.
        """
        samples, groups = _sample_labels(adata, sample_key, groupby)
        self._check_covariates_constant_in_pseudobulks(adata, samples, groups, sample_key)
        return pseudobulk_effects(data, samples, z_columns, groups=groups, alpha=alpha, gene_names=adata.var_names)

    def check_sample_keys(self, sample_key: str | None, groupby: str | None = None, adata: AnnData | None = None):
        """Check the ``sample_key`` and ``groupby`` of sample-aware effects before anything is fitted.

        The columns must exist without missing labels, every sample must hold one treatment value (the sample
        is the replicate unit of the test), and the registered covariates must be constant within each pseudobulk
        (a cell type as a covariate needs ``groupby``). ``zconf fit --sample-key`` calls this before training, so
        that a wrong key fails at once and not after the fit; :meth:`treatment_effects` makes the same checks.
        """
        adata = self._validate_anndata(adata)
        samples, groups = _sample_labels(adata, sample_key, groupby)
        if samples is not None:
            treatment = self.get_anndata_manager(adata).get_from_registry(REGISTRY_KEYS.TREATMENT_KEY)
            check_samples_nest(np.asarray(treatment).ravel(), samples)
            self._check_covariates_constant_in_pseudobulks(adata, samples, groups, sample_key)

    def _check_covariates_constant_in_pseudobulks(self, adata: AnnData, samples, groups, sample_key: str) -> None:
        """A ValueError naming the first registered covariate that varies between the cells of one pseudobulk."""
        keys = [
            *(self._setup_arg("categorical_covariate_keys", adata) or []),
            *(self._setup_arg("continuous_covariate_keys", adata) or []),
        ]
        pseudobulk = pd.Series(samples).astype(str) + ("" if groups is None else " / " + pd.Series(groups).astype(str))
        for key in keys:
            if (pd.Series(adata.obs[key].to_numpy()).groupby(pseudobulk.to_numpy()).nunique() > 1).any():
                msg = (
                    f"The covariate {key!r} varies between the cells of one sample of {sample_key!r}, and a pseudobulk "
                    f"has one value per covariate. A cell-level categorical such as cell type goes to `groupby` "
                    "(`--groupby`: one table per level); a per-cell continuous covariate such as the log library is "
                    "left out of the sample-aware effects (the pseudobulk's library size is their offset): set up a "
                    "model without it, or use the per-cell effects."
                )
                raise ValueError(msg)

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
        adata = self._validate_anndata(adata)
        data = self.regression_data(adata)
        z_hat = self.module.latent.design_columns(self.get_latent_representation(adata, soft=soft))
        values = deviance_partial_r2_from_arrays(
            data.counts, data.covariates, data.treatment, z_hat, offset=data.offset
        )
        values["genes"] = pd.Series(values["genes"], index=adata.var_names, name="partial_r2")
        return values

    @fill_doc
    def get_cross_fitted_latent(
        self,
        n_folds: int = 2,
        *,
        soft: bool = True,
        random_state: int | None = 0,
        train_kwargs: dict | None = None,
    ) -> np.ndarray:
        """Z-hat for each cell from a model trained on the other folds (cross-fitting).

        The cells are split into ``n_folds`` folds (stratified by treatment). For each fold, a model with
        this model's architecture is trained on the other folds and gives Z-hat for the held-out cells,
        from their own covariates, treatment and counts. The fold models' Z columns are aligned with this
        model's (order and 0/1 labels, :func:`zconf.analysis.column_alignment`) before the folds are put
        together.

        Pass the result to :meth:`treatment_effects` as ``z=``. Cross-fitting removes the dependence of
        the generator's *weights* on the cell being adjusted; it does not remove the dependence of a cell's
        Z-hat on its own counts, which is how Z is inferred at all. ``benchmarks/effects.py`` measures
        whether it changes calibration (it costs ``n_folds`` extra trainings).

        Parameters
        ----------
        n_folds
            Number of folds (at least 2).
        soft
            Return probabilities (default) rather than 0/1.
        random_state
            Seed of the fold split. The fold models' initialisation follows their ``train()`` keywords.
        train_kwargs
            Keywords of the fold models' ``train()``. ``None`` reuses those of this model's last
            ``train()`` call (epochs, batch size, plan keywords, restarts, seed, accelerator, progress bar);
            epochs chosen automatically are chosen again for the smaller training folds.

        Returns
        -------
        Array ``(n_obs, n_latent)`` in the order of the registered cells.

        Examples
        --------
        {example_trained_zconf}
        >>> z_cross = model.get_cross_fitted_latent(n_folds=2)
        >>> z_cross.shape
        (300, 1)
        >>> table = model.treatment_effects(z=z_cross)
        """
        self._check_trained()
        _submodels.check_cross_fit(self, n_folds)
        if train_kwargs is None:
            train_kwargs = dict(getattr(self, "train_call_", {}))
        if self.n_latent_ == 0:
            return np.zeros((self.adata.n_obs, 0))
        crossed = _submodels.cross_fitted_latent(self, n_folds, random_state, train_kwargs)
        return crossed if soft else self.module.latent.hard(crossed)

    @fill_doc
    def state_overlap(self, adata: AnnData | None = None, batch_size: int | None = None) -> pd.DataFrame:
        """Each state of Z-hat with its share of the cells and treated share P(D = 1 | state): the overlap.

        A confounder's states appear in both arms. A state the treatment itself creates (responding cells, a
        mediator) appears among the treated only, with a treated share near 1, which is also a violation of
        positivity; adjusting for it biases the effects. Candidates of ``n_latent="auto"`` with a state whose
        treated share lies outside [0.05, 0.95] (and that holds at least 2% of the cells) are never chosen.

        Parameters
        ----------
        {param_adata_same_genes}
        {param_batch_size}

        Returns
        -------
        :func:`zconf.analysis.state_overlap`: by state (binary factors' 0/1 values, or the level of a categorical
        Z), with ``cells`` (expected number, from the posterior weights), ``share``, ``treated_share`` and
        ``overlap``.
        """
        self._check_trained()
        adata = self._validate_anndata(adata)
        weights = _outputs.collect_state_weights(
            self.module, self._make_data_loader(adata=adata, batch_size=batch_size)
        )
        labels = self.module.latent.state_labels(self.module.states.cpu().numpy())
        return state_overlap(weights, self.regression_data(adata).treatment, labels)

    @fill_doc
    def annotate_adata(
        self, adata: AnnData | None = None, *, key_added: str = "zconf", copy: bool = False
    ) -> AnnData | None:
        """Write Z-hat and the predictions into the AnnData.

        Parameters
        ----------
        {param_adata_same_genes}
        key_added
            Prefix of every key written.
        copy
            Return an annotated copy instead of writing in place.

        Returns
        -------
        ``None``, or the annotated copy when ``copy=True``. Sets these fields:

        ``adata.obsm[f"X_{key_added}"]``
            Hard Z-hat, ``(n_obs, n_latent)`` (for ``sc.pp.neighbors(adata, use_rep="X_zconf")``); zero columns
            when no confounder was chosen.
        ``adata.obs[f"{key_added}_z0"], ...``
            P(Z_j = 1 | X, D, Y) per latent, for ``sc.pl.violin`` / ``sc.pl.umap(color=...)``; for a categorical
            Z, P(Z = level j | X, D, Y) per level.
        ``adata.obs[f"{key_added}_level"]``
            Categorical Z only: the most likely level, a categorical column (``sc.pl.umap(color="zconf_level")``).
        ``adata.obs[f"{key_added}_d_prob"]``
            The classifier's P(D = 1 | X, Z-hat).
        ``adata.layers[f"{key_added}_mean"]``
            The NB head's predicted means at Z-hat.
        ``adata.uns[key_added]``
            ``{"params": {...model parameters, "n_latent", "version"}}``.
        """
        from zconf import __version__

        adata = self._validate_anndata(adata)
        predictions = self.get_predictions(adata)
        adata = adata.copy() if copy else adata
        params = {**self.init_params_["non_kwargs"], **self.init_params_["kwargs"].get("kwargs", {})}
        params.pop("adata", None)
        params.update(n_latent=self.n_latent_, latent_distribution=self.latent_distribution_, version=__version__)
        categorical = self.latent_distribution_ == "categorical"
        _outputs.write_outputs(adata, predictions, params, key_added, categorical=categorical)
        return adata if copy else None


def _sample_labels(adata: AnnData, sample_key: str | None, groupby: str | None):
    """The ``sample_key`` and ``groupby`` columns of ``adata.obs`` as arrays (``None`` for a ``None`` key)."""
    if sample_key is None:
        if groupby is not None:
            msg = "`groupby` needs `sample_key`: name the adata.obs column of the replicate unit (e.g. 'donor')."
            raise ValueError(msg)
        return None, None
    samples = required_obs_column(adata, sample_key, "sample_key", "replicate unit").to_numpy()
    groups = None if groupby is None else required_obs_column(adata, groupby, "groupby", "cell group").to_numpy()
    return samples, groups
