from ._adversarial import AdversarialTrainingPlan
from ._manual import ManualOptimizationPlan, NonFiniteLossError
from ._schedule import SCHEDULES, ConvergencePhases, linear_warmup, phase_for_epoch, phase_for_step, phase_in_cycle
from ._trainingplan import ZConfTrainingPlan

__all__ = [
    "SCHEDULES",
    "AdversarialTrainingPlan",
    "ConvergencePhases",
    "ManualOptimizationPlan",
    "NonFiniteLossError",
    "ZConfTrainingPlan",
    "linear_warmup",
    "phase_for_epoch",
    "phase_for_step",
    "phase_in_cycle",
]
