"""scanpy-style plots of ZConf diagnostics."""

from ._plots import gene_correlations, history, treatment_logits, zhat_by_group, zhat_vs_true

__all__ = ["gene_correlations", "history", "treatment_logits", "zhat_by_group", "zhat_vs_true"]
