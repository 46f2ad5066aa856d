"""Training arguments and restarts: plain functions, testable without Lightning."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

from zconf.glm import design_matrix, fit_logistic_glm, fit_nb_glm
from zconf.metrics import covariate_r2

from ._validation import column_sums, column_sums_of_squares, log_library_sizes

logger = logging.getLogger(__name__)

#: Training defaults merged under the user's arguments (chosen by the measurements in benchmarks/).
DEFAULT_TRAIN_KWARGS: dict = {
    "max_epochs": None,
    "batch_size": 128,
    "train_size": 1.0,
    "early_stopping": False,
    "plan_kwargs": {},
}

#: Keywords of the last ``train()`` call that fold and candidate models reuse. Callbacks and loggers are objects
#: tied to one Trainer, and several devices would start a process group per fold: those are not carried over.
REUSED_TRAIN_KEYS = (
    "max_epochs",
    "batch_size",
    "plan_kwargs",
    "n_init",
    "max_restarts",
    "random_state",
    "accelerator",
    "enable_progress_bar",
    "limit_train_batches",
)

#: A Z-hat column with more than this share of cells in one state is a collapsed fit (EM's bad optimum).
COLLAPSE_SHARE = 0.97


#: Minibatch steps the default schedule aims at on small data (see :func:`default_max_epochs`).
DEFAULT_TRAIN_STEPS = 1600
#: Fewest epochs of the default schedule: ten predictor/generator phase pairs.
MIN_DEFAULT_EPOCHS = 20
#: Most minibatches in one epoch of the default schedule (see :func:`default_epoch_batches`).
MAX_DEFAULT_EPOCH_BATCHES = 160


def default_max_epochs(n_obs: int, batch_size: int) -> int:
    """Epochs for about 1,600 minibatch steps, between 20 and 200, rounded up to an even number.

    Measured on the simulation presets: recovery plateaus after ~400-800 steps (benchmarks/); 1,600 leaves
    margin, and small data sets get up to 200 epochs (400 cells: 800 steps). An even count ends on a
    generator phase with the default one-epoch phases. Above 20,480 cells (160 minibatches of 128) the 20
    epochs are shortened (:func:`default_epoch_batches`).
    """
    n_batches = max(1, -(-n_obs // batch_size))
    epochs = min(200, max(MIN_DEFAULT_EPOCHS, -(-DEFAULT_TRAIN_STEPS // n_batches)))
    return epochs + (epochs % 2)


def default_epoch_batches(n_obs: int, batch_size: int) -> int | None:
    """Minibatches per epoch of the default schedule: all of them (``None``), or 160 when there are more.

    The alternating phases last one epoch each, and ten phase pairs are the fewest the default runs. Without a
    cap, 20 full passes over 100,000 cells are 15,600 steps and the default fit there took 841 s
    (benchmarks/results/scale_atlas.md). With it, each epoch is 160 minibatches drawn at random from a fresh
    permutation of the cells (Lightning's ``limit_train_batches``): 3,200 steps at any larger size, so that the
    default fit's time stops growing with the number of cells.

    Why 160 and not 80 (1,600 steps, as on small data): the weak confounder (``simulate("weak")``, 3 seeds)
    at 40,000 cells was recovered at a hard ``|corr|`` of 0.79 / 0.74 / 0.73 with 80 minibatches per epoch,
    0.81 / 0.77 / 0.79 with 160, 0.82 / 0.78 / 0.78 with 240 and 0.83 / 0.78 / 0.80 with 20 full passes (Bayes
    limit 0.86 / 0.81 / 0.83; benchmarks/results/epoch_cap*.md). At 100,000 cells (one-off runs, 2026-12-06), 80,
    160 and 320 gave 0.65 / 0.78 / 0.77 on seed 0 and 0.82 / 0.81 / 0.82 on seed 1; seed 2 failed at every
    length, 20 full passes included (0.06). A strong confounder is recovered at 1.000 with either. The cap
    applies only to the default epochs: a ``max_epochs`` from the user means full passes, as in scvi-tools.

    Examples
    --------
    >>> default_epoch_batches(20_000, 128) is None, default_epoch_batches(100_000, 128)
    (True, 160)
    """
    n_batches = max(1, -(-n_obs // batch_size))
    return MAX_DEFAULT_EPOCH_BATCHES if n_batches > MAX_DEFAULT_EPOCH_BATCHES else None


def default_schedule(n_obs: int, batch_size: int) -> dict:
    """``max_epochs`` (and ``limit_train_batches`` on large data) of the default schedule; see the two above."""
    schedule = {"max_epochs": default_max_epochs(n_obs, batch_size)}
    batches = default_epoch_batches(n_obs, batch_size)
    return schedule if batches is None else {**schedule, "limit_train_batches": batches}


#: Share of ``max_epochs`` for which each start of a restart is screened before the best one trains on.
#: 0.075 (a candidate screens 2 of 26 epochs at 10,000 cells, 10 of 124 at 2,000), measured against 0.15
#: on the selection presets (2026-12-04, benchmarks/results/selection_summary.md): the same choices (two
#: binary confounders Bernoulli 2 in 19 of 20 either way, a 4-level one categorical 4 in 10 of 10 against 9),
#: recovery 1.000 on the confounded preset, the weak confounder's hard |corr| within -0.013 to +0.003 per
#: seed (inside the spread of one-start fits, benchmarks/results/weak_limit.md); the default call fell from
#: 3.16x to 2.91x one fit (benchmarks/results/scale.md).
SCREENING_FRACTION = 0.075


def _even_share(max_epochs: int, fraction: float) -> int:
    """``fraction`` of ``max_epochs``, at least 2 and even (a phase pair), at most ``max_epochs``."""
    epochs = max(2, round(fraction * max_epochs))
    return min(epochs + (epochs % 2), max_epochs)


def screening_epochs(max_epochs: int) -> int:
    """Epochs of each screening run of a restart: :data:`SCREENING_FRACTION` of the fit, at least 2, even."""
    return _even_share(max_epochs, SCREENING_FRACTION)


#: A screening epoch is at most this many minibatches. On large data the default epochs are 160 minibatches
#: (:func:`default_epoch_batches`), and a screen of 2 of them took 320 steps, twice what it takes at 10,000 cells
#: (2 epochs of 79), where :data:`SCREENING_FRACTION` was measured; with three starts per candidate of
#: ``n_latent="auto"``, screens were 40% of its cost at 100,000 x 2,000.
SCREENING_EPOCH_BATCHES = 80


def screening_kwargs(train_kwargs: dict) -> dict:
    """The training keywords of one screening run: :func:`screening_epochs` epochs.

    Each is of at most :data:`SCREENING_EPOCH_BATCHES` minibatches when the epochs are limited to more.

    Examples
    --------
    >>> screening_kwargs({"max_epochs": 20, "limit_train_batches": 160})
    {'max_epochs': 2, 'limit_train_batches': 80}
    >>> screening_kwargs({"max_epochs": 200})
    {'max_epochs': 16}
    """
    screen = {**train_kwargs, "max_epochs": screening_epochs(train_kwargs["max_epochs"])}
    limit = train_kwargs.get("limit_train_batches")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > SCREENING_EPOCH_BATCHES:
        screen["limit_train_batches"] = SCREENING_EPOCH_BATCHES
    return screen


def is_distributed(train_kwargs: dict) -> bool:
    """Whether the Trainer keywords ask for more than one device or process (DDP and friends)."""
    devices = train_kwargs.get("devices")
    many = isinstance(devices, int) and devices > 1 or isinstance(devices, list | tuple) and len(devices) > 1
    return many or "ddp" in str(train_kwargs.get("strategy", "")) or (train_kwargs.get("num_nodes") or 1) > 1


def resolve_train_kwargs(n_obs: int, asked: dict, trainer_kwargs: dict) -> dict:
    """``DEFAULT_TRAIN_KWARGS`` with the user's non-``None`` choices on top, checked against the data size.

    Parameters
    ----------
    n_obs
        Number of cells.
    asked
        ``max_epochs``, ``batch_size``, ``train_size`` and ``plan_kwargs`` as the user passed them (``None``: default).
    trainer_kwargs
        Further keywords for scvi-tools' ``train`` and the Lightning Trainer, passed as they are.
    """
    train_kwargs = deepcopy(DEFAULT_TRAIN_KWARGS)
    train_kwargs.update({key: value for key, value in asked.items() if value is not None and key != "plan_kwargs"})
    train_kwargs["plan_kwargs"] = {**train_kwargs["plan_kwargs"], **(asked.get("plan_kwargs") or {})}
    train_kwargs.update(trainer_kwargs)
    if asked.get("batch_size") is None and train_kwargs["batch_size"] > n_obs:
        train_kwargs["batch_size"] = n_obs  # only the default shrinks to fit small data
    if train_kwargs["batch_size"] > n_obs:
        msg = (
            f"batch_size={train_kwargs['batch_size']} exceeds the {n_obs} cells; pass batch_size <= {n_obs} to train()."
        )
        raise ValueError(msg)
    if train_kwargs["max_epochs"] is None:
        schedule = default_schedule(n_obs, train_kwargs["batch_size"])
        train_kwargs["max_epochs"] = schedule["max_epochs"]
        if "limit_train_batches" not in trainer_kwargs and "limit_train_batches" in schedule:
            train_kwargs["limit_train_batches"] = schedule["limit_train_batches"]
    return train_kwargs


def with_split_seed(train_kwargs: dict, random_state: int | None) -> dict:
    """``train_kwargs`` whose data splitter draws its permutation of the cells from ``random_state``.

    See :meth:`zconf.dataloaders.InMemoryDataSplitter.setup` for why; a ``split_seed`` the user passed in
    ``datasplitter_kwargs`` is kept, and ``None`` leaves scvi-tools' ``settings.seed`` in charge.
    """
    if random_state is None:
        return train_kwargs
    splitter_kwargs = train_kwargs.get("datasplitter_kwargs") or {}
    return {**train_kwargs, "datasplitter_kwargs": {"split_seed": int(random_state), **splitter_kwargs}}


def check_restarts(n_init: int, max_restarts: int, distributed: bool) -> None:
    """Raise a ValueError for restart settings that cannot run."""
    if n_init < 1 or max_restarts < 0:
        msg = f"Need n_init >= 1 and max_restarts >= 0, got n_init={n_init}, max_restarts={max_restarts}."
        raise ValueError(msg)
    if distributed and n_init > 1:
        msg = "n_init > 1 is not supported with multi-device training; pass n_init=1 (one fit per process group)."
        raise ValueError(msg)


def is_collapsed(z_prob: np.ndarray, latent=None) -> bool:
    """Whether Z-hat put (almost) every cell in one state: EM's known bad local optimum.

    For binary factors (the default ``latent``), some column with more than 97% of the cells in one state; for
    a categorical ``latent`` (its ``is_collapsed`` rule), one level holding more than 97% of the cells; for a normal
    one, posterior means that hardly vary.
    """
    if z_prob.shape[1] == 0:
        return False
    if latent is not None:
        return latent.is_collapsed(z_prob, COLLAPSE_SHARE)
    means = z_prob.mean(axis=0)
    return bool(np.any((means < 1 - COLLAPSE_SHARE) | (means > COLLAPSE_SHARE)))


#: The collapse check of a start reads at most this many cells, evenly spaced in the data's order. Their state
#: shares are within about 0.004 of all cells' (the binomial standard error at 20,000 cells), close enough for a
#: threshold of 97%. A pass over all 80,000 training cells of a candidate at 100,000 x 2,000 took 0.8 s, and the
#: default call makes 7 of them (cProfile, 2026-12-07).
COLLAPSE_CHECK_MAX_CELLS = 20_000


def collapse_check_cells(n_obs: int) -> np.ndarray | None:
    """Positions of the cells whose Z-hat the collapse check reads: all of them (``None``) up to the cap.

    Examples
    --------
    >>> collapse_check_cells(500) is None, len(collapse_check_cells(80_000))
    (True, 20000)
    """
    if n_obs <= COLLAPSE_CHECK_MAX_CELLS:
        return None
    return np.linspace(0, n_obs - 1, COLLAPSE_CHECK_MAX_CELLS).round().astype(int)


@dataclass
class RunResult:
    """One fit from one initialisation: its final loss (lower is better), its state and whether it collapsed."""

    score: float
    state: object
    collapsed: bool


def best_of_restarts(fit: Callable[[int], RunResult | None], n_init: int, max_restarts: int) -> RunResult | None:
    """Call ``fit(run)`` for ``n_init`` runs, plus up to ``max_restarts`` more while the best one is collapsed.

    ``fit`` returns ``None`` when it keeps no result (a non-zero DDP rank); the loop then stops.

    Returns
    -------
    The run with the lowest score, or ``None``.

    Examples
    --------
    >>> scores = [3.0, 1.0, 2.0]
    >>> best_of_restarts(lambda run: RunResult(scores[run], run, False), n_init=3, max_restarts=0).state
    1
    >>> collapsed_first = lambda run: RunResult(1.0 - run, run, collapsed=run == 0)
    >>> best_of_restarts(collapsed_first, n_init=1, max_restarts=2).state
    1
    """
    best, run = None, 0
    while run < n_init or (best is not None and best.collapsed and run < n_init + max_restarts):
        result = fit(run)
        if result is None:
            break
        if best is None or result.score < best.score:
            best = result
        run += 1
    return best


@contextlib.contextmanager
def seeded(random_state: int | None) -> Iterator[None]:
    """Seed torch's global generators inside the block and restore them after; no-op for ``None``.

    The user's own random streams are left as they were: the fit is reproducible without side effects.
    """
    if random_state is None:
        yield
        return
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(random_state))
        yield


#: Share of ``max_epochs`` for which the final fit of ``n_latent="auto"`` trains on all cells, starting from the
#: chosen candidate (already trained, with its restarts, on 80% of them). Refitting from scratch with restarts
#: repeated the candidate's work and made the default fit cost 6x one fit (benchmarks/results/scale.md).
#: Measured at 10,000 x 1,000 (one binary confounder, 2026-12-03): a quarter took ~10 s of a ~115 s default call;
#: a tenth (2 epochs there) gives the same choice and |corr| 1.000 for 107 s.
FINE_TUNE_FRACTION = 0.1


def fine_tune_epochs(max_epochs: int) -> int:
    """Epochs of the final fit of ``n_latent="auto"`` from the chosen candidate: :data:`FINE_TUNE_FRACTION`, even."""
    return _even_share(max_epochs, FINE_TUNE_FRACTION)


def fit_with_restarts(
    model, train_kwargs: dict, n_init: int, max_restarts: int, random_state: int | None, warm_state: dict | None = None
) -> None:
    """Screening runs from ``n_init`` starts (plus restarts of collapsed fits); the best is trained on.

    With one start, that start is trained for all ``max_epochs``. Without Z the heads are GLMs with one
    optimum, so one start is used. With ``warm_state`` (the chosen candidate of ``n_latent="auto"``, trained
    with its own restarts) the module starts from it and trains for :func:`fine_tune_epochs` only.
    """
    total = train_kwargs["max_epochs"]
    if warm_state is not None:
        model.module.load_state_dict(warm_state)
        model.module.baselines_fitted.fill_(False)  # the DBPR baselines (when used) are refitted on all cells
        with seeded(random_state):
            model._train_once({**train_kwargs, "max_epochs": fine_tune_epochs(total)})
        return
    has_latent = model.n_latent_ > 0
    runs = n_init if has_latent else 1
    screen_kwargs = screening_kwargs(train_kwargs) if runs > 1 else train_kwargs
    screen = screen_kwargs["max_epochs"]

    # computed once for all starts; the candidates of n_latent="auto" share one (ZConf._head_start)
    start = model._head_start or HeadStart.of(model, random_state, fit_glm=not model.is_trained_)

    def fit(run: int) -> RunResult | None:
        with seeded(None if random_state is None else random_state + run):
            if run > 0:
                model.is_trained_, model.history_ = False, None  # the restart's history starts afresh
                logger.info("Initialisation %d.", run + 1)
            if not model.is_trained_:
                if run > 0 or random_state is not None:  # the seed decides the initial weights too
                    model.module.reset_parameters()
                start.apply(model.module)
            model._train_once(screen_kwargs)
        if "elbo_train" not in (model.history_ or {}):  # a non-zero DDP rank keeps no history
            return None
        z_prob = model.get_latent_representation(indices=collapse_check_cells(model.adata.n_obs), soft=True)
        collapsed = is_collapsed(z_prob, model.module.latent)
        state = (deepcopy(model.module.state_dict()), deepcopy(model.history_))
        return RunResult(float(model.history_["elbo_train"].iloc[-1, 0]), state, collapsed)

    best = best_of_restarts(fit, runs, max_restarts if has_latent else 0)
    if best is not None:
        model.module.load_state_dict(best.state[0])
        model.history_ = best.state[1]
    if screen < total:
        with seeded(None if random_state is None else random_state + runs + max_restarts):
            model._train_once({**train_kwargs, "max_epochs": total - screen})


#: cells of the GLM fit that starts the heads (a start, so a stratified subsample keeps it cheap on atlases)
START_GLM_CELLS = 5000
#: Sparse counts with at most this many entries are densified for the GLM fits (float64: 200 MB); beyond, the
#: fit densifies one gene chunk at a time.
DENSE_GLM_VALUES = 25_000_000


def null_glm_start(
    data,
    intercept: bool,
    random_state: int | None,
    max_cells: int | None = START_GLM_CELLS,
    dispersion_method: str = "pearson",
    interaction_index: list[int] | tuple = (),
) -> dict:
    """The model without Z fitted by IRLS: logistic D ~ [1, X] and per-gene NB Y ~ [1, X, D] with dispersions.

    The heads start here, with Z's coefficients random: every candidate of ``n_latent="auto"`` then starts
    from the fit it must beat. Measured with no confounder (400 cells x 30 genes): heads started at the data's
    means and trained for the candidates' epochs were so far from the optimum that a spurious Z gained 0.15-0.24
    nats per held-out cell over the model without Z; trained 4x longer, the two tied.

    At most ``max_cells`` cells, drawn at random (``None``: all of them), enter the fit; ``dispersion_method``
    is :func:`zconf.glm.fit_nb_glm`'s; ``interaction_index`` the covariate columns whose products with D the NB
    head has (:meth:`zconf.module.ZConfModule.interaction_columns`), after D in the NB fit.
    """
    rng = np.random.default_rng(random_state)
    cells = np.arange(data.n_obs)
    if max_cells is not None and data.n_obs > max_cells:
        cells = np.sort(rng.choice(data.n_obs, max_cells, replace=False))
    counts = data.counts[cells]
    if not sparse.issparse(counts):
        counts = np.asarray(counts)
    elif counts.shape[0] * counts.shape[1] <= DENSE_GLM_VALUES:
        counts = counts.toarray()  # measured at 8,000 x 1,000: 3 s dense against 7 s through sparse chunks
    x, d = data.covariates[cells], data.treatment[cells]
    offset = None if data.offset is None else data.offset[cells]
    d_fit = fit_logistic_glm(d, design_matrix(x, intercept=intercept).matrix)
    # gene chunks of about 2e7 values bound the IRLS working memory (~6 doubles each) on many cells
    gene_chunk = int(np.clip(2e7 // max(len(cells), 1), 16, 512))
    nb_fit = fit_nb_glm(
        counts,
        design_matrix(
            x, d, x[:, list(interaction_index)] * d[:, None] if len(interaction_index) else None, intercept=intercept
        ).matrix,
        offset=offset,
        dispersion_method=dispersion_method,
        gene_chunk=gene_chunk,
    )
    return {"d_coef": d_fit.coef[0], "nb_coef": nb_fit.coef, "dispersion": nb_fit.dispersion}


#: Up to this many training cells, the model without Z (a candidate of ``n_latent="auto"``) is fitted exactly,
#: by IRLS, instead of by the minibatch steps of the other candidates. Its heads are GLMs with one optimum, so
#: the exact fit is the one the steps approach. Measured at 8,000 training cells x 1,000 genes (1 thread): 6 s
#: with its scoring, against 15-18 s of steps. The IRLS cost grows with the cells, the steps' does not (about
#: 1,600 of them at any size), so the two cost about the same near 20,000 cells; beyond, the steps are cheaper.
EXACT_NULL_MAX_CELLS = 20_000


def fit_without_latent(model, random_state: int | None) -> None:
    """Fit a model with ``n_latent=0`` exactly: logistic D ~ [1, X] and per-gene NB Y ~ [1, X, D] by IRLS.

    Every cell counts, and the NB dispersions are maximum-likelihood ones, so the held-out likelihood scores
    the model's optimum. The model is marked trained (its ``history_`` stays empty).
    """
    data = model.regression_data(reference_coding=None)
    fit = null_glm_start(
        data,
        model.module.intercept,
        random_state,
        max_cells=None,
        dispersion_method="ml",
        interaction_index=model.module.interaction_index,
    )
    model.module.initialize_heads(**fit)  # every parameter of a model without Z: intercepts, slopes, dispersions
    model.is_trained_ = True


@dataclass(frozen=True)
class HeadStart:
    """Where the heads start, computed once per data set and shared by every start of a fit.

    The intercepts start at the data's log mean counts and the logit of the treated fraction. Measured on the
    Kang PBMC data: from the default (near-zero) intercepts, the first E-steps use Z as a global intercept
    correction, all cells move to one state and the fit collapses (Z-hat constant); starting at the data's means
    leaves Z to explain variation between cells. The dispersions start at their method-of-moments values,
    α = (var − mean) / mean²: from θ = 1 (the parameter's zero start) Adam needs hundreds of steps to reach them,
    and a model trained for too few steps then buys the missing overdispersion with a spurious mixture state
    (measured: with no confounder, n_latent=1 beat n_latent=0 on held-out cells by 0.24 nats per cell for that
    reason alone). ``glm``, when fitted, is :func:`null_glm_start`: the X and D coefficients of the fit without Z.

    Computing this once per fit rather than once per start, and once for all candidates of ``n_latent="auto"``
    (they share their training cells), saved 15 s of a 176 s default fit at 100,000 x 2,000.
    """

    log_means: np.ndarray
    treated_fraction: float
    dispersion: np.ndarray
    glm: dict | None

    @classmethod
    def of(cls, model, random_state: int | None, fit_glm: bool = True) -> HeadStart:
        """The start of ``model``'s heads on its registered cells (``fit_glm``: with the fit without Z)."""
        data = model.regression_data(reference_coding=None)  # the heads' own coding of the covariates
        gene_means = column_sums(data.counts, data.n_obs) / data.n_obs
        offset_mean = 0.0 if data.offset is None else float(np.mean(data.offset))
        variance = column_sums_of_squares(data.counts, data.n_obs) / data.n_obs - gene_means**2
        with np.errstate(divide="ignore", invalid="ignore"):
            dispersion = np.clip((variance - gene_means) / gene_means**2, 1e-3, 1e3)
        glm = None
        if fit_glm:
            module = model.module
            glm = null_glm_start(data, module.intercept, random_state, interaction_index=module.interaction_index)
        return cls(
            log_means=np.log(np.clip(gene_means, 1e-8, None)) - offset_mean,
            treated_fraction=float(np.mean(data.treatment)),
            dispersion=np.where(np.isfinite(dispersion), dispersion, 1.0),
            glm=glm,
        )

    def apply(self, module) -> None:
        """Set ``module``'s intercepts and dispersions, and its X and D coefficients when the GLM was fitted."""
        module.initialize_intercepts(self.log_means, self.treated_fraction)
        module.initialize_dispersion(self.dispersion)
        if self.glm is not None:
            module.initialize_heads(**self.glm)


#: Z-hat is flagged as sequencing depth when it explains more than this share of the variance of the log library
#: size and one of its columns shifts every gene alike (:data:`DEPTH_UNIFORMITY`).
DEPTH_R2 = 0.5
#: A Z-hat column "shifts every gene alike" when mean(b)² / mean(b²) of its log fold changes b over genes is above
#: this: depth scales all genes, a confounder moves genes differently. Measured: 0.87-0.98 for each of the four
#: factors fitted to glioblastoma counts without a library term (R² 0.90 with the log library), 0.007 for the
#: simulated binary confounder of ``make demo`` (R² 0.71: it changes many genes, so the library too).
DEPTH_UNIFORMITY = 0.7


def warn_if_depth(
    z_prob: np.ndarray, log_library: np.ndarray, covariates: np.ndarray, z_log_fold_changes: np.ndarray
) -> None:
    """Warn when Z-hat encodes the cells' library size and the model has no library term.

    Measured on real glioblastoma counts with the patient hidden (``benchmarks/library_offset.py``): with no
    size factor and no library covariate, the default fit chose four binary factors that explained 90% of the
    variance of the log library size, and its effects were up to 1.15x worse than the naive fit's. A library
    already among the covariates (R² > 0.9) is not flagged.
    """
    if z_prob.shape[1] == 0 or np.ptp(log_library) == 0:
        return
    if covariates.shape[1] and covariate_r2(log_library, covariates)[0] > 0.9:
        return
    b = np.asarray(z_log_fold_changes, dtype=float)
    uniformity = b.mean(0) ** 2 / np.clip((b**2).mean(0), 1e-12, None) if b.size else np.zeros(0)
    r2 = float(covariate_r2(log_library, z_prob)[0])
    if np.isfinite(r2) and r2 > DEPTH_R2 and np.any(uniformity > DEPTH_UNIFORMITY):
        message = (
            f"Z-hat explains {r2:.0%} of the variance of the cells' log library size and shifts all genes alike: "
            "it encodes sequencing depth, not an unmeasured factor, and adjusting for it can make the effects "
            "worse. Give the model the library size: ZConf(adata, use_observed_lib_size=True) (the default), "
            "ZConf.setup_anndata(..., size_factor_key=<obs column of size factors>) or the log total counts in "
            "continuous_covariate_keys, then train again."
        )
        warnings.warn(message, UserWarning, stacklevel=5)


def warn_if_uninformative(z_prob: np.ndarray, data, z_log_fold_changes: np.ndarray) -> None:
    """Warn when a Z-hat column is constant or (almost) a function of the covariates: then it is no hidden factor.

    ``data`` is the model's :class:`~zconf.glm.RegressionData`; without an offset, Z-hat (with its log fold
    changes, ``(n_vars, n_columns)``) is also checked for sequencing depth (:func:`warn_if_depth`).
    """
    covariates = data.covariates
    if data.offset is None:
        warn_if_depth(z_prob, log_library_sizes(data.counts, data.n_obs), covariates, z_log_fold_changes)
    r2 = covariate_r2(z_prob, covariates) if z_prob.shape[1] else []
    for j, value in enumerate(r2):
        if not np.isfinite(value) or z_prob[:, j].std() < 1e-3:
            message = (
                f"Z-hat column {j} is constant: the model found no split of the cells. Check "
                "model.history (did training converge?) or try another seed."
            )
        elif value > 0.9:
            message = (
                f"Z-hat column {j} is {value:.0%} explained by the covariates: it mostly re-encodes X "
                "(for example a split of cell types) and is not an unmeasured factor. Inspect it with "
                "zconf.pl.zhat_by_group before adjusting for it."
            )
        else:
            continue
        warnings.warn(message, UserWarning, stacklevel=4)
