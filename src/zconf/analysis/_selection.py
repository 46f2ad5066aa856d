"""Choosing the number of confounders from held-out exact marginal log-likelihoods (arrays in, a choice out)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: A larger model is chosen only when its mean held-out gain per cell exceeds this many standard errors of the
#: paired difference (one-sided, about a 2% false-alarm rate per step under no gain).
GAIN_Z = 2.0
#: ... and only when that gain is at least this many nats per held-out cell. On large data the standard errors are
#: tiny, and a model with more states wins by fitting whatever the others misfit: two binary confounders at 40,000
#: cells (seed 2) chose a 5-level categorical that beat Bernoulli 2 by 0.026 nats per cell (SE 0.004), with effects
#: 1.26x the true-Z oracle's RMSE and a false-discovery proportion of 0.37; with this floor, Bernoulli 2 (1.00x,
#: 0.17). The confounders of the presets gain 0.2-0.5 (weak) to 6-11 nats per cell (2026-12-07).
MIN_GAIN_PER_CELL = 0.05


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
        """Whether the larger model is clearly better: a gain above ``GAIN_Z`` SEs and ``MIN_GAIN_PER_CELL``."""
        return self.mean > max(GAIN_Z * self.se, MIN_GAIN_PER_CELL)


#: A candidate of the automatic choice: ``(latent_distribution, n_latent)``; ``("none", 0)`` is the model without Z.
Candidate = tuple[str, int]
NO_LATENT: Candidate = ("none", 0)


def complexity(candidate) -> tuple[int, int]:
    """Sort key of a candidate: Z's coefficients per gene, then the family (Bernoulli, categorical, normal).

    A plain ``int`` is a number of binary factors. Bernoulli ``k`` has ``k`` coefficients per gene, categorical
    ``L`` has ``L - 1`` (one per level beyond the first), normal 1 has one (and more prior weights than
    Bernoulli 1, which it holds).
    """
    if isinstance(candidate, int | np.integer):
        return (int(candidate), 0)
    distribution, n_latent = candidate
    if distribution == "categorical":
        return (n_latent - 1, 1)
    if distribution == "normal":
        return (n_latent, 2)
    return (n_latent, 0)


def candidate_label(candidate) -> str:
    """``"none"``, ``"bernoulli 2"``, ``"categorical 5"`` or ``"normal 1"`` (a plain ``int`` reads as Bernoulli)."""
    if isinstance(candidate, int | np.integer):
        candidate = ("bernoulli", int(candidate)) if candidate else NO_LATENT
    distribution, n_latent = candidate
    return "none" if n_latent == 0 else f"{distribution} {n_latent}"


def choose_smallest_supported(scores: dict, eligible=None):
    """The simplest candidate that no more complex eligible candidate clearly beats.

    ``scores[c]`` holds the held-out log-likelihood of each cell (the same cells for every candidate); the keys
    are numbers of binary factors or :data:`Candidate` tuples, ordered by :func:`complexity`. Starting from the
    simplest, the choice moves to a more complex candidate only when that candidate's paired gain over the
    current choice is clear (:attr:`PairedGain.clear`), so extra parameters must earn their place on cells they
    were not trained on. Candidates not in ``eligible`` (default: all) are never chosen: the caller excludes
    those whose states are no confounders (:func:`state_overlap`, :mod:`zconf.analysis._confounding`). They
    stay the reference that a more complex candidate must beat: when Bernoulli 1 found a state not linked to
    the treatment, Bernoulli 2 is chosen only if its second factor clearly adds to that state, not merely
    because the two together beat the model without Z (measured on the ``weak`` scenario, seed 2: Bernoulli 2
    then gained 0.03 nats per held-out cell over the unlinked Bernoulli 1, SE 0.04, and adjusting for it gave
    1.04x the naive RMSE). The simplest candidate is always eligible.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> base = rng.normal(-300, 5, 500)
    >>> choose_smallest_supported({0: base, 1: base + rng.normal(0, 0.5, 500), 2: base - 0.1})
    0
    >>> choose_smallest_supported({0: base, 1: base + 3.0 + rng.normal(0, 0.5, 500)})
    1
    >>> choose_smallest_supported({0: base, 1: base + 3.0 + rng.normal(0, 0.5, 500)}, eligible=[0])
    0
    >>> choose_smallest_supported({0: base, 1: base + 3.0, 2: base + 3.01 + rng.normal(0, 0.5, 500)}, eligible=[0, 2])
    0
    """
    candidates = sorted(scores, key=complexity)
    chosen = reference = candidates[0]
    for candidate in candidates[1:]:
        if PairedGain.of(scores[candidate], scores[reference]).clear:
            reference = candidate
            if eligible is None or candidate in eligible:
                chosen = candidate
    return chosen


def selection_table(scores: dict, chosen, seconds: dict, extra: dict | None = None) -> pd.DataFrame:
    """One row per candidate, by :func:`candidate_label`, in order of :func:`complexity`.

    Columns: ``latent_distribution``, ``n_latent``, the held-out log-likelihood per cell and its SE, the paired
    gain over the choice and its SE, ``chosen``, ``fit_seconds``, and the columns of ``extra[candidate]`` (for
    example the overlap of the candidate's states).
    """
    rows = []
    for candidate in sorted(scores, key=complexity):
        values = np.asarray(scores[candidate], dtype=float)
        gain = PairedGain.of(values, scores[chosen])
        distribution, n_latent = (
            candidate if isinstance(candidate, tuple) else (("bernoulli" if candidate else "none"), int(candidate))
        )
        rows.append(
            {
                "candidate": candidate_label(candidate),
                "latent_distribution": distribution,
                "n_latent": n_latent,
                "heldout_loglik": float(values.mean()),
                "heldout_loglik_se": float(values.std(ddof=1) / np.sqrt(len(values))),
                "gain_vs_chosen": gain.mean,
                "gain_vs_chosen_se": gain.se,
                "chosen": candidate == chosen,
                "fit_seconds": float(seconds.get(candidate, np.nan)),
                **(extra or {}).get(candidate, {}),
            }
        )
    return pd.DataFrame(rows).set_index("candidate")


def predecessors(candidate) -> tuple:
    """The candidates one step simpler in the same family, the one to compare with first.

    Bernoulli ``k - 1`` (Bernoulli 0 is the model without Z); categorical ``L - 1``, where categorical 2 is the
    same model as Bernoulli 1 (one binary factor); for normal 1, Bernoulli 1 (two of its grid values).
    """
    if isinstance(candidate, int | np.integer):
        return (candidate - 1,)
    distribution, n_latent = candidate
    if distribution == "normal":
        return (("bernoulli", 1), NO_LATENT)
    if distribution == "categorical" and n_latent > 3:
        return (("categorical", n_latent - 1),)
    if distribution == "categorical" and n_latent == 3:
        return (("categorical", 2), ("bernoulli", 1))
    return (("bernoulli", n_latent - 1),) if n_latent > 1 else (NO_LATENT,)


def stops_early(scores: dict, candidate) -> bool:
    """Whether the forward search of ``candidate``'s family can stop: no clear gain over its predecessor.

    The predecessor is the first of :func:`predecessors` that was fitted.

    Fitting candidates in increasing size and stopping at the first that brings no clear gain keeps the cost
    near that of the chosen model (each extra binary factor doubles the states the heads evaluate).
    """
    before = next((c for c in predecessors(candidate) if c in scores), None)
    return before is not None and not PairedGain.of(scores[candidate], scores[before]).clear


def worth_fitting(scores: dict, candidate) -> bool:
    """Whether ``candidate`` is worth fitting given the scores so far: not when a fit holding its states gained nothing.

    Categorical 3's states (three levels, additive in the heads) are the states ``00``, ``10`` and ``01`` of
    Bernoulli 2, which has the same two coefficients per gene and a fourth state besides. A third level that
    Bernoulli 2 cannot use to beat Bernoulli 1 is not supported, so the categorical family is searched only when
    Bernoulli 2 was not fitted or clearly beat Bernoulli 1. On one binary confounder this skips one candidate
    (at 10,000 x 1,000, 42 of the choice's 156 s). The cost: a third level too weak to outweigh the prior mass
    Bernoulli 2 spends on its fourth state is missed. The same holds for normal 1: more than two values along
    one direction are what it adds to Bernoulli 1, and Bernoulli 2's four states hold four values along a line
    (its two signatures parallel); it is also skipped when Bernoulli 1, two of its values, gained nothing over
    the model without Z (on the ``continuous`` scenario Bernoulli 1 gained 10 nats per held-out cell). Every
    other candidate is worth fitting.

    Examples
    --------
    >>> base = np.linspace(-300, -299, 400)
    >>> worth_fitting({("bernoulli", 1): base, ("bernoulli", 2): base}, ("categorical", 3))
    False
    >>> worth_fitting({("bernoulli", 1): base, ("bernoulli", 2): base + 2.0}, ("categorical", 3))
    True
    """
    if candidate == ("normal", 1):
        holding = [("bernoulli", 1), ("bernoulli", 2)]  # the fitted models holding some of its states
    else:
        holding = [("bernoulli", 2)] if candidate == ("categorical", 3) else []
    return all(fit not in scores or not stops_early(scores, fit) for fit in holding)


#: A state is a positivity violation when its treated share lies outside this range (a confounder's signature
#: appears in both arms; a state the treatment itself creates, a mediator, appears among the treated only).
OVERLAP_RANGE = (0.05, 0.95)
#: States holding less than this share of the cells are too small to judge (and to bias the effects).
MIN_STATE_SHARE = 0.02


def state_overlap(state_weights: np.ndarray, treatment: np.ndarray, labels=None) -> pd.DataFrame:
    """Each state's share of the cells and treated share P(D = 1 | state), from soft state weights.

    Parameters
    ----------
    state_weights
        ``(n_obs, n_states)`` posterior weights q(state | cell), rows summing to 1.
    treatment
        ``(n_obs,)`` 0/1 treatment D.
    labels
        Names of the states (``range`` when ``None``).

    Returns
    -------
    DataFrame by state with ``cells`` (expected number), ``share``, ``treated_share`` and ``overlap`` (the
    treated share within :data:`OVERLAP_RANGE`; states below :data:`MIN_STATE_SHARE` of the cells count as
    overlapping).

    Examples
    --------
    >>> weights = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> state_overlap(weights, np.array([0, 1, 1, 1]))["treated_share"].tolist()
    [0.5, 1.0]
    """
    weights = np.asarray(state_weights, dtype=float)
    d = np.asarray(treatment, dtype=float)
    mass = weights.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        treated_share = (weights * d[:, None]).sum(0) / mass
    share = mass / max(len(d), 1)
    low, high = OVERLAP_RANGE
    inside = (treated_share >= low) & (treated_share <= high)
    table = pd.DataFrame(
        {
            "cells": mass,
            "share": share,
            "treated_share": treated_share,
            "overlap": inside | (share < MIN_STATE_SHARE) | ~np.isfinite(treated_share),
        },
        index=pd.Index(range(weights.shape[1]) if labels is None else labels, name="state"),
    )
    return table
