"""PairedVAE: integrate two scRNA-seq datasets on the same genes with an adversarial domain discriminator."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi.data import AnnDataManager
from scvi.data.fields import CategoricalObsField, LayerField
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin
from scvi.utils import setup_anndata_dsp

from zconf._constants import PAIRED_KEYS, PAIRED_LATENT_KEY
from zconf.module import PairedVAEModule
from zconf.train import PairedAdversarialPlan

from . import _validation
from ._base import ZconfModelMixin
from ._docs import fill_doc

logger = logging.getLogger(__name__)

#: minibatch steps the default number of epochs aims at (see :func:`paired_max_epochs`)
DEFAULT_TRAIN_STEPS = 2600
#: Updates of the VAEs that the default number of epochs aims at, in either strategy
#: (:func:`default_train_steps`): every step of "grl" updates them, one step in (d_steps + e_steps) of
#: "alternate" does. Measured (n_latent 10, n_hidden 128, seed 0): GRL for 2,600 steps, twice the VAE updates
#: of "alternate", kept less structure on two pairs of 1,300-2,000 cells (15-NN kang_scgen_valid 0.778,
#: kang_harmony_2000 0.888) than for 1,300 (0.804, 0.899; "alternate" 0.795, 0.897), and as much on
#: kang_muscat_2donor (0.906 against 0.909); see docs/paired_vae.md.
DEFAULT_VAE_UPDATES = DEFAULT_TRAIN_STEPS // 2
#: Latent cycle-consistency weight per strategy when ``train(cycle_weight=None)``. Off for both since the
#: encoder-agreement loss (on by default) keeps the datasets in register: GRL with agreement and KL weight 0.5,
#: seeds 0-2, cycle 1 against 0: kang_muscat_2donor mixing 0.534 / 0.536, 15-NN 0.907 (worst seed 0.900) /
#: 0.909 (0.908); kang_distinct_3donor mixing 0.544 / 0.553, 15-NN 0.657 / 0.667; and 30% less time without it.
DEFAULT_CYCLE_WEIGHT = {"grl": 0.0, "alternate": 0.0}


def paired_max_epochs(n_obs: int, batch_size: int = 128, steps: int = DEFAULT_TRAIN_STEPS) -> int:
    """Epochs that give about ``steps`` minibatch steps, between 20 and 200.

    The adversarial game advances by optimizer steps, not epochs: with a fixed epoch count a large data set
    takes many more steps, and the encoders keep aligning (and removing structure) long after the
    discriminator is beaten. Measured on Kang stim/ctrl: 200 epochs of 1,556 cells (2,600 steps) kept the
    cell types, 400 epochs removed some.

    Parameters
    ----------
    n_obs
        Cells.
    batch_size
        Minibatch size.
    steps
        Target number of minibatch steps.

    Examples
    --------
    >>> paired_max_epochs(1556), paired_max_epochs(9517), paired_max_epochs(200_000)
    (200, 35, 20)
    """
    steps_per_epoch = max(1, -(-n_obs // batch_size))
    return int(min(200, max(20, round(steps / steps_per_epoch))))


def default_train_steps(adversarial: str, d_steps: int = 1, e_steps: int = 1) -> int:
    """Minibatch steps that give the VAEs :data:`DEFAULT_VAE_UPDATES` updates with the chosen strategy.

    Parameters
    ----------
    adversarial
        ``"grl"`` (every step updates the VAEs) or ``"alternate"``.
    d_steps, e_steps
        D-steps and E-steps per cycle of ``"alternate"`` (only E-steps update the VAEs).

    Returns
    -------
    The number of minibatch steps, for :func:`paired_max_epochs`.

    Examples
    --------
    >>> default_train_steps("grl"), default_train_steps("alternate"), default_train_steps("alternate", 1, 3)
    (1300, 2600, 1733)
    """
    if adversarial == "alternate" and e_steps >= 1:  # other step counts are refused by the plan, with a clear error
        return round(DEFAULT_VAE_UPDATES * (d_steps + e_steps) / e_steps)
    return DEFAULT_VAE_UPDATES


def _dataset_levels(adata: AnnData, dataset_key: str | None) -> list:
    """The two levels of ``adata.obs[dataset_key]``, with an error that names the problem otherwise."""
    column = _validation.required_obs_column(
        adata, dataset_key, "dataset_key", "that says which of the two datasets each cell is from"
    )
    levels = list(pd.unique(column))
    if isinstance(column.dtype, pd.CategoricalDtype):
        levels = [level for level in column.cat.categories if level in set(levels)]
    if len(levels) != 2:
        msg = (
            f"adata.obs[{dataset_key!r}] must have exactly two levels (one per dataset), found {len(levels)}: "
            f"{levels[:10]}. PairedVAE integrates two datasets; subset the AnnData to two of them."
        )
        raise ValueError(msg)
    return levels


@fill_doc
class PairedVAE(ZconfModelMixin, UnsupervisedTrainingMixin, BaseModelClass):
    """Two VAEs, one per dataset, on a shared N(0, I) latent space, aligned by a domain discriminator.

    Each dataset has its own encoder and decoder (negative binomial on raw counts, library-scaled softmax
    mean, per-gene dispersion). A discriminator predicts the dataset from the posterior means; the VAEs
    minimise the negative ELBO (KL weight 0.5) and maximise the discriminator's loss, either through a
    gradient-reversal layer (``train(adversarial="grl")``) or by freezing and alternating
    (``train(adversarial="alternate")``), through :class:`~zconf.train.PairedAdversarialPlan`. An
    encoder-agreement loss (each cell, encoded by the other dataset's encoder, should land where its own
    encoder puts it) keeps the cell types of the two datasets in register, which matching the two
    distributions alone does not.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata`.
    {paired_architecture}

    Examples
    --------
    >>> import zconf
    >>> adata = zconf.data.simulate("seed", n_obs=200, n_vars=30)
    >>> adata.obs["dataset"] = adata.obs["treatment"].map({0: "ctrl", 1: "stim"})
    >>> zconf.PairedVAE.setup_anndata(adata, layer="counts", dataset_key="dataset")
    >>> model = zconf.PairedVAE(adata, n_latent=4, n_hidden=32)
    >>> model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)
    >>> model.get_latent_representation().shape
    (200, 4)
    """

    _training_plan_cls = PairedAdversarialPlan

    def __init__(
        self,
        adata: AnnData | None = None,
        n_latent: int = 10,
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        n_hidden_discriminator: int = 64,
    ):
        super().__init__(adata)
        for name, value in {"n_latent": n_latent, "n_hidden": n_hidden, "n_layers": n_layers}.items():
            if int(value) < 1:
                msg = f"`{name}` must be >= 1, got {value}."
                raise ValueError(msg)
        if not 0 <= dropout_rate < 1:
            msg = f"`dropout_rate` must lie in [0, 1), got {dropout_rate}."
            raise ValueError(msg)
        self.module = PairedVAEModule(
            n_input=self.summary_stats.n_vars,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            n_hidden_discriminator=n_hidden_discriminator,
        )
        self._model_summary_string = (
            f"PairedVAE: n_latent={n_latent}, n_hidden={n_hidden}, n_layers={n_layers}, datasets="
            f"{list(self.adata_manager.get_state_registry(PAIRED_KEYS.DATASET_KEY).categorical_mapping)}"
        )
        self.init_params_ = self._get_init_params(locals())

    @classmethod
    @setup_anndata_dsp.dedent
    def setup_anndata(cls, adata: AnnData, layer: str | None = None, dataset_key: str | None = None, **kwargs) -> None:
        """%(summary)s.

        Parameters
        ----------
        %(param_adata)s
        %(param_layer)s
        dataset_key
            ``adata.obs`` column naming each cell's dataset; exactly two levels.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        _validation.validate_counts(adata, layer)
        _dataset_levels(adata, dataset_key)
        fields = [
            LayerField(PAIRED_KEYS.X_KEY, layer, is_count_data=True),
            CategoricalObsField(PAIRED_KEYS.DATASET_KEY, dataset_key),
        ]
        adata_manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(adata, **kwargs)
        cls.register_manager(adata_manager)

    def _class_weights(self) -> tuple[float, float]:
        codes = np.asarray(self.adata_manager.get_from_registry(PAIRED_KEYS.DATASET_KEY)).ravel()
        counts = np.bincount(codes.astype(int), minlength=2).astype(float)
        return tuple(float(len(codes) / (2 * c)) for c in counts)

    def train(
        self,
        max_epochs: int | None = None,
        *,
        adversarial: str = "grl",
        adversarial_weight: float = 1.0,
        grl_lambda: float = 1.0,
        d_steps: int = 1,
        e_steps: int = 1,
        warmup_epochs: int | None = None,
        discriminator_target: float | None = 0.6,
        cycle_weight: float | None = None,
        agreement_weight: float | None = None,
        batch_size: int = 128,
        plan_kwargs: dict | None = None,
        **kwargs,
    ) -> None:
        """Train the VAEs and the discriminator adversarially.

        Parameters
        ----------
        max_epochs
            Epochs; ``None``: about 1,300 updates of the VAEs, between 20 and 200 epochs: 1,300 minibatch
            steps with ``"grl"``, 2,600 with ``"alternate"`` at one E-step per D-step
            (:func:`default_train_steps`, :func:`paired_max_epochs`).
        adversarial
            ``"grl"`` (gradient reversal, one backward per step) or ``"alternate"`` (D-steps with the
            encoders frozen, then E-steps with the discriminator frozen and its cross-entropy negated).
        adversarial_weight
            Weight of the adversarial term after the warm-up.
        grl_lambda
            Scale of the reversed gradient (``"grl"``).
        d_steps, e_steps
            Minibatch steps per D-phase and per E-phase (``"alternate"``).
        warmup_epochs
            Epochs of the linear ramp of the adversarial weight from 0; ``None``: a quarter of ``max_epochs``.
        discriminator_target
            Balanced accuracy of the discriminator (moving average over minibatches) from which the full
            adversarial weight applies; below it the weight falls linearly to 0 at chance, so the encoders
            never push the latent space past chance into a reversed separation. ``None``: no gate.
        cycle_weight
            Weight of the latent cycle-consistency loss (translate a cell into the other dataset and back);
            ``None``: 0 with either strategy (``DEFAULT_CYCLE_WEIGHT``).
        agreement_weight
            Weight of the encoder-agreement loss (each cell encoded by the other dataset's encoder should land
            where its own encoder puts it; :meth:`~zconf.module.PairedVAEModule.agreement_loss`). It keeps the
            cell types of the two datasets in register; 0 turns it off. ``None``: the plan's default, 1.0
            (measured: ``zconf.train._adversarial.DEFAULT_AGREEMENT_WEIGHT``).
        batch_size
            Minibatch size.
        plan_kwargs
            Further keywords of :class:`~zconf.train.PairedAdversarialPlan` (learning rates ``lr`` and
            ``lr_discriminator``; the KL weight ``max_kl_weight``, 0.5 by default).
        **kwargs
            Passed to :meth:`scvi.model.base.UnsupervisedTrainingMixin.train` and the Lightning ``Trainer``.
        """
        if max_epochs is None:
            steps = default_train_steps(adversarial, d_steps, e_steps)
            max_epochs = paired_max_epochs(self.adata.n_obs, batch_size, steps=steps)
        if warmup_epochs is None:
            warmup_epochs = max_epochs // 4
        if cycle_weight is None:
            cycle_weight = DEFAULT_CYCLE_WEIGHT.get(adversarial, 0.0)
        plan = {
            "adversarial": adversarial,
            "discriminator_target": discriminator_target,
            "cycle_weight": cycle_weight,
            "adversarial_weight": adversarial_weight,
            "grl_lambda": grl_lambda,
            "d_steps": d_steps,
            "e_steps": e_steps,
            "warmup_epochs": warmup_epochs,
            "class_weights": self._class_weights(),
            **({} if agreement_weight is None else {"agreement_weight": agreement_weight}),
            **(plan_kwargs or {}),
        }
        super().train(max_epochs=max_epochs, batch_size=batch_size, plan_kwargs=plan, **kwargs)

    @torch.inference_mode()
    @fill_doc
    def get_latent_representation(
        self, adata: AnnData | None = None, indices: Sequence[int] | None = None, batch_size: int | None = None
    ) -> np.ndarray:
        """Posterior means of the shared latent space, ``(n_obs, n_latent)``, in input order.

        Parameters
        ----------
        {param_adata}
        {param_indices}
        {param_batch_size}
        """
        self._check_trained()
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        self.module.eval()
        means = [self.module.inference(**self.module._get_inference_input(batch))["qz_m"].cpu() for batch in loader]
        return torch.cat(means).numpy()

    @fill_doc
    def annotate_adata(
        self, adata: AnnData | None = None, *, key_added: str = "pairedvae", copy: bool = False
    ) -> AnnData | None:
        """Write the latent space to ``adata.obsm[f"X_{key_added}"]`` (default ``"X_pairedvae"``).

        Then ``sc.pp.neighbors(adata, use_rep="X_pairedvae")`` and ``sc.tl.umap(adata)`` embed it.

        Parameters
        ----------
        {param_adata}
        key_added
            Name after ``X_`` of the ``obsm`` key.
        copy
            Return an annotated copy instead of writing in place.
        """
        adata = self._validate_anndata(adata)
        latent = self.get_latent_representation(adata)
        adata = adata.copy() if copy else adata
        adata.obsm[PAIRED_LATENT_KEY.format(key=key_added)] = latent.astype(np.float32)
        return adata if copy else None
