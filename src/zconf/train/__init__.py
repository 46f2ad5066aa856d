from ._schedule import SCHEDULES, ConvergencePhases, phase_for_epoch, phase_for_step
from ._trainingplan import NonFiniteLossError, ZConfTrainingPlan

__all__ = [
    "SCHEDULES",
    "ConvergencePhases",
    "NonFiniteLossError",
    "ZConfTrainingPlan",
    "phase_for_epoch",
    "phase_for_step",
]
