from ._schedule import SCHEDULES, phase_for_epoch
from ._trainingplan import NonFiniteLossError, ZConfTrainingPlan

__all__ = ["SCHEDULES", "NonFiniteLossError", "ZConfTrainingPlan", "phase_for_epoch"]
