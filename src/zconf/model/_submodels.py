"""Models trained on a subset of a model's cells: cross-fitting folds and the candidates of the latent choice."""

from __future__ import annotations

import logging
import time
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
from anndata import AnnData
from scvi.data._constants import _SCVI_UUID_KEY
from scvi.data._utils import _assign_adata_uuid
from sklearn.model_selection import StratifiedShuffleSplit

from zconf._constants import REGISTRY_KEYS
from zconf.analysis import (
    ADJUSTABLE_ROLES,
    MIN_GAIN_BEYOND_LIBRARY,
    MIN_SIGNATURE_AGREEMENT,
    MIN_STATE_SHARE,
    NO_LATENT,
    SampleLink,
    TreatmentLink,
    apply_alignment,
    arm_imbalance,
    balanced_columns,
    candidate_label,
    candidate_role,
    choose_smallest_supported,
    column_alignment,
    gain_beyond_library,
    selection_table,
    signature_agreement,
    stops_early,
    stratified_folds,
    worth_fitting,
)

from . import _training
from ._validation import sample_like_columns

logger = logging.getLogger(__name__)


def subset_model(model, cells: np.ndarray | AnnData, **init_overrides):
    """A fresh, untrained model of ``model``'s class and architecture on a subset of its registered cells.

    The subset reuses the full data's registration (category codes, treatment levels), so that other cells
    can be encoded with exactly the same coding. ``cells`` are indices into ``model.adata``, or a subset
    already made by :func:`registered_subset` (the candidates of the latent choice share one).
    ``init_overrides`` replace constructor arguments (for example ``n_latent``).
    """
    subset = cells if isinstance(cells, AnnData) else registered_subset(model, cells)
    params = model.init_params_
    kwargs = {key: value for group in params["kwargs"].values() for key, value in group.items()}
    return type(model)(subset, **{**params["non_kwargs"], **kwargs, **init_overrides})


def registered_subset(model, cells: np.ndarray) -> AnnData:
    """:func:`cell_copy` of some cells, registered with ``model``'s fields (the full data's coding)."""
    subset = cell_copy(model.adata, cells, model.adata_manager)
    type(model).register_manager(model.adata_manager.transfer_fields(subset))
    return subset


def cell_copy(adata: AnnData, cells: np.ndarray, adata_manager) -> AnnData:
    """A copy of some cells holding only what the model reads, with a registration id of its own.

    The copy holds the registered counts (``X`` or the one layer ``adata_manager`` names), ``obs`` and ``var``;
    the other layers, ``obsm`` and ``uns`` stay behind: on simulated 100,000 x 2,000 data with dense ``X`` and
    two dense layers, copying everything took 12.5 s of a 176 s default fit (four copies). A plain copy would
    also carry the original's id; registering it would replace the original's entry in scvi-tools' class-level
    store, and forgetting it would unregister the user's AnnData.
    """
    counts_field = adata_manager.data_registry[REGISTRY_KEYS.X_KEY]
    view = adata[cells]
    in_x = counts_field["attr_name"] == "X"
    counts = (view.X if in_x else view.layers[counts_field["attr_key"]]).copy()
    copy = AnnData(
        X=counts if in_x else None,
        obs=view.obs.copy(),
        var=adata.var.copy(),
        layers={} if in_x else {counts_field["attr_key"]: counts},
    )
    _assign_adata_uuid(copy, overwrite=True)
    return copy


def forget_model(sub_model, *others: AnnData) -> None:
    """Drop scvi-tools' class-level registrations of a sub-model's AnnData copies, so they can be freed.

    scvi-tools keeps every registered AnnData's manager (and with it the AnnData) in class-level stores;
    without this, each cross-fit would keep copies of the data alive for the rest of the session.
    """
    forget_data(type(sub_model), *others, sub_model.adata)
    forget_instance(sub_model)


def forget_data(cls, *adatas: AnnData) -> None:
    """Drop scvi-tools' class-level registrations of AnnData copies (see :func:`forget_model`)."""
    for adata in adatas:
        cls._setup_adata_manager_store.pop(adata.uns.get(_SCVI_UUID_KEY), None)


def forget_instance(sub_model) -> None:
    """Drop the sub-model's own manager from scvi-tools' class-level store; its AnnData stays registered."""
    type(sub_model)._per_instance_manager_store.pop(sub_model.id, None)


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
        fold_model = subset_model(
            model, np.flatnonzero(~held_out), n_latent=model.n_latent_, latent_distribution=model.latent_distribution_
        )
        fold_model.train(**train_kwargs)
        # the labels are matched on the fold model's own training cells, where both models were fitted;
        # the held-out cells are a copy, so that the user's AnnData is never registered to a fold model
        held_out_cells = cell_copy(model.adata, held_out, model.adata_manager)
        on_training = fold_model.get_latent_representation(soft=True)
        on_held_out = fold_model.get_latent_representation(held_out_cells, soft=True)
        allow_flips = model.module.latent.allows_flips
        order, flip = column_alignment(reference[~held_out], on_training, allow_flips=allow_flips)
        crossed[held_out] = apply_alignment(on_held_out, order, flip)
        forget_model(fold_model, held_out_cells)
    return crossed


#: Share of cells held out to score the candidates.
HELD_OUT_FRACTION = 0.2
#: Without ``max_epochs`` from the user, a candidate trains for this share of the default epochs of its training
#: cells. Measured, with the candidates being most of the cost of ``n_latent="auto"``:
#: - 400 cells x 30 genes, binary confounder (the 200-epoch cap: 600 steps in all): at 300 steps Bernoulli 1
#:   scored 0.6 nats per held-out cell below a 3-level categorical, whose softmax converges faster, and the
#:   categorical was chosen; at 600 steps the two tied;
#: - 10,000 x 1,000, binary confounder (2026-12-02): at half the default steps (with a floor of 800 steps: 882)
#:   Bernoulli 1 was again 0.24 nats (SE 0.04) below the 3-level categorical, which was chosen; at all of them
#:   (1,638) they tie (-0.05, SE 0.03) and Bernoulli 1 is chosen. So the candidates keep all the steps.
#: - nested starts (2026-12-02, 2,000 x 200): Bernoulli k + 1 started from the trained Bernoulli k, and
#:   categorical 3 from Bernoulli 1, with only the new column drawn afresh and 25% of the epochs. Each grown
#:   model also carries its parent's extra training, a gain the forward stop credits to the new column: two
#:   binary confounders gave Bernoulli 3-4 in 4 of 4 seeds (RMSE 1.02-1.33x the oracle), a 4-level one Bernoulli 4
#:   or categorical 5 in 3 of 3. So every candidate with Z starts afresh, from the fit without Z.
#: - on large data (2026-12-07), candidates of half the default epochs (1,600 steps, the whole training of a
#:   10,000-cell data set), the chosen one finishing them on all cells: the default call took 119 s instead of
#:   179 s at 100,000 x 2,000, but the ``weak`` confounder at 40,000 cells was missed on 2 of 3 seeds (its
#:   Bernoulli 1 had found a state not yet linked to the treatment; with all the epochs, |corr| 0.82 and 0.77).
CANDIDATE_EPOCH_FRACTION = 1.0


def _candidate_schedule(train_call: dict, n_train: int) -> dict:
    """``max_epochs`` of a candidate fit: what the user asked for, else a share of the default for its cells.

    See :data:`CANDIDATE_EPOCH_FRACTION`; the default share is even, so that the last phase is a generator phase.
    The default's epoch length on large data (:func:`zconf.model._training.default_epoch_batches`) comes along,
    unless the user set ``limit_train_batches``.
    """
    if train_call.get("max_epochs"):
        return {"max_epochs": train_call["max_epochs"]}
    default = _training.default_schedule(n_train, min(train_call.get("batch_size") or 128, n_train))
    epochs = max(2, round(CANDIDATE_EPOCH_FRACTION * default.pop("max_epochs")))
    if train_call.get("limit_train_batches") is not None:
        default.pop("limit_train_batches", None)
    return {"max_epochs": epochs + (epochs % 2), **default}


#: The test of a candidate's link to the treatment (:class:`zconf.analysis.TreatmentLink`) sums the gains of at
#: most this many cells: every held-out cell, and training cells drawn at random for the rest. At 100,000 cells
#: the pass over the 80,000 training cells cost 4-5 s per candidate with Z, and 40,000 cells leave the test
#: ample power: a link worth 0.0002 nats per cell gives a statistic of 16 on one degree of freedom (p < 1e-4);
#: the ``confounded`` preset's is 0.017 nats per cell, the ``weak`` one's 0.0016.
LINK_TEST_MAX_CELLS = 40_000


def link_test_cells(n_train: int, n_held_out: int, random_state: int | None) -> np.ndarray:
    """Positions of the training cells whose gains enter the link test, in order (all up to the cap).

    Examples
    --------
    >>> len(link_test_cells(8_000, 2_000, 0)), len(link_test_cells(80_000, 20_000, 0))
    (8000, 20000)
    """
    n_drawn = max(LINK_TEST_MAX_CELLS - n_held_out, 0)
    if n_train <= n_drawn:
        return np.arange(n_train)
    return np.sort(np.random.default_rng(random_state or 0).choice(n_train, n_drawn, replace=False))


def candidates_to_try(distribution: str | None, max_latent: int, max_levels: int) -> list[tuple[str, int]]:
    """The candidates of the automatic choice, simplest first.

    The model without Z, Bernoulli 1 to ``max_latent``, normal 1 and categorical 3 to ``max_levels``
    (categorical 2 is Bernoulli 1); a ``distribution`` keeps its family only (categorical 2 included).
    """
    bernoulli = [("bernoulli", k) for k in range(1, max_latent + 1)] if distribution in (None, "bernoulli") else []
    normal = [("normal", 1)] if distribution in (None, "normal") else []
    fewest_levels = 2 if distribution == "categorical" else 3  # beside Bernoulli, 2 levels would fit it again
    categorical = (
        [("categorical", n) for n in range(fewest_levels, max_levels + 1)]
        if distribution in (None, "categorical")
        else []
    )
    return [NO_LATENT, *bernoulli, *normal, *categorical]


def _score_candidate(
    model, candidate, training: AnnData, held_out_cells, train_call, schedule: dict, shared_start: dict
) -> tuple:
    """Train one candidate on the training cells (``training``, a :func:`registered_subset` all candidates share).

    The model without Z is fitted exactly (:func:`zconf.model._training.fit_without_latent`) up to
    :data:`~zconf.model._training.EXACT_NULL_MAX_CELLS` training cells.

    Returns its held-out log-likelihoods, its table columns (the overlap of its states and the test of their
    link to the treatment, :class:`zconf.analysis.TreatmentLink`, on all cells), its soft Z-hat of the training
    cells (for :func:`_agrees_in_both_arms`) and its trained module's state (on the CPU), which starts the final
    fit when the candidate is chosen.
    """
    distribution, n_latent = candidate
    overrides = {"n_latent": n_latent, "latent_distribution": "bernoulli" if n_latent == 0 else distribution}
    sub_model = subset_model(model, training, **overrides)
    if n_latent == 0 and training.n_obs <= _training.EXACT_NULL_MAX_CELLS:
        _training.fit_without_latent(sub_model, train_call.get("random_state"))
    else:
        if "start" not in shared_start:  # the same training cells and head coding: one start for all candidates
            shared_start["start"] = _training.HeadStart.of(sub_model, train_call.get("random_state"))
        sub_model._head_start = shared_start["start"]
        sub_model._warns_after_training = False  # they would be muted below: spare the pass over the cells (1 s)
        if n_latent == 0:  # every step trains its heads (no generator): as many head steps as the others' phases
            schedule = {**schedule, "max_epochs": max(1, schedule["max_epochs"] // 2)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the final model warns about its own Z-hat
            sub_model.train(**{**train_call, **schedule})
    held_out_terms = sub_model._per_cell(sub_model.module.marginal_and_gain, held_out_cells, None, None)
    scores = held_out_terms[:, 0]
    overlap = sub_model.state_overlap(held_out_cells)
    judged = overlap[overlap["share"] >= MIN_STATE_SHARE]["treated_share"]
    z_train = sub_model.get_latent_representation(soft=True)
    z_columns = sub_model.module.latent.design_columns(z_train)  # Z's regressors: one per classifier coefficient
    if n_latent == 0:  # one state: the gain is 0 by construction (a full pass at 100,000 cells took 5.5 s)
        gain = np.zeros(training.n_obs + held_out_cells.n_obs)
    else:
        link_cells = link_test_cells(training.n_obs, held_out_cells.n_obs, train_call.get("random_state"))
        gain = np.concatenate([sub_model.get_confounding_gain(indices=link_cells), held_out_terms[:, 1]])
    link = TreatmentLink.of(gain, z_columns.shape[1])
    data = sub_model.regression_data()
    imbalance = arm_imbalance(z_columns, data.covariates, data.treatment)
    sample_link = _sample_link(model, training, z_train, data.treatment, train_call.get("random_state"))
    role = "none" if n_latent == 0 else candidate_role(bool(overlap["overlap"].all()), link, imbalance, sample_link)
    extra = {
        "treated_share_min": float(judged.min()) if len(judged) else np.nan,
        "treated_share_max": float(judged.max()) if len(judged) else np.nan,
        "overlap": bool(overlap["overlap"].all()),
        "treatment_link_per_cell": link.gain_per_cell,
        "treatment_link_pvalue": link.pvalue,
        "zhat_imbalance_pvalue": imbalance,
        "sample_link_pvalue": np.nan if sample_link is None else sample_link.pvalue,
        "signature_agreement": np.nan,
        "gain_beyond_library": np.nan,
        "role": role,
        "eligible": role in ADJUSTABLE_ROLES,
    }
    state = {key: value.detach().cpu().clone() for key, value in sub_model.module.state_dict().items()}
    forget_instance(sub_model)  # the shared training data is forgotten after the last candidate
    return scores, extra, z_train, state


def _sample_link(model, training: AnnData, z_train: np.ndarray, treatment, random_state) -> SampleLink | None:
    """:class:`zconf.analysis.SampleLink` of a candidate's Z-hat on its training cells; ``None`` without samples.

    The samples are ``setup_anndata``'s ``sample_key``, registered when the treatment was given to whole samples.
    """
    sample_key = model._setup_arg("sample_key")
    if sample_key is None:
        return None
    return SampleLink.of(z_train, treatment, training.obs[sample_key].to_numpy(), random_state or 0)


def _checked_state(model, candidate, train_cells: np.ndarray, z_train: np.ndarray):
    """The registered data, the training cells' treatment and a candidate's Z-hat regressors there.

    Z-hat's regressors are :func:`zconf.analysis.balanced_columns`, as the checks of the chosen candidate fit them.
    """
    data = model.regression_data()
    treatment = data.treatment[train_cells]
    return data, treatment, balanced_columns(z_train, treatment, categorical=candidate[0] == "categorical")


def _agrees_in_both_arms(model, candidate, train_cells: np.ndarray, z_train: np.ndarray) -> float:
    """:func:`zconf.analysis.signature_agreement` of a candidate's Z-hat on its training cells."""
    data, treatment, columns = _checked_state(model, candidate, train_cells, z_train)
    offset = None if data.offset is None else data.offset[train_cells]
    return signature_agreement(data.counts[train_cells], data.covariates[train_cells], treatment, columns, offset)


def _gain_beyond_library(model, candidate, train_cells: np.ndarray, z_train: np.ndarray) -> float:
    """:func:`zconf.analysis.gain_beyond_library` of a candidate's Z-hat; NaN unless the offset is the library."""
    data, treatment, columns = _checked_state(model, candidate, train_cells, z_train)
    if not data.offset_is_library:
        return float("nan")
    counts, covariates = data.counts[train_cells], data.covariates[train_cells]
    return gain_beyond_library(counts, covariates, treatment, columns, data.offset[train_cells])


def _choose_confounder(model, scores: dict, extra: dict, train_cells: np.ndarray, z_train: dict):
    """The simplest eligible candidate that no more complex eligible one clearly beats.

    Eligible are candidates whose states may be adjusted for (``extra[c]["eligible"]``: a confounder,
    :func:`zconf.analysis.candidate_role`); the chosen one must also have the same signature
    in both arms (:func:`_agrees_in_both_arms`, fitted for the chosen candidate only: it costs two per-gene GLMs),
    else it is excluded and the choice is made again.
    """
    while True:
        eligible = [c for c in scores if extra[c]["eligible"]]
        chosen = choose_smallest_supported(scores, eligible)
        if chosen == NO_LATENT:
            return chosen
        agreement = _agrees_in_both_arms(model, chosen, train_cells, z_train[chosen])
        extra[chosen]["signature_agreement"] = agreement
        if agreement < MIN_SIGNATURE_AGREEMENT:
            extra[chosen].update(eligible=False, role="signature differs")
            continue
        beyond_library = _gain_beyond_library(model, chosen, train_cells, z_train[chosen])
        extra[chosen]["gain_beyond_library"] = beyond_library
        if not beyond_library < MIN_GAIN_BEYOND_LIBRARY:  # NaN (no library offset, or no gain) passes
            return chosen
        extra[chosen].update(eligible=False, role="library noise")


@contextmanager
def _scvi_info_muted():
    """scvi-tools' INFO messages muted (its warnings and errors still show), restored afterwards."""
    scvi_logger = logging.getLogger("scvi")
    level = scvi_logger.level
    scvi_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        scvi_logger.setLevel(level)


def _fit_candidates(model, candidates: list, training: AnnData, held_out_cells: AnnData, train_call, schedule):
    """:func:`_score_candidate` for each candidate worth fitting, simplest first, with a forward stop per family."""
    scores, seconds, extra, z_train, states, stopped, shared_start = {}, {}, {}, {}, {}, set(), {}
    with _scvi_info_muted():  # each candidate's first pass over the held-out copy logs scvi-tools' transfer note
        for candidate in candidates:
            if not worth_fitting(scores, candidate):
                stopped.add(candidate[0])  # the family's larger candidates are not searched either
            if candidate[0] in stopped:
                continue
            start = time.perf_counter()
            scores[candidate], extra[candidate], z_train[candidate], states[candidate] = _score_candidate(
                model, candidate, training, held_out_cells, train_call, schedule, shared_start
            )
            seconds[candidate] = time.perf_counter() - start
            logger.info(
                "Candidate %s: held-out log-likelihood %.3f per cell.",
                candidate_label(candidate),
                scores[candidate].mean(),
            )
            if candidate != NO_LATENT and stops_early(scores, candidate):
                stopped.add(candidate[0])
    return scores, seconds, extra, z_train, states


def select_n_latent(model, candidates: list, train_call: dict) -> tuple[tuple[str, int], pd.DataFrame, dict]:
    """Fit the candidates on 80% of the cells and score them on the other 20%.

    Each candidate is trained like the final model (the same keywords, restarts, seed and epochs),
    and scored by the exact held-out marginal log-likelihood per cell. Within each family the search stops at
    the first candidate that brings no clear gain over the one before (:func:`zconf.analysis.stops_early`), and
    the categorical family is searched only when Bernoulli 2 clearly beat Bernoulli 1
    (:func:`zconf.analysis.worth_fitting`).
    Only states that may be adjusted for are chosen (:mod:`zconf.analysis._confounding`): their states overlap
    (treated share within [0.05, 0.95] on the held-out cells: a state the treatment creates is a mediator); they
    are linked to the treatment (:class:`zconf.analysis.TreatmentLink`); and they shift the same genes in both arms
    (:func:`zconf.analysis.signature_agreement`). Of these, the simplest that no more complex one clearly beats
    (:func:`_choose_confounder`).

    Returns
    -------
    The chosen ``(latent_distribution, n_latent)``, :func:`zconf.analysis.selection_table` and the chosen
    candidate's trained module state.
    """
    treatment = model.regression_data().treatment
    random_state = train_call.get("random_state")
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=HELD_OUT_FRACTION, random_state=random_state or 0)
    train_cells, held_out = next(splitter.split(np.zeros(len(treatment)), treatment))
    train_cells, held_out_cells = np.sort(train_cells), cell_copy(model.adata, np.sort(held_out), model.adata_manager)
    schedule = _candidate_schedule(train_call, len(train_cells))
    training = registered_subset(model, train_cells)  # one copy for all candidates
    try:
        scores, seconds, extra, z_train, states = _fit_candidates(
            model, candidates, training, held_out_cells, train_call, schedule
        )
    finally:
        forget_data(type(model), training, held_out_cells)
    chosen = _choose_confounder(model, scores, extra, train_cells, z_train)
    best_fit = choose_smallest_supported(scores)
    if best_fit != chosen:
        logger.info(
            "The counts support %s, but its states are no confounders (see the column role of "
            "latent_selection_); %s is chosen.",
            candidate_label(best_fit),
            candidate_label(chosen),
        )
    return chosen, selection_table(scores, chosen, seconds, extra), states[chosen]


def _point_to_sample_key(model) -> None:
    """Warn when a confounder was chosen without registered samples while ``obs`` holds sample-like columns.

    Over cells, a state whose share differs between a treated and an untreated slice looks linked to the
    treatment; registered samples are what lets the choice tell that from a confounder (docs/model.md, "Registered
    samples": on glioblastoma slices such states moved the effects 1.3-1.4x the naive fit's distance from the
    right answer, and with the slices registered nothing was adjusted for).
    """
    if model._setup_arg("sample_key") is not None:
        return
    treatment = np.asarray(model.adata_manager.get_from_registry(REGISTRY_KEYS.TREATMENT_KEY)).ravel()
    columns = sample_like_columns(model.adata.obs, treatment, exclude={model._setup_arg("treatment_key")})
    if columns:
        warnings.warn(
            f"A confounder was chosen, and adata.obs columns {columns[:5]} hold one treatment per label. If whole "
            "samples (slices, wells) were treated, register them with ZConf.setup_anndata(..., sample_key=...): "
            "a state whose share merely differs between samples then is not taken for a confounder.",
            UserWarning,
            stacklevel=4,
        )


def choose_n_latent(model) -> dict:
    """Choose ``model``'s latent family and size by held-out likelihood, store the table and rebuild its module.

    Returns
    -------
    The chosen candidate's trained module state, from which the final fit on all cells starts
    (:func:`zconf.model._training.fit_with_restarts`'s ``warm_state``).
    """
    params = model.init_params_["non_kwargs"]
    candidates = candidates_to_try(params.get("latent_distribution"), params["max_latent"], params.get("max_levels", 8))
    (distribution, n_latent), table, state = select_n_latent(model, candidates, model.train_call_)
    model.latent_selection_ = table
    model.set_latent("bernoulli" if n_latent == 0 else distribution, n_latent)
    label = candidate_label((distribution, n_latent))
    model._model_summary_string = model._model_summary_string.replace("n_latent=auto", f"n_latent=auto (chose {label})")
    if n_latent == 0:
        logger.info("No confounder supported by the data (n_latent=0): effects are unadjusted.")
        return state
    if distribution == "categorical":
        logger.info("The data support one confounder with %d levels (categorical); see latent_selection_.", n_latent)
    elif distribution == "normal":
        logger.info("The data support one continuous confounder (normal); see latent_selection_.")
    else:
        logger.info(
            "The data support %d binary confounder(s) (n_latent=%d); see latent_selection_.", n_latent, n_latent
        )
    # what no check on (X, D, Y) can tell apart (zconf.analysis._confounding): measured on Kang stim/ctrl, where
    # the stimulation was randomised, a stress state it made more common was chosen and moved the effects; and on
    # glioblastoma slices with both arms in every patient, states whose share differs between a patient's DMSO and
    # drug slices were chosen and moved the effects 1.3-1.4x the naive fit's distance from the patient-adjusted fit
    _point_to_sample_key(model)
    logger.info(
        "Its states are linked to the treatment and shape the counts of both arms, as a confounder's do; a state the "
        "treatment itself makes more common does the same%s. If the treatment was randomised or could have caused "
        "these states, report treatment_effects(adjust=False) beside the adjusted effects.",
        ", even across the registered samples"
        if model._setup_arg("sample_key")
        else ", and so does a state whose share differs between treated and untreated samples (slices, wells): "
        "register them with setup_anndata(sample_key=...) when whole samples were treated",
    )
    return state
