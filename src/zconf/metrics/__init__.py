"""Diagnostics: arrays in, numbers out."""

from ._genes import per_gene_correlation, treatment_auroc, treatment_auroc_from_arrays
from ._latent import latent_recovery, leakage

__all__ = [
    "latent_recovery",
    "leakage",
    "per_gene_correlation",
    "treatment_auroc",
    "treatment_auroc_from_arrays",
]
