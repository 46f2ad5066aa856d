"""Analyses of a fitted model as functions: arrays and :class:`~zconf.glm.RegressionData` in, tables out."""

from ._confounding import ADJUSTABLE_ROLES as ADJUSTABLE_ROLES
from ._confounding import LINK_ALPHA as LINK_ALPHA
from ._confounding import MIN_SIGNATURE_AGREEMENT as MIN_SIGNATURE_AGREEMENT
from ._confounding import (
    SampleLink,
    TreatmentLink,
    arm_imbalance,
    balanced_columns,
    candidate_role,
    signature_agreement,
)
from ._crossfit import apply_alignment, column_alignment, stratified_folds
from ._effects import benjamini_hochberg, treatment_effects
from ._library_noise import MIN_GAIN_BEYOND_LIBRARY as MIN_GAIN_BEYOND_LIBRARY
from ._library_noise import gain_beyond_library
from ._pseudobulk import pseudobulk_effects

# constants the model floor imports; not in __all__ (the API reference lists functions)
from ._selection import MIN_GAIN_PER_CELL as MIN_GAIN_PER_CELL
from ._selection import MIN_STATE_SHARE as MIN_STATE_SHARE
from ._selection import NO_LATENT as NO_LATENT
from ._selection import OVERLAP_RANGE as OVERLAP_RANGE
from ._selection import Candidate as Candidate
from ._selection import (
    PairedGain,
    candidate_label,
    choose_smallest_supported,
    complexity,
    selection_table,
    state_overlap,
    stops_early,
    worth_fitting,
)
from ._signature_shift import shift_along_signature, signature_shift

__all__ = [
    "PairedGain",
    "SampleLink",
    "TreatmentLink",
    "balanced_columns",
    "apply_alignment",
    "arm_imbalance",
    "benjamini_hochberg",
    "candidate_label",
    "candidate_role",
    "choose_smallest_supported",
    "column_alignment",
    "gain_beyond_library",
    "complexity",
    "pseudobulk_effects",
    "selection_table",
    "shift_along_signature",
    "signature_shift",
    "signature_agreement",
    "state_overlap",
    "stops_early",
    "worth_fitting",
    "stratified_folds",
    "treatment_effects",
]
