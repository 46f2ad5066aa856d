"""ZConf: the scvi-tools model class (setup_anndata, train, getters, annotate_adata)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from copy import deepcopy

import numpy as np
import torch
from anndata import AnnData
from scvi.data import AnnDataManager
from scvi.data.fields import CategoricalJointObsField, LayerField, NumericalJointObsField, NumericalObsField
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin
from scvi.utils import setup_anndata_dsp

from zconf._constants import GENERATOR_INPUTS, MODULE_KEYS, OUTPUT_KEYS, REGISTRY_KEYS
from zconf.module import ZConfModule
from zconf.train import ZConfTrainingPlan

from . import _validation
from ._base import ZconfModelMixin
from ._crossfit import REUSED_TRAIN_KEYS, CrossFitMixin
from ._effects import TreatmentEffectsMixin
from ._fields import TreatmentObsField

logger = logging.getLogger(__name__)

#: Training defaults merged under the user's arguments (chosen by the measurements in benchmarks/).
DEFAULT_TRAIN_KWARGS: dict = {
    "max_epochs": None,
    "batch_size": 128,
    "train_size": 1.0,
    "early_stopping": False,
    "plan_kwargs": {},
}


def default_max_epochs(n_obs: int, batch_size: int) -> int:
    """Epochs for about 1,600 minibatch steps, between 20 and 200, rounded up to an even number.

    Measured on the simulation presets: recovery plateaus after ~400-800 steps (benchmarks/); 1,600 leaves
    margin, and small data sets get up to 200 epochs (400 cells: 800 steps). An even count ends on a
    generator phase with the default one-epoch phases.
    """
    n_batches = max(1, -(-n_obs // batch_size))
    epochs = min(200, max(20, -(-1600 // n_batches)))
    return epochs + (epochs % 2)


def _is_distributed(train_kwargs: dict) -> bool:
    """Whether the Trainer keywords ask for more than one device or process (DDP and friends)."""
    devices = train_kwargs.get("devices")
    many = isinstance(devices, int) and devices > 1 or isinstance(devices, list | tuple) and len(devices) > 1
    return many or "ddp" in str(train_kwargs.get("strategy", "")) or (train_kwargs.get("num_nodes") or 1) > 1


def _h5ad_safe(value):
    """Make a value writable to ``uns`` by h5py: tuples become lists, ``None`` entries are dropped."""
    if isinstance(value, dict):
        return {str(k): _h5ad_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, tuple | list):
        return [_h5ad_safe(v) for v in value]
    return value


class ZConf(ZconfModelMixin, TreatmentEffectsMixin, CrossFitMixin, UnsupervisedTrainingMixin, BaseModelClass):
    """Infer an unmeasured binary confounder Z-hat from covariates X, treatment D and counts Y.

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
    n_latent
        Number of binary confounders.
    relaxation
        ``"marginal"`` (default): the losses are the exact expectation over Z's 2**n_latent states under the
        generator's probabilities plus a KL to a learned Bernoulli prior, a negative ELBO; alternating
        phases are then variational EM. ``"straight_through"``: the notebook's hard Z-hat with the sigmoid
        gradient and no prior term; it can reward Z-hat for copying D (see the docs). ``"gumbel"``: a
        Gumbel-sigmoid sample binarised straight-through, temperature annealed from 2 to 0.5.
        ``"continuous"``: the sigmoid probabilities enter the heads. Only ``"marginal"`` has a guarantee
        (it is an ELBO); the others are kept for comparison, and measured in ``benchmarks/options.py``.
    intercept
        Whether the classifier and the NB head have an intercept. On by default: real genes have very
        different baseline expression and real treatments are rarely 50/50, which a model without
        intercept can only absorb through X or Z-hat. The notebook preset turns it off.
    dispersion_key
        ``adata.var`` column with known NB dispersions α (Var = μ + α μ²), as in the notebook. ``None``
        (default) learns one dispersion per gene.
    y_transform
        How counts enter the generator: ``"log1p"`` (default), ``"counts"`` (raw, as in the notebook) or
        ``"log1p_normalized"``.
    generator_inputs
        Which of ``"covariates"``, ``"treatment"``, ``"counts"`` the generator sees (default: all three).

    Examples
    --------
    >>> import zconf
    >>> adata = zconf.data.simulate("seed", n_obs=200, n_vars=30)
    >>> zconf.ZConf.setup_anndata(adata, layer="counts", treatment_key="treatment")
    >>> model = zconf.ZConf(adata, n_hidden=16)
    >>> model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)
    >>> model.get_latent_representation().shape
    (200, 1)
    """

    _module_cls = ZConfModule
    _training_plan_cls = ZConfTrainingPlan

    def __init__(
        self,
        adata: AnnData | None = None,
        n_hidden: int = 128,
        n_latent: int = 1,
        relaxation: str = "marginal",
        intercept: bool = True,
        dispersion_key: str | None = None,
        y_transform: str = "log1p",
        generator_inputs: Sequence[str] = GENERATOR_INPUTS,
        **kwargs,
    ):
        super().__init__(adata)
        fixed_dispersion = None
        if dispersion_key is not None:
            fixed_dispersion = torch.as_tensor(_validation.validate_dispersion(self.adata, dispersion_key))
        cat_state = self.adata_manager.get_state_registry(REGISTRY_KEYS.CAT_COVS_KEY)
        n_cats_per_cov = list(cat_state.n_cats_per_key) if cat_state else []
        use_size_factor = REGISTRY_KEYS.SIZE_FACTOR_KEY in self.adata_manager.data_registry
        self.module = self._module_cls(
            n_input=self.summary_stats.n_vars,
            n_continuous_cov=self.summary_stats.get("n_extra_continuous_covs", 0),
            n_cats_per_cov=n_cats_per_cov,
            n_hidden=n_hidden,
            n_latent=n_latent,
            relaxation=relaxation,
            intercept=intercept,
            fixed_dispersion=fixed_dispersion,
            y_transform=y_transform,
            generator_inputs=tuple(generator_inputs),
            use_size_factor=use_size_factor,
            **kwargs,
        )
        self._model_summary_string = (
            f"ZConf: n_latent={n_latent}, n_hidden={n_hidden}, relaxation={relaxation!r}, "
            f"intercept={intercept}, dispersion={'fixed' if dispersion_key else 'learned'}, "
            f"generator_inputs={list(generator_inputs)}"
        )
        self.init_params_ = self._get_init_params(locals())

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
        **kwargs,
    ) -> None:
        """%(summary)s.

        The counts, treatment and covariates are checked first; bad input raises an error that names the
        key or value. Registration adds scvi-tools' own bookkeeping entries to the AnnData (the
        ``adata.uns["_scvi_uuid"]`` and ``adata.uns["_scvi_manager_uuid"]`` keys, ``adata.obs["_scvi_treatment"]``
        and, for covariates, ``adata.obsm["_scvi_extra_*_covs"]``); nothing else is changed.

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
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        _validation.validate_counts(adata, layer)
        levels = _validation.treatment_levels(adata, treatment_key, control_level)
        _validation.validate_covariates(adata, categorical_covariate_keys, continuous_covariate_keys)
        _validation.validate_size_factor(adata, size_factor_key)
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

    def train(
        self,
        max_epochs: int | None = None,
        *,
        batch_size: int | None = None,
        train_size: float | None = None,
        plan_kwargs: dict | None = None,
        n_init: int = 1,
        max_restarts: int = 2,
        **kwargs,
    ) -> None:
        """Train with the alternating schedule.

        Parameters
        ----------
        max_epochs
            Number of epochs (predictor and generator epochs both count). ``None`` picks about 1,600
            minibatch steps, between 20 and 200 epochs (:func:`default_max_epochs`).
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
            Number of fits from different random initialisations; the one with the lowest final training
            loss (negative ELBO) is kept, as ``n_init`` in scikit-learn's mixture models.
        max_restarts
            Extra fits made only when a fit collapsed (a Z-hat column with more than 97% of cells in one
            state, EM's known bad local optimum): measured on a weak confounder (γ2 × 0.35), 1 in 4
            initialisations collapsed, with a clearly worse ELBO (297.3 vs 296.4 per cell).
        **kwargs
            Passed to :meth:`scvi.model.base.UnsupervisedTrainingMixin.train` and on to the Lightning
            ``Trainer`` (``accelerator``, ``devices``, ``strategy``, ``enable_progress_bar``, ...).
        """
        # what the user asked for (not the resolved defaults), for fold models that train the same way; only
        # plain values are kept (the attribute is saved with the model, callbacks and loggers are not)
        asked = {"max_epochs": max_epochs, "batch_size": batch_size, "plan_kwargs": deepcopy(plan_kwargs)}
        asked.update(n_init=n_init, max_restarts=max_restarts, **kwargs)
        self.train_call_ = {key: asked[key] for key in REUSED_TRAIN_KEYS if key in asked}
        train_kwargs = deepcopy(DEFAULT_TRAIN_KWARGS)
        for key, value in {
            "max_epochs": max_epochs,
            "batch_size": batch_size,
            "train_size": train_size,
        }.items():
            if value is not None:
                train_kwargs[key] = value
        train_kwargs["plan_kwargs"] = {**train_kwargs["plan_kwargs"], **(plan_kwargs or {})}
        train_kwargs.update(kwargs)
        n_obs = self.adata.n_obs
        if train_kwargs["max_epochs"] is None:
            train_kwargs["max_epochs"] = default_max_epochs(n_obs, train_kwargs["batch_size"])
        if batch_size is None and train_kwargs["batch_size"] > n_obs:
            # only the default shrinks to fit small data; a batch_size the user chose is never changed
            train_kwargs["batch_size"] = n_obs
            logger.info("Using batch_size=%d (all cells): the data has fewer cells than the default 128.", n_obs)
        if train_kwargs["batch_size"] > n_obs:
            msg = (
                f"batch_size={train_kwargs['batch_size']} exceeds the {n_obs} cells; pass "
                f"batch_size <= {n_obs} to train()."
            )
            raise ValueError(msg)
        if train_kwargs["plan_kwargs"].get("dbpr_weight", 0) > 0:
            self.fit_baselines()
        if n_init < 1 or max_restarts < 0:
            msg = f"Need n_init >= 1 and max_restarts >= 0, got n_init={n_init}, max_restarts={max_restarts}."
            raise ValueError(msg)
        if _is_distributed(train_kwargs):
            # every process must make the same restart decisions, but only rank 0 records the history: one fit
            if n_init > 1:
                msg = "n_init > 1 is not supported with multi-device training; train once per process group."
                raise ValueError(msg)
            max_restarts = 0
        best: tuple[float, dict, dict] | None = None
        run, collapsed = 0, False
        while run < n_init or (collapsed and run < n_init + max_restarts):
            if run > 0:
                self._reset_parameters()
                self.is_trained_, self.history_ = False, None  # the restart's history starts afresh
                logger.info("Restart %d (%s).", run, "collapsed fit" if collapsed else "n_init")
            if not self.is_trained_:
                self._initialize_intercepts()
            # plan kwargs are copied per run; trainer kwargs (callbacks, loggers) are passed as given
            super().train(**{**train_kwargs, "plan_kwargs": deepcopy(train_kwargs["plan_kwargs"])})
            if "elbo_train" not in (self.history_ or {}):  # a non-zero DDP rank keeps no history
                break
            elbo = float(self.history_["elbo_train"].iloc[-1, 0])
            if best is None or elbo < best[0]:
                best = (elbo, deepcopy(self.module.state_dict()), deepcopy(self.history_))
                collapsed = self._is_collapsed()
            run += 1
        if run > 1:
            self.module.load_state_dict(best[1])
            self.history_ = best[2]
        self._warn_if_uninformative()

    @torch.no_grad()
    def _reset_parameters(self) -> None:
        """Fresh random initialisation of every sub-network (for a restart)."""
        for module in self.module.modules():
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()
        self.module.z_prior_logit.zero_()
        if self.module.nb_head.learns_dispersion:
            self.module.nb_head.log_theta.zero_()

    def _is_collapsed(self) -> bool:
        """Whether some Z-hat column put (almost) every cell in one state: EM's known bad local optimum."""
        means = self.get_latent_representation(soft=True).mean(axis=0)
        return bool(np.any((means < 0.03) | (means > 0.97)))

    def _warn_if_uninformative(self) -> None:
        """Warn when Z-hat is constant or (almost) a function of the covariates: then it is no hidden factor."""
        from zconf.metrics import covariate_r2

        z_prob = self.get_latent_representation(soft=True)
        covariates, _ = self.get_design()
        r2 = covariate_r2(z_prob, covariates)
        for j, value in enumerate(r2):
            if not np.isfinite(value) or z_prob[:, j].std() < 1e-3:
                warnings.warn(
                    f"Z-hat column {j} is constant: the model found no split of the cells. Check "
                    "model.history (did training converge?) or try another seed.",
                    UserWarning,
                    stacklevel=3,
                )
            elif value > 0.9:
                warnings.warn(
                    f"Z-hat column {j} is {value:.0%} explained by the covariates: it mostly re-encodes X "
                    "(for example a split of cell types) and is not an unmeasured factor. Inspect it with "
                    "zconf.pl.zhat_by_group before adjusting for it.",
                    UserWarning,
                    stacklevel=3,
                )

    @torch.no_grad()
    def _initialize_intercepts(self) -> None:
        """Start the heads' intercepts at the data's log mean counts and logit of the treated fraction.

        Measured on the Kang PBMC data: from the default (near-zero) intercepts, the first E-steps use Z as a
        global intercept correction, all cells move to one state and the fit collapses (Z-hat constant);
        starting at the data's means leaves Z to explain variation between cells.
        """
        if not self.module.intercept:
            return
        data = self.regression_data()
        counts = data["counts"]
        gene_means = _validation.column_sums(counts, self.adata.n_obs) / self.adata.n_obs
        offset_mean = 0.0 if data["offset"] is None else float(np.mean(data["offset"]))
        log_means = np.log(np.clip(gene_means, 1e-8, None)) - offset_mean
        treated = float(np.clip(np.mean(data["treatment"]), 1e-3, 1 - 1e-3))
        self.module.nb_head.linear.bias.copy_(torch.as_tensor(log_means, dtype=torch.float32))
        self.module.classifier.linear.bias.fill_(float(np.log(treated / (1 - treated))))

    def fit_baselines(self) -> None:
        """Fit the baselines without Z that the DBPR terms compare against, by IRLS to convergence.

        Logistic D ~ [1, X] and per-gene NB Y ~ [1, X, D] (with its own Pearson dispersion), on the training
        data; stored in the module's buffers (and so saved with the model).
        """
        from zconf.glm import fit_logistic_glm, fit_nb_glm

        data = self.regression_data(reference_coding=None)  # the heads' coding, as the DBPR terms use
        covariates = data["covariates"]
        ones = np.ones((len(covariates), 1))
        counts = data["counts"]
        dense = counts.toarray() if hasattr(counts, "toarray") else np.asarray(counts)
        d_fit = fit_logistic_glm(data["treatment"], np.hstack([ones, covariates]))
        nb_fit = fit_nb_glm(dense, np.hstack([ones, covariates, data["treatment"][:, None]]), offset=data["offset"])
        module = self.module
        with torch.no_grad():
            module.baseline_d_coef.copy_(torch.as_tensor(d_fit.coef[0], dtype=torch.float32))
            module.baseline_nb_coef.copy_(torch.as_tensor(nb_fit.coef, dtype=torch.float32))
            module.baseline_log_theta.copy_(torch.as_tensor(-np.log(nb_fit.dispersion), dtype=torch.float32))
            module.baselines_fitted.fill_(True)

    def _validate_anndata(self, adata: AnnData | None = None, copy_if_view: bool = True) -> AnnData:
        """scvi-tools' validation, after a clear error for an AnnData whose genes differ from the training data."""
        if adata is not None and self.adata is not None:
            trained = self.adata.var_names
            if adata.n_vars != len(trained) or not adata.var_names.equals(trained):
                missing = trained.difference(adata.var_names)
                msg = (
                    f"This AnnData's genes differ from the {len(trained)} genes the model was trained on "
                    f"({adata.n_vars} genes, {len(missing)} training genes missing"
                    f"{', e.g. ' + repr(missing[0]) if len(missing) else ', different order'}). "
                    "Subset and order it like the training data: adata[:, model.adata.var_names]."
                )
                raise ValueError(msg)
        return super()._validate_anndata(adata, copy_if_view=copy_if_view)

    # ------------------------------------------------------------------ getters
    @torch.inference_mode()
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
        adata
            AnnData with the same genes and setup as the training data; the training data when ``None``.
        indices
            Cells to use; all when ``None``.
        soft
            Return the probabilities P(Z=1 | X, D, Y) instead of the hard 0/1 Z-hat.
        batch_size
            Minibatch size for inference.

        Returns
        -------
        Array of shape ``(n_obs, n_latent)``.
        """
        key = MODULE_KEYS.Z_PROB_KEY if soft else MODULE_KEYS.Z_KEY
        return self.get_predictions(adata, indices=indices, batch_size=batch_size, keys=(key,))[
            "z_prob" if soft else "z_hat"
        ]

    @torch.inference_mode()
    def get_predictions(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        keys: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Every per-cell output of the model (the notebook's ``predict_all``), rows in input order.

        The heads are evaluated at the hard Z-hat.

        Parameters
        ----------
        adata
            AnnData with the same genes and setup as the training data; the training data when ``None``.
        indices
            Cells to use; all when ``None``.
        batch_size
            Minibatch size for inference.
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
        need_heads = keys is None or not set(keys) <= {MODULE_KEYS.Z_KEY, MODULE_KEYS.Z_PROB_KEY}
        self.module.eval()
        out: dict[str, list[torch.Tensor]] = {"z_hat": [], "z_prob": [], "d_logit": [], "log_mean": []}
        for tensors in loader:
            inference_inputs = self.module._get_inference_input(tensors)
            inference_outputs = self.module.inference(**inference_inputs)
            z = inference_outputs[MODULE_KEYS.Z_KEY]
            out["z_hat"].append(z.cpu())
            out["z_prob"].append(inference_outputs[MODULE_KEYS.Z_PROB_KEY].cpu())
            if need_heads:
                generative_inputs = self.module._get_generative_input(tensors, inference_outputs)
                generative_outputs = self.module.generative(**generative_inputs, states=False)
                out["d_logit"].append(generative_outputs[MODULE_KEYS.D_LOGIT_KEY][:, 0].cpu())
                out["log_mean"].append(generative_outputs[MODULE_KEYS.LOG_MEAN_KEY][:, 0].cpu())
        result = {key: torch.cat(values).numpy() for key, values in out.items() if values}
        if need_heads:
            result["d_prob"] = 1.0 / (1.0 + np.exp(-result["d_logit"]))
            result["mean"] = np.exp(result["log_mean"])
            result["dispersion"] = torch.exp(-self.module.nb_head.clamped_log_theta()).detach().cpu().numpy()
        return result

    @torch.inference_mode()
    def get_design(
        self, adata: AnnData | None = None, reference_coding: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The covariate design X ``(n_obs, n_covariates)`` and treatment D ``(n_obs,)``, in input order.

        Parameters
        ----------
        adata
            AnnData set up like the training data; the training data when ``None``.
        reference_coding
            Drop the first level of each categorical covariate (default: as the heads do, i.e. when they
            have an intercept).
        """
        adata = self._validate_anndata(adata)
        covariates, treatment = [], []
        for tensors in self._make_data_loader(adata=adata):
            covariates.append(self.module.design(tensors, reference_coding=reference_coding).cpu())
            treatment.append(tensors[REGISTRY_KEYS.TREATMENT_KEY].squeeze(-1).float().cpu())
        return torch.cat(covariates).numpy(), torch.cat(treatment).numpy()

    def get_predicted_mean(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Predicted NB means ``(n_obs, n_vars)`` at Z-hat, in input order."""
        return self.get_predictions(adata, indices=indices, batch_size=batch_size)["mean"]

    def annotate_adata(
        self, adata: AnnData | None = None, *, key_added: str = "zconf", copy: bool = False
    ) -> AnnData | None:
        """Write Z-hat and the predictions into the AnnData.

        Parameters
        ----------
        adata
            AnnData with the same genes and setup as the training data; the training data when ``None``.
        key_added
            Prefix of every key written.
        copy
            Return an annotated copy instead of writing in place.

        Returns
        -------
        ``None``, or the annotated copy when ``copy=True``. Sets these fields:

        ``adata.obsm[f"X_{key_added}"]``
            Hard Z-hat, ``(n_obs, n_latent)`` (for ``sc.pp.neighbors(adata, use_rep="X_zconf")``).
        ``adata.obs[f"{key_added}_z0"], ...``
            P(Z_j = 1 | X, D, Y) per latent, for ``sc.pl.violin`` / ``sc.pl.umap(color=...)``.
        ``adata.obs[f"{key_added}_d_prob"]``
            The classifier's P(D = 1 | X, Z-hat).
        ``adata.layers[f"{key_added}_mean"]``
            The NB head's predicted means at Z-hat.
        ``adata.uns[key_added]``
            ``{"params": {...model parameters, "version"}}``.
        """
        from zconf import __version__

        adata = self._validate_anndata(adata)
        predictions = self.get_predictions(adata)
        adata = adata.copy() if copy else adata
        adata.obsm[OUTPUT_KEYS.LATENT.format(key=key_added)] = predictions["z_hat"].astype(np.float32)
        for j in range(predictions["z_prob"].shape[1]):
            adata.obs[OUTPUT_KEYS.LATENT_PROB_COLUMN.format(key=key_added, j=j)] = predictions["z_prob"][:, j]
        adata.obs[OUTPUT_KEYS.D_PROB_COLUMN.format(key=key_added)] = predictions["d_prob"]
        adata.layers[OUTPUT_KEYS.MEAN_LAYER.format(key=key_added)] = predictions["mean"].astype(np.float32)
        params = {**self.init_params_["non_kwargs"], **self.init_params_["kwargs"].get("kwargs", {})}
        params.pop("adata", None)
        adata.uns[OUTPUT_KEYS.UNS.format(key=key_added)] = {"params": _h5ad_safe({**params, "version": __version__})}
        return adata if copy else None
