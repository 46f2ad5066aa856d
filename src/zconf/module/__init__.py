from ._components import Generator, NBHead, TreatmentClassifier
from ._grl import grad_reverse
from ._losses import bernoulli_kl, bernoulli_nll, nb_deviance, nb_log_likelihood, nb_state_log_likelihoods
from ._module import ZConfModule
from ._paired_vae import PAIRED_SUBNETS, PairedVAEModule

__all__ = [
    "PAIRED_SUBNETS",
    "Generator",
    "NBHead",
    "PairedVAEModule",
    "TreatmentClassifier",
    "ZConfModule",
    "bernoulli_kl",
    "bernoulli_nll",
    "grad_reverse",
    "nb_deviance",
    "nb_log_likelihood",
    "nb_state_log_likelihoods",
]
