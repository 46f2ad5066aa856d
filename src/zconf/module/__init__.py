from ._components import Generator, NBHead, TreatmentClassifier
from ._losses import bernoulli_kl, bernoulli_nll, nb_deviance, nb_log_likelihood
from ._module import ZConfModule

__all__ = [
    "Generator",
    "NBHead",
    "TreatmentClassifier",
    "ZConfModule",
    "bernoulli_kl",
    "bernoulli_nll",
    "nb_deviance",
    "nb_log_likelihood",
]
