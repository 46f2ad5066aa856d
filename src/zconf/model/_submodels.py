"""Models trained on a subset of a model's cells: cross-fitting folds and the candidates of the latent choice."""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pandas as pd
from anndata import AnnData
from scvi.data._constants import _SCVI_UUID_KEY
from scvi.data._utils import _assign_adata_uuid
from sklearn.model_selection import StratifiedShuffleSplit

from zconf.analysis import (
    apply_alignment,
    choose_smallest_supported,
    column_alignment,
    selection_table,
    stops_early,
    stratified_folds,
)

from . import _training

logger = logging.getLogger(__name__)


def subset_model(model, cells: np.ndarray, **init_overrides):
    """A fresh, untrained model of ``model``'s class and architecture on a subset of its registered cells.

    The subset reuses the full data's registration (category codes, treatment levels), so that other cells
    can be encoded with exactly the same coding. ``init_overrides`` replace constructor arguments (for
    example ``n_latent``).
    """
    subset = cell_copy(model.adata, cells)
    manager = model.adata_manager.transfer_fields(subset)
    type(model).register_manager(manager)
    params = model.init_params_
    kwargs = {key: value for group in params["kwargs"].values() for key, value in group.items()}
    return type(model)(subset, **{**params["non_kwargs"], **kwargs, **init_overrides})


def cell_copy(adata: AnnData, cells: np.ndarray) -> AnnData:
    """A copy of some cells with a registration id of its own.

    A plain copy carries the original's id; registering it would replace the original's entry in scvi-tools'
    class-level store, and forgetting it would unregister the user's AnnData.
    """
    copy = adata[cells].copy()
    _assign_adata_uuid(copy, overwrite=True)
    return copy


def forget_model(sub_model, *others: AnnData) -> None:
    """Drop scvi-tools' class-level registrations of a sub-model's AnnData copies, so they can be freed.

    scvi-tools keeps every registered AnnData's manager (and with it the AnnData) in class-level stores;
    without this, each cross-fit would keep copies of the data alive for the rest of the session.
    """
    cls = type(sub_model)
    for adata in (*others, sub_model.adata):
        cls._setup_adata_manager_store.pop(adata.uns.get(_SCVI_UUID_KEY), None)
    cls._per_instance_manager_store.pop(sub_model.id, None)


def check_cross_fit(model, n_folds) -> np.ndarray:
    """Raise a clear error when ``model`` cannot be cross-fitted with ``n_folds`` folds; return its treatment."""
    if model.adata.isbacked:
        msg = (
            "get_cross_fitted_latent trains one model per fold on a copy of the other folds' cells, which needs "
            "the AnnData in memory; this one is backed. Load it with adata.to_memory() first."
        )
        raise ValueError(msg)
    if not isinstance(n_folds, int | np.integer) or n_folds < 2:
        msg = f"`n_folds` must be an integer >= 2, got {n_folds!r}."
        raise ValueError(msg)
    treatment = model.regression_data().treatment
    smallest_arm = int(min((treatment == 1).sum(), (treatment == 0).sum()))
    if smallest_arm < n_folds:
        msg = (
            f"n_folds={n_folds} needs at least {n_folds} cells in each treatment arm; the smaller arm has "
            f"{smallest_arm}. Use fewer folds."
        )
        raise ValueError(msg)
    return treatment


def cross_fitted_latent(model, n_folds: int, random_state: int | None, train_kwargs: dict) -> np.ndarray:
    """Soft Z-hat ``(n_obs, n_latent)`` of each cell from a model trained on the other folds.

    See :meth:`zconf.ZConf.get_cross_fitted_latent`.
    """
    treatment = check_cross_fit(model, n_folds)
    folds = stratified_folds(treatment, n_folds, random_state)
    reference = model.get_latent_representation(soft=True)
    crossed = np.empty(reference.shape)
    for fold in range(n_folds):
        held_out = folds == fold
        logger.info("Cross-fitting: fold %d of %d (%d held-out cells).", fold + 1, n_folds, held_out.sum())
        fold_model = subset_model(model, np.flatnonzero(~held_out), n_latent=model.n_latent_)
        fold_model.train(**train_kwargs)
        # the labels are matched on the fold model's own training cells, where both models were fitted;
        # the held-out cells are a copy, so that the user's AnnData is never registered to a fold model
        held_out_cells = cell_copy(model.adata, held_out)
        on_training = fold_model.get_latent_representation(soft=True)
        on_held_out = fold_model.get_latent_representation(held_out_cells, soft=True)
        order, flip = column_alignment(reference[~held_out], on_training)
        crossed[held_out] = apply_alignment(on_held_out, order, flip)
        forget_model(fold_model, held_out_cells)
    return crossed


#: Share of cells held out to score the candidates, and the share of the epochs each candidate trains for.
HELD_OUT_FRACTION = 0.2
CANDIDATE_EPOCH_FRACTION = 0.5


def _candidate_epochs(max_epochs: int | None, n_train: int, batch_size: int | None) -> int:
    """Epochs of a candidate fit: half of what the user asked for, or of the default for the training cells."""
    full = max_epochs or _training.default_max_epochs(n_train, min(batch_size or 128, n_train))
    epochs = max(2, round(CANDIDATE_EPOCH_FRACTION * full))
    return epochs + (epochs % 2)


def select_n_latent(model, max_latent: int, train_call: dict) -> tuple[int, pd.DataFrame]:
    """Fit candidates with 0, 1, ... binary factors on 80% of the cells and score them on the other 20%.

    Each candidate is trained like the final model (the same keywords, restarts and seed) for half its epochs,
    and scored by the exact held-out marginal log-likelihood per cell. The search stops at the first candidate
    that brings no clear gain over the one before (:func:`zconf.analysis.stops_early`), and the smallest
    candidate no larger one clearly beats is chosen (:func:`zconf.analysis.choose_smallest_supported`).

    Returns
    -------
    The chosen number of factors and :func:`zconf.analysis.selection_table`.
    """
    treatment = model.regression_data().treatment
    random_state = train_call.get("random_state")
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=HELD_OUT_FRACTION, random_state=random_state or 0)
    train_cells, held_out = next(splitter.split(np.zeros(len(treatment)), treatment))
    held_out_cells = cell_copy(model.adata, np.sort(held_out))
    epochs = _candidate_epochs(train_call.get("max_epochs"), len(train_cells), train_call.get("batch_size"))
    scores, seconds = {}, {}
    for k in range(max_latent + 1):
        start = time.perf_counter()
        candidate = subset_model(model, np.sort(train_cells), n_latent=k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the final model warns about its own Z-hat
            candidate.train(**{**train_call, "max_epochs": epochs})
        scores[k] = candidate.get_marginal_log_likelihood(held_out_cells)
        seconds[k] = time.perf_counter() - start
        forget_model(candidate, held_out_cells)
        logger.info("Candidate n_latent=%d: held-out log-likelihood %.3f per cell.", k, scores[k].mean())
        if stops_early(scores, k):
            break
    chosen = choose_smallest_supported(scores)
    return chosen, selection_table(scores, chosen, seconds)


def choose_n_latent(model) -> None:
    """Choose ``model``'s number of factors by held-out likelihood, store the table and rebuild its module."""
    max_latent = model.init_params_["non_kwargs"]["max_latent"]
    chosen, table = select_n_latent(model, max_latent, model.train_call_)
    model.latent_selection_ = table
    model.n_latent_ = chosen
    model._model_summary_string = model._model_summary_string.replace(
        "n_latent=auto", f"n_latent=auto (chose {chosen})"
    )
    if chosen == 0:
        logger.info("No confounder supported by the data (n_latent=0): effects are unadjusted.")
    else:
        logger.info("The data support %d binary confounder(s) (n_latent=%d); see latent_selection_.", chosen, chosen)
