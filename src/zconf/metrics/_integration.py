"""Integration metrics of a latent space: how well it mixes two datasets, and how well it keeps cell types."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from zconf._docs import fill_docstring

#: The parameters both metrics share, numpy style.
fill_doc = fill_docstring(
    param_latent="latent\n    Embedding ``(n_obs, n_dims)``.",
    param_folds="n_folds\n    Stratified cross-validation folds.\nrandom_state\n    Seed of the fold split.",
)


def _check(latent, labels, name: str) -> tuple[np.ndarray, np.ndarray]:
    latent = np.asarray(latent, dtype=float)
    labels = np.asarray(labels)
    if latent.ndim != 2 or latent.shape[0] != labels.shape[0]:
        msg = (
            f"`latent` must be (n_obs, n_dims) with one row per entry of `{name}`, "
            f"got {latent.shape} and {labels.shape}."
        )
        raise ValueError(msg)
    if not np.isfinite(latent).all():
        msg = "`latent` contains NaN or infinite values."
        raise ValueError(msg)
    return latent, labels


def _cross_validated(classifier, latent, labels, name: str, scoring: str, n_folds: int, random_state: int) -> float:
    """Mean score of ``classifier`` over stratified, shuffled folds."""
    latent, labels = _check(latent, labels, name)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    return float(cross_val_score(classifier, latent, labels, cv=folds, scoring=scoring).mean())


@fill_doc
def dataset_mixing(latent, datasets, *, n_folds: int = 5, random_state: int = 0) -> float:
    """Balanced accuracy of a logistic classifier predicting the dataset from the latent space (k-fold).

    0.5 is perfect mixing (the datasets cannot be told apart); 1.0 is no mixing at all.

    Parameters
    ----------
    {param_latent}
    datasets
        Dataset label of each cell.
    {param_folds}

    Returns
    -------
    Mean balanced accuracy over the folds.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat([0, 1], 100)
    >>> round(dataset_mixing(rng.normal(size=(200, 3)), labels), 1)  # pure noise: chance level
    0.5
    """
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return _cross_validated(classifier, latent, datasets, "datasets", "balanced_accuracy", n_folds, random_state)


@fill_doc
def knn_label_accuracy(latent, labels, *, n_neighbors: int = 15, n_folds: int = 5, random_state: int = 0) -> float:
    """Accuracy of a k-nearest-neighbour classifier of ``labels`` (cell types) in the latent space (k-fold).

    High values mean that cells of a type stay together after integration.

    Parameters
    ----------
    {param_latent}
    labels
        Label of each cell (for example the cell type).
    n_neighbors
        Neighbours of the classifier.
    {param_folds}

    Returns
    -------
    Mean accuracy over the folds.
    """
    classifier = KNeighborsClassifier(n_neighbors=n_neighbors)
    return _cross_validated(classifier, latent, labels, "labels", "accuracy", n_folds, random_state)
