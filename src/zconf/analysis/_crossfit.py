"""Cross-fitting's arithmetic: stratified folds and the alignment of Z's arbitrary labels between models."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.model_selection import StratifiedKFold


def stratified_folds(treatment: np.ndarray, n_folds: int, random_state: int | None) -> np.ndarray:
    """Fold label (0..n_folds-1) of each cell, drawn at random within each treatment arm.

    Every fold gets (up to rounding) the same share of treated and control cells, so that no fold model
    is trained without one of the arms (scikit-learn's :class:`~sklearn.model_selection.StratifiedKFold`).
    """
    folds = np.empty(len(treatment), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(treatment)), treatment)):
        folds[held_out] = fold
    return folds


def column_alignment(
    reference: np.ndarray, other: np.ndarray, *, allow_flips: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Order and flips that make the 0/1 columns of ``other`` match ``reference`` (both ``(n, k)``).

    Z's labels are arbitrary: a model trained on other cells can find the same factor with its states
    swapped or its columns in another order. Columns are matched by the largest total absolute correlation
    (Hungarian assignment) and flipped where the matched correlation is negative. With ``allow_flips=False``
    (the levels of one categorical Z: a level can be renamed, not negated) by the largest total correlation,
    and nothing is flipped.

    Returns
    -------
    ``order`` (column ``order[j]`` of ``other`` matches column ``j`` of ``reference``) and ``flip`` (bool per
    reference column); apply them with :func:`apply_alignment`.
    """
    k = reference.shape[1]
    corr = np.nan_to_num(np.corrcoef(reference.T, other.T)[:k, k:], nan=0.0).reshape(k, k)
    rows, cols = linear_sum_assignment(-np.abs(corr) if allow_flips else -corr)
    order = cols[np.argsort(rows)]
    flip = (corr[np.arange(k), order] < 0) & allow_flips
    return order, flip


def apply_alignment(values: np.ndarray, order: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Reorder the columns of probabilities ``values`` and flip (p → 1 − p) those marked in ``flip``."""
    aligned = values[:, order]
    return np.where(flip[None, :], 1.0 - aligned, aligned)
