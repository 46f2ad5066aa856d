"""Diagnostics: arrays in, numbers out."""

from ._dbpr import deviance_partial_r2, deviance_partial_r2_from_arrays
from ._genes import per_gene_correlation, treatment_auroc, treatment_auroc_from_arrays
from ._integration import dataset_mixing, knn_label_accuracy
from ._latent import covariate_r2, latent_recovery, leakage, pearson

__all__ = [
    "covariate_r2",
    "dataset_mixing",
    "deviance_partial_r2",
    "deviance_partial_r2_from_arrays",
    "knn_label_accuracy",
    "latent_recovery",
    "leakage",
    "pearson",
    "per_gene_correlation",
    "treatment_auroc",
    "treatment_auroc_from_arrays",
]
