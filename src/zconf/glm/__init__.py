"""Batched GLMs by IRLS (per-gene negative binomial, logistic) and the one GLM design, [1, X, D, Z]."""

from ._depth import nb_log_depth
from ._design import Design, RegressionData, design_from_blocks, design_matrix, latent_block
from ._irls import GLMFit, fit_logistic_glm, fit_nb_glm, nb_unit_deviance, sample_weights

__all__ = [
    "Design",
    "GLMFit",
    "RegressionData",
    "design_from_blocks",
    "design_matrix",
    "fit_logistic_glm",
    "fit_nb_glm",
    "latent_block",
    "nb_log_depth",
    "nb_unit_deviance",
    "sample_weights",
]
