"""Cross-fitted Z-hat: each cell's Z-hat from a model that was not trained on that cell."""

from __future__ import annotations

import logging

import numpy as np
from anndata import AnnData
from scipy.optimize import linear_sum_assignment
from scvi.data._constants import _SCVI_UUID_KEY
from sklearn.model_selection import StratifiedKFold

logger = logging.getLogger(__name__)

#: Keywords of the last ``train()`` call that the fold models reuse. Callbacks and loggers are objects tied
#: to one Trainer, and several devices would start a process group per fold: those are not carried over.
REUSED_TRAIN_KEYS = (
    "max_epochs",
    "batch_size",
    "plan_kwargs",
    "n_init",
    "max_restarts",
    "accelerator",
    "enable_progress_bar",
)


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


def column_alignment(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order and flips that make the 0/1 columns of ``other`` match ``reference`` (both ``(n, k)``).

    Z's labels are arbitrary: a model trained on other cells can find the same factor with its states
    swapped or its columns in another order. Columns are matched by the largest total |correlation|
    (Hungarian assignment) and flipped where the matched correlation is negative.

    Returns
    -------
    ``order`` (column ``order[j]`` of ``other`` matches column ``j`` of ``reference``) and ``flip`` (bool per
    reference column); apply them with :func:`apply_alignment`.
    """
    k = reference.shape[1]
    corr = np.nan_to_num(np.corrcoef(reference.T, other.T)[:k, k:], nan=0.0).reshape(k, k)
    rows, cols = linear_sum_assignment(-np.abs(corr))
    order = cols[np.argsort(rows)]
    flip = corr[np.arange(k), order] < 0
    return order, flip


def apply_alignment(values: np.ndarray, order: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Reorder the columns of probabilities ``values`` and flip (p → 1 − p) those marked in ``flip``."""
    aligned = values[:, order]
    return np.where(flip[None, :], 1.0 - aligned, aligned)


def _forget(fold_model, *others: AnnData) -> None:
    """Drop scvi-tools' class-level registrations of a fold model's AnnData copies, so they can be freed.

    scvi-tools keeps every registered AnnData's manager (and with it the AnnData) in class-level stores;
    without this, each cross-fit would keep copies of the data alive for the rest of the session.
    """
    cls = type(fold_model)
    for adata in (*others, fold_model.adata):
        cls._setup_adata_manager_store.pop(adata.uns.get(_SCVI_UUID_KEY), None)
    cls._per_instance_manager_store.pop(fold_model.id, None)


class CrossFitMixin:
    """Adds :meth:`get_cross_fitted_latent` to :class:`~zconf.ZConf`."""

    def _fold_model(self, cells: np.ndarray):
        """A fresh, untrained model of the same architecture on a subset of the registered cells.

        The subset reuses the full data's registration (category codes, treatment levels), so the held-out
        cells can be encoded with exactly the same coding.
        """
        subset = self.adata[cells].copy()
        manager = self.adata_manager.transfer_fields(subset)
        type(self).register_manager(manager)
        params = self.init_params_
        kwargs = {key: value for group in params["kwargs"].values() for key, value in group.items()}
        return type(self)(subset, **params["non_kwargs"], **kwargs)

    def get_cross_fitted_latent(
        self,
        n_folds: int = 2,
        *,
        soft: bool = True,
        random_state: int | None = 0,
        train_kwargs: dict | None = None,
    ) -> np.ndarray:
        """Z-hat for each cell from a model trained on the other folds (cross-fitting).

        The cells are split into ``n_folds`` folds (stratified by treatment). For each fold, a model with
        this model's architecture is trained on the other folds and gives Z-hat for the held-out cells,
        from their own covariates, treatment and counts. The fold models' Z columns are aligned with this
        model's (order and 0/1 labels, :func:`column_alignment`) before the folds are put together.

        Pass the result to :meth:`treatment_effects` as ``z=``. Cross-fitting removes the dependence of
        the generator's *weights* on the cell being adjusted; it does not remove the dependence of a cell's
        Z-hat on its own counts, which is how Z is inferred at all. ``benchmarks/effects.py`` measures
        whether it changes calibration (it costs ``n_folds`` extra trainings).

        Parameters
        ----------
        n_folds
            Number of folds (at least 2).
        soft
            Return probabilities (default) rather than 0/1.
        random_state
            Seed of the fold split. The fold models' initialisation follows ``scvi.settings.seed``.
        train_kwargs
            Keywords of the fold models' ``train()``. ``None`` reuses those of this model's last
            ``train()`` call (epochs, batch size, plan keywords, restarts, accelerator, progress bar);
            epochs chosen automatically are chosen again for the smaller training folds.

        Returns
        -------
        Array ``(n_obs, n_latent)`` in the order of the registered cells.

        Examples
        --------
        >>> import zconf
        >>> adata = zconf.data.simulate("confounded", n_obs=300, n_vars=20)
        >>> zconf.ZConf.setup_anndata(adata, layer="counts", treatment_key="treatment")
        >>> model = zconf.ZConf(adata, n_hidden=16)
        >>> model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)
        >>> z_cross = model.get_cross_fitted_latent(n_folds=2)
        >>> z_cross.shape
        (300, 1)
        >>> table = model.treatment_effects(z=z_cross)
        """
        self._check_trained()
        if self.adata.isbacked:
            msg = (
                "get_cross_fitted_latent trains one model per fold on a copy of the other folds' cells, which needs "
                "the AnnData in memory; this one is backed. Load it with adata.to_memory() first."
            )
            raise ValueError(msg)
        if not isinstance(n_folds, int | np.integer) or n_folds < 2:
            msg = f"`n_folds` must be an integer >= 2, got {n_folds!r}."
            raise ValueError(msg)
        _, treatment = self.get_design()
        smallest_arm = int(min((treatment == 1).sum(), (treatment == 0).sum()))
        if smallest_arm < n_folds:
            msg = (
                f"n_folds={n_folds} needs at least {n_folds} cells in each treatment arm; the smaller arm has "
                f"{smallest_arm}. Use fewer folds."
            )
            raise ValueError(msg)
        if train_kwargs is None:
            train_kwargs = dict(getattr(self, "train_call_", {}))
        folds = stratified_folds(treatment, n_folds, random_state)
        reference = self.get_latent_representation(soft=True)
        n_latent = reference.shape[1]
        crossed = np.empty((len(treatment), n_latent))
        for fold in range(n_folds):
            held_out = folds == fold
            logger.info("Cross-fitting: fold %d of %d (%d held-out cells).", fold + 1, n_folds, held_out.sum())
            fold_model = self._fold_model(np.flatnonzero(~held_out))
            fold_model.train(**train_kwargs)
            # the labels are matched on the fold model's own training cells, where both models were fitted;
            # the held-out cells are a copy, so that the user's AnnData is never registered to a fold model
            held_out_cells = self.adata[held_out].copy()
            on_training = fold_model.get_latent_representation(soft=True)
            on_held_out = fold_model.get_latent_representation(held_out_cells, soft=True)
            order, flip = column_alignment(reference[~held_out], on_training)
            crossed[held_out] = apply_alignment(on_held_out, order, flip)
            _forget(fold_model, held_out_cells)
        return crossed if soft else (crossed >= 0.5).astype(float)
