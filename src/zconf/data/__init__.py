"""Simulated data with a known confounder."""

from ._bayes import bayes_posterior
from ._simulate import PRESETS, SimulationParams, simulate

__all__ = ["PRESETS", "SimulationParams", "bayes_posterior", "simulate"]
