from ._adversarial import PairedAdversarialPlan, discriminator_gate
from ._manual import ManualOptimizationPlan, NonFiniteLossError
from ._schedule import SCHEDULES, ConvergencePhases, linear_warmup, phase_for_epoch, phase_for_step, phase_in_cycle
from ._trainingplan import ZConfTrainingPlan

__all__ = [
    "SCHEDULES",
    "ConvergencePhases",
    "ManualOptimizationPlan",
    "NonFiniteLossError",
    "PairedAdversarialPlan",
    "ZConfTrainingPlan",
    "discriminator_gate",
    "linear_warmup",
    "phase_for_epoch",
    "phase_for_step",
    "phase_in_cycle",
]
