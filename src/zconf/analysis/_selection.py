"""Choosing the number of confounders from held-out exact marginal log-likelihoods (arrays in, a choice out)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: A larger model is chosen only when its mean held-out gain per cell exceeds this many standard errors of the
#: paired difference (one-sided, about a 2% false-alarm rate per step under no gain).
GAIN_Z = 2.0


@dataclass(frozen=True)
class PairedGain:
    """Mean and standard error of the per-cell difference ``larger - smaller`` of two held-out scores."""

    mean: float
    se: float

    @classmethod
    def of(cls, larger: np.ndarray, smaller: np.ndarray) -> PairedGain:
        diff = np.asarray(larger, dtype=float) - np.asarray(smaller, dtype=float)
        return cls(float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff))))

    @property
    def clear(self) -> bool:
        """Whether the larger model is clearly better: a gain above ``GAIN_Z`` standard errors."""
        return self.mean > GAIN_Z * self.se


def choose_smallest_supported(scores: dict[int, np.ndarray]) -> int:
    """The smallest number of factors ``k`` that no larger candidate clearly beats.

    ``scores[k]`` holds the held-out log-likelihood of each cell (the same cells for every ``k``). Starting from
    the smallest ``k``, the choice moves to a larger candidate only when that candidate's paired gain over the
    current choice is clear (:attr:`PairedGain.clear`), so an extra factor must earn its place on cells it was
    not trained on.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> base = rng.normal(-300, 5, 500)
    >>> choose_smallest_supported({0: base, 1: base + rng.normal(0, 0.5, 500), 2: base - 0.1})
    0
    >>> choose_smallest_supported({0: base, 1: base + 3.0 + rng.normal(0, 0.5, 500)})
    1
    """
    candidates = sorted(scores)
    chosen = candidates[0]
    for k in candidates[1:]:
        if PairedGain.of(scores[k], scores[chosen]).clear:
            chosen = k
    return chosen


def selection_table(scores: dict[int, np.ndarray], chosen: int, seconds: dict[int, float]) -> pd.DataFrame:
    """One row per candidate: held-out log-likelihood per cell, its SE, the gain over the choice, flag, seconds."""
    rows = []
    for k in sorted(scores):
        values = np.asarray(scores[k], dtype=float)
        gain = PairedGain.of(values, scores[chosen])
        rows.append(
            {
                "n_latent": k,
                "heldout_loglik": float(values.mean()),
                "heldout_loglik_se": float(values.std(ddof=1) / np.sqrt(len(values))),
                "gain_vs_chosen": gain.mean,
                "gain_vs_chosen_se": gain.se,
                "chosen": k == chosen,
                "fit_seconds": float(seconds.get(k, np.nan)),
            }
        )
    return pd.DataFrame(rows).set_index("n_latent")


def stops_early(scores: dict[int, np.ndarray], k: int) -> bool:
    """Whether the forward search can stop after fitting ``k``: it is not clearly better than ``k - 1``.

    Fitting candidates in increasing size and stopping at the first that brings no clear gain keeps the cost
    near that of the chosen model (each extra binary factor doubles the states the heads evaluate).
    """
    return k - 1 in scores and not PairedGain.of(scores[k], scores[k - 1]).clear
