"""scanpy-style plots of ZConf diagnostics."""

from ._integration import integration_umap
from ._plots import gene_correlations, history, treatment_logits, zhat_by_group, zhat_vs_true
from ._selection import latent_selection

__all__ = [
    "gene_correlations",
    "history",
    "integration_umap",
    "latent_selection",
    "treatment_logits",
    "zhat_by_group",
    "zhat_vs_true",
]
