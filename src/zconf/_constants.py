"""Keys shared across zconf: registry keys, module dict keys, AnnData output keys, history columns, role names."""

from typing import NamedTuple

from scvi import REGISTRY_KEYS as SCVI_KEYS


class _RegistryKeys(NamedTuple):
    X_KEY: str = SCVI_KEYS.X_KEY
    TREATMENT_KEY: str = "treatment"
    CAT_COVS_KEY: str = SCVI_KEYS.CAT_COVS_KEY
    CONT_COVS_KEY: str = SCVI_KEYS.CONT_COVS_KEY
    SIZE_FACTOR_KEY: str = SCVI_KEYS.SIZE_FACTOR_KEY


class _ModuleKeys(NamedTuple):
    Y_KEY: str = "y"
    D_KEY: str = "d"
    COVARIATES_KEY: str = "covariates"
    LOG_LIBRARY_KEY: str = "log_library"
    Z_LOGITS_KEY: str = "z_logits"
    Z_PROB_KEY: str = "z_prob"
    Z_KEY: str = "z"
    STATES_KEY: str = "states"
    STATE_LOG_WEIGHTS_KEY: str = "state_log_weights"
    D_LOGIT_KEY: str = "d_logit"
    LOG_MEAN_KEY: str = "log_mean"


class _OutputKeys(NamedTuple):
    """AnnData keys written by :meth:`zconf.ZConf.annotate_adata` (``{key}`` is ``key_added``)."""

    LATENT: str = "X_{key}"
    LATENT_PROB_COLUMN: str = "{key}_z{j}"
    LEVEL_COLUMN: str = "{key}_level"
    D_PROB_COLUMN: str = "{key}_d_prob"
    MEAN_LAYER: str = "{key}_mean"
    UNS: str = "{key}"


class _HistoryKeys(NamedTuple):
    """Columns of ``model.history`` logged by zconf's training plans: per-cell epoch means.

    The ``*_VALIDATION`` columns exist only when the model was trained with a validation set.
    """

    TRAIN_LOSS: str = "train_loss"
    ELBO_TRAIN: str = "elbo_train"
    RECONSTRUCTION_LOSS_TRAIN: str = "reconstruction_loss_train"
    KL_LOCAL_TRAIN: str = "kl_local_train"
    KL_GLOBAL_TRAIN: str = "kl_global_train"
    CLASSIFIER_LOSS_TRAIN: str = "classifier_loss_train"
    NB_LOSS_TRAIN: str = "nb_loss_train"
    DBPR_TREATMENT_TRAIN: str = "dbpr_treatment_train"
    DBPR_GENES_TRAIN: str = "dbpr_genes_train"
    #: share of the epoch's steps in a generator (or joint) phase: 1.0 generator, 0.0 predictor
    GENERATOR_PHASE: str = "generator_phase"
    VALIDATION_LOSS: str = "validation_loss"
    ELBO_VALIDATION: str = "elbo_validation"
    KL_LOCAL_VALIDATION: str = "kl_local_validation"
    CLASSIFIER_LOSS_VALIDATION: str = "classifier_loss_validation"
    NB_LOSS_VALIDATION: str = "nb_loss_validation"
    #: :class:`zconf.PairedVAE`'s adversarial plan
    DISCRIMINATOR_LOSS: str = "discriminator_loss"
    DISCRIMINATOR_ACCURACY: str = "discriminator_accuracy"
    ADVERSARIAL_WEIGHT: str = "adversarial_weight"


class _PairedKeys(NamedTuple):
    """Registry keys of :class:`zconf.PairedVAE`."""

    X_KEY: str = SCVI_KEYS.X_KEY
    DATASET_KEY: str = "dataset"


REGISTRY_KEYS = _RegistryKeys()
PAIRED_KEYS = _PairedKeys()
#: AnnData key written by :meth:`zconf.PairedVAE.annotate_adata` (``{key}`` is ``key_added``)
PAIRED_LATENT_KEY = "X_{key}"
ADVERSARIAL_STRATEGIES: tuple[str, ...] = ("grl", "alternate")
MODULE_KEYS = _ModuleKeys()
OUTPUT_KEYS = _OutputKeys()
HISTORY_KEYS = _HistoryKeys()

#: The three sub-networks, in optimizer order.
SUBNETS: tuple[str, ...] = ("generator", "classifier", "nb_head")
#: The sub-networks each training phase updates.
PHASE_SUBNETS: dict[str, tuple[str, ...]] = {
    "predictor": ("classifier", "nb_head"),
    "generator": ("generator",),
    "joint": SUBNETS,
}
RELAXATIONS: tuple[str, ...] = ("marginal", "straight_through", "gumbel", "continuous")
LOSS_SCALES: tuple[str, ...] = ("cell", "element")
Y_TRANSFORMS: tuple[str, ...] = ("log1p", "counts", "log1p_normalized")
GENERATOR_INPUTS: tuple[str, ...] = ("covariates", "treatment", "counts")
