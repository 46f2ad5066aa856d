"""ZConf: the scvi-tools model class (setup_anndata, train, getters, annotate_adata)."""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi.data import AnnDataManager
from scvi.data.fields import CategoricalJointObsField, LayerField, NumericalJointObsField, NumericalObsField
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin
from scvi.utils import setup_anndata_dsp

from zconf._constants import GENERATOR_INPUTS, MODULE_KEYS, REGISTRY_KEYS
from zconf.dataloaders import InMemoryDataSplitter, make_data_loader
from zconf.module import ZConfModule
from zconf.train import ZConfTrainingPlan

from . import _outputs, _submodels, _training, _validation
from ._base import ZconfModelMixin
from ._docs import fill_doc
from ._fields import TreatmentObsField
from ._methods import AnalysisMethods


@fill_doc
class ZConf(ZconfModelMixin, AnalysisMethods, UnsupervisedTrainingMixin, BaseModelClass):
    """Infer unmeasured confounders Z-hat (binary factors or a categorical one) from X, treatment D and counts Y.

    The module has three sub-networks: a generator (an MLP on [X, D, Y] with ``n_hidden`` ReLU units and
    ``n_latent`` sigmoid outputs), a linear logistic classifier D ~ [X, Z-hat], and a linear NB head with
    log link Y ~ [X, D, Z-hat] and a per-gene dispersion. Training alternates predictor phases
    (generator frozen) and generator phases (heads frozen) through :class:`~zconf.train.ZConfTrainingPlan`.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata`.
    n_hidden
        Hidden units of the generator.
    {param_zconf_latent}
    dispersion_key
        ``adata.var`` column of known NB dispersions α (Var = μ + α μ²); ``None``: one learned per gene.
    y_transform
        How counts enter the generator: ``"log1p"`` (default), ``"counts"`` (raw, as in the notebook) or
        ``"log1p_normalized"``.
    generator_inputs
        Which of ``"covariates"``, ``"treatment"``, ``"counts"`` the generator sees (default: all three).

    Examples
    --------
    {example_trained_zconf}
    >>> model.get_latent_representation().shape
    (300, 1)
    """

    _module_cls = ZConfModule
    _training_plan_cls = ZConfTrainingPlan
    _data_splitter_cls = InMemoryDataSplitter  # minibatches sliced in memory (zconf.dataloaders: why)
    _data_loader_cls = staticmethod(make_data_loader)
    _saved_before_defaults = {"use_observed_lib_size": False, "compositional_latent": False}  # (ZconfModelMixin)
    _saved_before_shapes = {"treatment_interactions": False}
    _head_start = None  # a _training.HeadStart the candidates of n_latent="auto" share; None: each train() computes it
    _warns_after_training = True  # the checks of Z-hat after train(); off for the candidates, whose warnings are muted

    def __init__(
        self,
        adata: AnnData | None = None,
        n_hidden: int = 128,
        n_latent: int | Literal["auto"] = "auto",
        max_latent: int = 4,
        latent_distribution: Literal["bernoulli", "categorical", "normal"] | None = None,
        max_levels: int = 8,
        relaxation: Literal["marginal", "straight_through", "gumbel", "continuous"] = "marginal",
        intercept: bool = True,
        use_observed_lib_size: bool = True,
        compositional_latent: bool = True,
        treatment_interactions: bool = True,
        dispersion_key: str | None = None,
        y_transform: Literal["log1p", "counts", "log1p_normalized"] = "log1p",
        generator_inputs: Sequence[str] = GENERATOR_INPUTS,
        **kwargs,
    ):
        super().__init__(adata)
        validated = None if dispersion_key is None else _validation.validate_dispersion(self.adata, dispersion_key)
        cat_state = self.adata_manager.get_state_registry(REGISTRY_KEYS.CAT_COVS_KEY)
        self._module_kwargs = {
            "n_input": self.summary_stats.n_vars,
            "n_continuous_cov": self.summary_stats.get("n_extra_continuous_covs", 0),
            "n_cats_per_cov": list(cat_state.n_cats_per_key) if cat_state else [],
            "n_hidden": n_hidden,
            "relaxation": relaxation,
            "intercept": intercept,
            "fixed_dispersion": None if validated is None else torch.as_tensor(validated),
            "y_transform": y_transform,
            "generator_inputs": tuple(generator_inputs),
            "use_size_factor": REGISTRY_KEYS.SIZE_FACTOR_KEY in self.adata_manager.data_registry,
            "use_observed_lib_size": use_observed_lib_size,
            "compositional_latent": compositional_latent,
            "treatment_interactions": self.saved_default("treatment_interactions", treatment_interactions),
            **kwargs,
        }
        _validation.check_n_latent(n_latent, max_latent, latent_distribution, max_levels)
        self.latent_selection_: pd.DataFrame | None = None
        distribution = latent_distribution or "bernoulli"
        first_size = (2 if distribution == "categorical" else 1) if n_latent == "auto" else n_latent  # rebuilt
        self.module = self._module_cls(n_latent=first_size, latent_distribution=distribution, **self._module_kwargs)
        self._model_summary_string = (
            f"ZConf: n_latent={n_latent}, latent_distribution={latent_distribution!r}, n_hidden={n_hidden}, "
            f"relaxation={relaxation!r}, intercept={intercept}, use_observed_lib_size={use_observed_lib_size}, "
            f"dispersion={'fixed' if dispersion_key else 'learned'}, generator_inputs={list(generator_inputs)}"
        )
        self.init_params_ = self._get_init_params(locals())

    @property
    def n_latent_(self) -> int:
        """Number of latent factors, or levels of a categorical one (after ``train()`` for ``n_latent="auto"``)."""
        return self.module.n_latent

    @n_latent_.setter
    def n_latent_(self, n_latent: int) -> None:
        self.set_latent(self.latent_distribution_, n_latent)

    @property
    def latent_distribution_(self) -> str:
        """``"bernoulli"``, ``"categorical"`` or ``"normal"``: the latent family (``n_latent="auto"`` chooses)."""
        return self.module.latent_distribution

    @latent_distribution_.setter
    def latent_distribution_(self, distribution: str) -> None:
        sizes = {"categorical": max(self.n_latent_, 2), "normal": 1}  # the smallest valid size of each family
        self.set_latent(distribution, sizes.get(distribution, self.n_latent_))

    def set_latent(self, distribution: str, n_latent: int) -> None:
        """Replace the module by an untrained one with this latent, unless it already has it.

        Used by ``n_latent="auto"`` and scvi-tools' load (which sets ``n_latent_`` and ``latent_distribution_``).
        """
        if (distribution, n_latent) != (self.latent_distribution_, self.n_latent_):
            kwargs = {"n_latent": int(n_latent), "latent_distribution": distribution, **self._module_kwargs}
            self.module = self._module_cls(**kwargs)

    @classmethod
    @setup_anndata_dsp.dedent
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        treatment_key: str | None = None,
        control_level: str | int | bool | None = None,
        categorical_covariate_keys: list[str] | None = None,
        continuous_covariate_keys: list[str] | None = None,
        size_factor_key: str | None = None,
        sample_key: str | None = None,
        **kwargs,
    ) -> None:
        """%(summary)s.

        The arguments are checked first; bad input raises an error that names the key or value. Registration
        adds scvi-tools' bookkeeping (``adata.uns["_scvi_uuid"]``, ``adata.uns["_scvi_manager_uuid"]``,
        ``adata.obs["_scvi_treatment"]``, for covariates ``adata.obsm["_scvi_extra_*_covs"]``), nothing else.

        Parameters
        ----------
        %(param_adata)s
        %(param_layer)s
        treatment_key
            ``adata.obs`` column with the binary treatment: bool, 0/1, or two categories.
        control_level
            The level of ``treatment_key`` that is the control (D = 0). Needed for two-level string
            columns; defaults to ``False``/``0``, or the first category of a categorical column.
        %(param_cat_cov_keys)s
        %(param_cont_cov_keys)s
        %(param_size_factor_key)s
        sample_key
            ``adata.obs`` column of the unit the treatment was given to (slice, well; one treatment per sample):
            ``n_latent="auto"`` then tests a state's link across samples (:class:`zconf.analysis.SampleLink`).
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        levels = _validation.validate_setup(adata, **setup_method_args["setup_args"])
        anndata_fields = [
            LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=True),
            TreatmentObsField(REGISTRY_KEYS.TREATMENT_KEY, treatment_key, levels),
            NumericalObsField(REGISTRY_KEYS.SIZE_FACTOR_KEY, size_factor_key, required=False),
            CategoricalJointObsField(REGISTRY_KEYS.CAT_COVS_KEY, categorical_covariate_keys),
            NumericalJointObsField(REGISTRY_KEYS.CONT_COVS_KEY, continuous_covariate_keys),
        ]
        adata_manager = AnnDataManager(fields=anndata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(adata, **kwargs)
        cls.register_manager(adata_manager)

    # ------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int | None = None,
        *,
        batch_size: int | None = None,
        train_size: float | None = None,
        plan_kwargs: dict | None = None,
        n_init: int = 3,
        max_restarts: int = 2,
        random_state: int | None = 0,
        **kwargs,
    ) -> None:
        """Train with the alternating schedule, keeping the best of several initialisations.

        Parameters
        ----------
        max_epochs
            Number of epochs (predictor and generator epochs both count). ``None`` picks about 1,600
            minibatch steps, between 20 and 200 epochs (:func:`~zconf.model.default_max_epochs`); above 160
            minibatches per pass (20,480 cells at batch 128) these are 20 epochs of 160 minibatches drawn at
            random (:func:`~zconf.model.default_epoch_batches`, Lightning's ``limit_train_batches``), so that
            the default fit takes about the same time at any number of cells. A number here means full passes.
        batch_size
            Minibatch size. Default 128, or all cells when there are fewer; a larger value than the number of
            cells raises an error.
        train_size
            Fraction of cells used for training. Default 1.0: Z-hat is a per-cell latent, so every cell
            informs the fit, as in a GLM or factor model; pass e.g. 0.9 to monitor a validation loss.
        plan_kwargs
            Keyword arguments of :class:`~zconf.train.ZConfTrainingPlan` (learning rates, phase lengths,
            loss weights, schedule).
        n_init
            Number of initialisations. With more than one, each is trained for a short screening run (about
            7.5% of the epochs), and the one with the lowest training loss (negative ELBO) is trained on to
            ``max_epochs``, as ``n_init`` in scikit-learn's mixture models but cheaper.
        max_restarts
            Extra initialisations tried only when the best fit collapsed (a Z-hat column with more than 97% of
            cells in one state, EM's known bad local optimum).
        random_state
            Seed of the initialisations, the minibatch order, the data splitter's permutation of the cells and
            the held-out split of ``n_latent="auto"`` (initialisation ``r`` uses ``random_state + r``), scanpy's
            convention: the same call on the same data gives the same Z-hat, whatever ``scvi.settings.seed`` is.
            An untrained model's weights are drawn anew from it; torch's global generators are restored
            afterwards. ``None``: the weights as constructed and the global random state (``scvi.settings.seed``).
        **kwargs
            Passed to :meth:`scvi.model.base.UnsupervisedTrainingMixin.train` and on to the Lightning
            ``Trainer`` (``accelerator``, ``devices``, ``strategy``, ``enable_progress_bar``, ...).
        """
        asked = {"max_epochs": max_epochs, "batch_size": batch_size, "train_size": train_size}
        train_kwargs = _training.resolve_train_kwargs(self.adata.n_obs, {**asked, "plan_kwargs": plan_kwargs}, kwargs)
        train_kwargs = _training.with_split_seed(train_kwargs, random_state)
        distributed = _training.is_distributed(train_kwargs)
        _training.check_restarts(n_init, max_restarts, distributed)
        # what the user asked for (not the resolved defaults), for sub-models that train the same way; only
        # plain values are kept (the attribute is saved with the model, callbacks and loggers are not)
        call = {**asked, "plan_kwargs": deepcopy(plan_kwargs), "n_init": n_init, "max_restarts": max_restarts}
        call.update(random_state=random_state, **kwargs)
        self.train_call_ = {key: call[key] for key in _training.REUSED_TRAIN_KEYS if key in call}
        with _training.seeded(random_state):  # the user's random streams are restored afterwards
            warm_state = None
            if self.init_params_["non_kwargs"]["n_latent"] == "auto" and not self.is_trained_:
                warm_state = _submodels.choose_n_latent(self)
            # every process of a multi-device fit must make the same restart decisions: one fit there
            restarts = 0 if distributed else max_restarts
            _training.fit_with_restarts(self, train_kwargs, n_init, restarts, random_state, warm_state)
            if self._warns_after_training:
                self._warn_if_uninformative()

    def _train_once(self, train_kwargs: dict) -> None:
        """scvi-tools' training loop; plan keywords are copied, trainer keywords passed as given."""
        UnsupervisedTrainingMixin.train(self, **{**train_kwargs, "plan_kwargs": deepcopy(train_kwargs["plan_kwargs"])})

    def _warn_if_uninformative(self) -> None:
        z_prob = self.module.latent.informative_columns(self.get_latent_representation(soft=True))
        _training.warn_if_uninformative(z_prob, self.regression_data(), self.module.z_log_fold_changes().cpu().numpy())

    def fit_baselines(self) -> None:
        """Fit the DBPR baselines without Z (logistic D ~ [1, X], per-gene NB Y ~ [1, X, D]) on all cells.

        The training plan calls this itself when ``dbpr_weight > 0``; the baselines are module buffers and
        are saved with the model.
        """
        ZConfTrainingPlan.fit_baselines(self.module, self._make_data_loader(adata=self.adata))

    def _validate_anndata(self, adata: AnnData | None = None, copy_if_view: bool = True) -> AnnData:
        """scvi-tools' validation, after a new AnnData's genes and counts are checked against the training data."""
        if adata is not None and self.adata is not None:
            _validation.check_same_genes(adata, self.adata.var_names, _validation.unregistered_layer(self, adata))
        return super()._validate_anndata(adata, copy_if_view=copy_if_view)

    # ------------------------------------------------------------------ getters
    @fill_doc
    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        soft: bool = False,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Z-hat for each cell, in input order.

        Parameters
        ----------
        {param_adata_same_genes}
        {param_indices}
        soft
            Return the probabilities P(Z=1 | X, D, Y) instead of the hard 0/1 Z-hat (for a categorical Z: the
            level probabilities instead of the one-hot most likely level).
        {param_batch_size}

        Returns
        -------
        Array of shape ``(n_obs, n_latent)`` (``(n_obs, 0)`` for the model without Z).
        """
        key = MODULE_KEYS.Z_PROB_KEY if soft else MODULE_KEYS.Z_KEY
        predictions = self.get_predictions(adata, indices=indices, batch_size=batch_size, keys=(key,))
        return predictions["z_prob" if soft else "z_hat"]

    @fill_doc
    def get_predictions(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        keys: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Every per-cell output of the model (the notebook's ``predict_all``), heads at the hard Z-hat, in input order.

        Parameters
        ----------
        {param_adata_same_genes}
        {param_indices}
        {param_batch_size}
        keys
            Module keys to compute; all when ``None`` (the heads are skipped when only Z is asked for).

        Returns
        -------
        Dict with ``z_hat`` and ``z_prob`` ``(n_obs, n_latent)``, ``d_logit`` and ``d_prob`` ``(n_obs,)``,
        ``log_mean`` and ``mean`` ``(n_obs, n_vars)``, and ``dispersion`` ``(n_vars,)``.
        """
        self._check_trained()
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        return _outputs.collect_predictions(self.module, loader, keys)

    def get_predicted_mean(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Predicted NB means ``(n_obs, n_vars)`` at Z-hat, in input order."""
        return self.get_predictions(adata, indices=indices, batch_size=batch_size)["mean"]
