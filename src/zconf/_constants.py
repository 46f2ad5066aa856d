"""Keys shared across zconf: registry keys, module dict keys, AnnData output keys and sub-network names."""

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
    SIZE_FACTOR_KEY: str = "size_factor"
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
    D_PROB_COLUMN: str = "{key}_d_prob"
    MEAN_LAYER: str = "{key}_mean"
    UNS: str = "{key}"


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
