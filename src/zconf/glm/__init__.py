"""Batched GLMs by IRLS (per-gene negative binomial, logistic), used for effects and partial R²."""

from ._irls import GLMFit, fit_logistic_glm, fit_nb_glm, nb_unit_deviance

__all__ = ["GLMFit", "fit_logistic_glm", "fit_nb_glm", "nb_unit_deviance"]
