"""Analyses of a fitted model as functions: arrays and :class:`~zconf.glm.RegressionData` in, tables out."""

from ._crossfit import apply_alignment, column_alignment, stratified_folds
from ._effects import benjamini_hochberg, treatment_effects
from ._pseudobulk import pseudobulk_effects
from ._selection import PairedGain, choose_smallest_supported, selection_table, stops_early

__all__ = [
    "PairedGain",
    "apply_alignment",
    "benjamini_hochberg",
    "choose_smallest_supported",
    "column_alignment",
    "pseudobulk_effects",
    "selection_table",
    "stops_early",
    "stratified_folds",
    "treatment_effects",
]
