"""scanpy-style diagnostic plots of a fitted ZConf model and its annotated AnnData."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from zconf._constants import HISTORY_KEYS, OUTPUT_KEYS
from zconf.metrics import pearson, per_gene_correlation

from ._utils import fill_doc, finish, new_axes


def _obs_or_obsm(adata: AnnData, key: str, column: int = 0) -> np.ndarray:
    if key in adata.obsm:
        values = np.asarray(adata.obsm[key])
        values = values[:, column] if values.ndim == 2 else values
        return values.astype(float)
    if key in adata.obs:
        return adata.obs[key].to_numpy(dtype=float)
    msg = (
        f"Key {key!r} not found in adata.obsm or adata.obs. Run model.annotate_adata(adata) for the zconf "
        "keys; truth keys come from zconf.data.simulate, or point the argument at your own key."
    )
    raise KeyError(msg)


def _layer(adata: AnnData, key: str) -> np.ndarray:
    if key not in adata.layers:
        msg = f"Layer {key!r} not found in adata.layers (available: {list(adata.layers)})."
        raise KeyError(msg)
    values = adata.layers[key]
    return np.asarray(values.toarray() if hasattr(values, "toarray") else values, dtype=float)


def _r_title(prefix: str, r: float, p: float | None = None) -> str:
    if not np.isfinite(r):
        # pearson is undefined when one side is constant (e.g. a randomised treatment: every true logit equal)
        return f"{prefix}: r undefined (constant values)"
    title = f"{prefix}: r = {r:.3f}"
    if p is None or not np.isfinite(p):
        return title
    return title + (", p < 1e-300" if p < 1e-300 else f", p = {p:.1e}")


def _ols_line(ax: Axes, x: np.ndarray, y: np.ndarray, xs: np.ndarray, label: str) -> None:
    slope, intercept = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (0.0, float(np.mean(y)))
    ax.plot(xs, intercept + slope * xs, ls=":", lw=2, color="orange", label=label)


@fill_doc
def zhat_vs_true(
    adata: AnnData,
    *,
    key_added: str = "zconf",
    key: str | None = None,
    true_key: str = "z_true",
    latent: int = 0,
    soft: bool = False,
    jitter: float = 0.08,
    random_state: int = 0,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
):
    """Jittered scatter of Z-hat against the true binary Z, with r, p and the group-mean OLS line.

    Parameters
    ----------
    adata
        Annotated AnnData (``model.annotate_adata``) with the truth (``zconf.data.simulate``).
    key_added
        The ``key_added`` given to :meth:`~zconf.ZConf.annotate_adata`: Z-hat is read from
        ``obsm["X_{key_added}"]``, its probability from ``obs["{key_added}_z{latent}"]``.
    key
        An ``obsm`` key or ``obs`` column to draw instead of ``key_added``'s.
    true_key
        ``obsm`` key or ``obs`` column of the true Z.
    latent
        Column of Z-hat (and of the true Z) to draw.
    soft
        Draw the probability P(Z=1) instead of the hard Z-hat (not with ``key``).
    jitter
        Horizontal jitter around 0 and 1.
    random_state
        Seed of the jitter.
    {show_save_ax}

    Returns
    -------
    {returns_axes}
    """
    if key is not None and soft:
        msg = f"Pass either `key` ({key!r}) or `soft=True` (which reads `key_added`'s probability column), not both."
        raise ValueError(msg)
    if key is None:
        key = (
            OUTPUT_KEYS.LATENT_PROB_COLUMN.format(key=key_added, j=latent)
            if soft
            else OUTPUT_KEYS.LATENT.format(key=key_added)
        )
    z_hat = _obs_or_obsm(adata, key, latent)
    z_true = _obs_or_obsm(adata, true_key, latent)
    r, p = pearson(z_true, z_hat)
    fig, ax_ = new_axes(ax)
    rng = np.random.default_rng(random_state)
    x = z_true + rng.uniform(-jitter, jitter, size=z_true.size)
    ax_.scatter(x, z_hat, s=10, alpha=0.5, label="cells")
    xs = np.array([0.0, 1.0])
    _ols_line(ax_, z_true, z_hat, xs, "OLS (group means)")
    ax_.axhline(0.5, ls="--", lw=1, color="grey")
    ax_.set_xticks([0, 1], ["Z=0", "Z=1"])
    ax_.set_xlim(-0.4, 1.4)
    ax_.set_xlabel("True Z (jittered)")
    ax_.set_ylabel("P(Z=1)" if soft else "Z-hat")
    title = _r_title("Z-hat vs true Z", r, p)
    # Z is identified up to a label switch: say so rather than leave a negative r unexplained
    ax_.set_title(title + ("\n(labels switched: Z-hat tracks 1 - Z)" if r < 0 else ""))
    ax_.legend(loc="best", fontsize="small")
    return finish(fig, ax_, name="zhat_vs_true", show=show, save=save, return_fig=return_fig, ax_given=ax is not None)


@fill_doc
def treatment_logits(
    adata: AnnData,
    *,
    key_added: str = "zconf",
    key: str | None = None,
    true_key: str = "treatment_logit_true",
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
):
    """True against predicted treatment logits, with y = x (dashed) and the OLS line (dotted orange).

    Parameters
    ----------
    adata
        Annotated AnnData with the true logit.
    key_added
        The ``key_added`` given to :meth:`~zconf.ZConf.annotate_adata`: P(D=1) is read from
        ``obs["{key_added}_d_prob"]``.
    key
        An ``obs`` column to draw instead, with a predicted P(D=1) (converted to a logit) or a predicted logit.
    true_key
        ``obs`` column with the true logit of D.
    {show_save_ax}

    Returns
    -------
    {returns_axes}
    """
    key = OUTPUT_KEYS.D_PROB_COLUMN.format(key=key_added) if key is None else key
    pred = _obs_or_obsm(adata, key)
    if np.all((pred >= 0) & (pred <= 1)):
        pred = np.log(np.clip(pred, 1e-12, 1)) - np.log(np.clip(1 - pred, 1e-12, 1))
    true = _obs_or_obsm(adata, true_key)
    r, p = pearson(true, pred)
    fig, ax_ = new_axes(ax)
    ax_.scatter(true, pred, s=10, alpha=0.5, label="cells")
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    xs = np.linspace(lo, hi, 100)
    ax_.plot(xs, xs, ls="--", lw=1, color="k", label="y = x")
    _ols_line(ax_, true, pred, xs, "OLS fit")
    ax_.set_xlabel("True logit of D")
    ax_.set_ylabel("Predicted logit of D (classifier)")
    ax_.set_title(_r_title("Treatment logits", r, p))
    ax_.legend(loc="best", fontsize="small")
    return finish(
        fig,
        ax_,
        name="treatment_logits",
        show=show,
        save=save,
        return_fig=return_fig,
        ax_given=ax is not None,
    )


@fill_doc
def gene_correlations(
    adata: AnnData,
    *,
    key_added: str = "zconf",
    layer: str | None = None,
    true_layer: str = "log_mean_true",
    log: bool = True,
    bins: int = 30,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
):
    """Histogram of the per-gene Pearson r between predicted and true log-means.

    Parameters
    ----------
    adata
        Annotated AnnData with the true log-means.
    key_added
        The ``key_added`` given to :meth:`~zconf.ZConf.annotate_adata`: predicted means are read from
        ``layers["{key_added}_mean"]``.
    layer
        A layer of predicted means to use instead.
    true_layer
        Layer of true log-means.
    log
        Take the log of ``layer`` first (predicted means to log-means).
    bins
        Histogram bins.
    {show_save_ax}

    Returns
    -------
    {returns_axes}
    """
    layer = OUTPUT_KEYS.MEAN_LAYER.format(key=key_added) if layer is None else layer
    pred = _layer(adata, layer)
    pred = np.log(np.clip(pred, 1e-30, None)) if log else pred
    r = per_gene_correlation(pred, _layer(adata, true_layer))
    finite = r[np.isfinite(r)]
    fig, ax_ = new_axes(ax)
    ax_.hist(finite, bins=bins, color="tab:blue", alpha=0.8)
    ax_.axvline(np.mean(finite), color="orange", ls=":", lw=2, label="mean")
    ax_.set_xlabel("Per-gene r (predicted vs true log-mean)")
    ax_.set_ylabel("Genes")
    ax_.set_title(f"Per-gene correlation\nmean = {np.mean(finite):.3f}, median = {np.median(finite):.3f}")
    ax_.legend(loc="best", fontsize="small")
    return finish(
        fig,
        ax_,
        name="gene_correlations",
        show=show,
        save=save,
        return_fig=return_fig,
        ax_given=ax is not None,
    )


def _ema(values: np.ndarray, alpha: float) -> np.ndarray:
    out = np.empty_like(values, dtype=float)
    running = values[0]
    for i, value in enumerate(values):
        running = alpha * value + (1 - alpha) * running
        out[i] = running
    return out


#: The terms ``history`` draws, each on its own axis: (title, train column, validation column).
_HISTORY_TERMS: tuple[tuple[str, str, str | None], ...] = (
    ("Total loss", HISTORY_KEYS.TRAIN_LOSS, HISTORY_KEYS.VALIDATION_LOSS),
    ("NB loss of Y (nb_head)", HISTORY_KEYS.NB_LOSS_TRAIN, HISTORY_KEYS.NB_LOSS_VALIDATION),
    ("BCE of D (classifier)", HISTORY_KEYS.CLASSIFIER_LOSS_TRAIN, HISTORY_KEYS.CLASSIFIER_LOSS_VALIDATION),
    ("Prior term (KL)", HISTORY_KEYS.KL_LOCAL_TRAIN, HISTORY_KEYS.KL_LOCAL_VALIDATION),
    ("DBPR reward: treatment", HISTORY_KEYS.DBPR_TREATMENT_TRAIN, None),
    ("DBPR reward: genes", HISTORY_KEYS.DBPR_GENES_TRAIN, None),
)
#: How each training phase is drawn: (label, colour, marker).
_PHASE_STYLES = {
    "generator": ("generator phases", "tab:blue", "o"),
    "predictor": ("predictor phases", "tab:orange", "s"),
    "mixed": ("mixed epochs", "tab:green", "^"),
}


def _history_frame(model) -> pd.DataFrame:
    """The logged history columns in one frame indexed by epoch (validation rows only where logged)."""
    columns = [HISTORY_KEYS.GENERATOR_PHASE] + [c for _, train, val in _HISTORY_TERMS for c in (train, val) if c]
    present = [model.history[c].iloc[:, 0].rename(c) for c in columns if c in model.history]
    frame = pd.concat(present, axis=1).apply(pd.to_numeric, errors="coerce")
    return frame[frame[HISTORY_KEYS.TRAIN_LOSS].notna()] if HISTORY_KEYS.TRAIN_LOSS in frame else frame


def _phase_masks(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Epochs of each phase: the epoch's share of generator steps is 1, 0, or in between."""
    if HISTORY_KEYS.GENERATOR_PHASE not in frame:
        return {"mixed": np.ones(len(frame), dtype=bool)}
    share = frame[HISTORY_KEYS.GENERATOR_PHASE].to_numpy(dtype=float)
    masks = {"generator": share == 1.0, "predictor": share == 0.0}
    masks["mixed"] = ~(masks["generator"] | masks["predictor"])
    return {phase: mask for phase, mask in masks.items() if mask.any()}


def _history_terms(frame: pd.DataFrame) -> list[tuple[str, str, str | None]]:
    """The terms that were logged and are not identically zero (the prior term is 0 with a single state)."""
    terms = []
    for title, train, val in _HISTORY_TERMS:
        if train not in frame:
            continue
        values = frame[train].to_numpy(dtype=float)
        if np.isfinite(values).any() and np.nanmax(np.abs(values)) > 0:
            terms.append((title, train, val if val in frame else None))
    return terms


@fill_doc
def history(
    model,
    *,
    smooth_alpha: float | None = None,
    ax: Sequence[Axes] | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
):
    """Training losses per epoch, each term on its own axis, generator and predictor phases marked.

    One axis per logged term: the total loss, the NB loss of the counts, the BCE of the
    treatment, the prior term and, when trained with DBPR, its rewards. Every value is a per-cell epoch mean
    (the NB summed over genes), so the NB loss is hundreds and the BCE below one: on its own linear axis,
    each term's change over training is visible. Within each axis, the epochs of generator phases and of
    predictor phases are separate series (the objective differs between them); validation values, when
    logged, are drawn in grey.

    Parameters
    ----------
    model
        A trained :class:`~zconf.ZConf`.
    smooth_alpha
        If given (in (0, 1)), overlay an exponential moving average of each series.
    ax
        One Axes per drawn term (a new figure when ``None``).
    show, save, return_fig
        As in the other plots (``ax`` here is a sequence of Axes).

    Returns
    -------
    The list of Axes (one per term) when ``show=False``, the Figure with ``return_fig=True``, else ``None``.
    """
    if not getattr(model, "is_trained_", False) or not model.history:
        msg = "The model has no training history; call model.train() first."
        raise RuntimeError(msg)
    if smooth_alpha is not None and not 0 < smooth_alpha < 1:
        msg = f"`smooth_alpha` must lie in (0, 1), got {smooth_alpha}."
        raise ValueError(msg)
    frame = _history_frame(model)
    terms = _history_terms(frame)
    if not terms:
        msg = f"The history has none of the loss columns {[train for _, train, _ in _HISTORY_TERMS]}."
        raise KeyError(msg)
    if ax is None:
        ncols = 2 if len(terms) in (2, 4) else min(len(terms), 3)
        nrows = -(-len(terms) // ncols)
        fig, grid = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
        axes = list(grid.ravel())
        for unused in axes[len(terms) :]:
            unused.remove()
        axes = axes[: len(terms)]
    else:
        axes = list(ax)
        if len(axes) != len(terms):
            msg = f"`ax` has {len(axes)} Axes; this history has {len(terms)} terms: {[t for t, _, _ in terms]}."
            raise ValueError(msg)
        fig = axes[0].figure
    epochs = np.arange(1, len(frame) + 1)
    masks = _phase_masks(frame)
    for axis, (title, train, val) in zip(axes, terms, strict=True):
        values = frame[train].to_numpy(dtype=float)
        for phase, mask in masks.items():
            label, color, marker = _PHASE_STYLES[phase]
            axis.plot(epochs[mask], values[mask], color=color, marker=marker, ms=3, lw=1, label=label)
            if smooth_alpha is not None:
                ema = _ema(values[mask], smooth_alpha)
                axis.plot(epochs[mask], ema, color=color, lw=2.5, alpha=0.5, label=f"EMA, {label}")
        if val is not None:
            logged = frame[val].notna().to_numpy()
            axis.plot(epochs[logged], frame[val].to_numpy(dtype=float)[logged], color="grey", lw=1, label="validation")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel("per cell")
        axis.set_title(f"{title}\n{train}", fontsize="medium")
        axis.grid(alpha=0.2)
    axes[0].legend(loc="best", fontsize="small")
    if ax is None:
        fig.tight_layout()
    return finish(fig, axes, name="history", show=show, save=save, return_fig=return_fig, ax_given=ax is not None)


@fill_doc
def zhat_by_group(
    adata: AnnData,
    groupby: str,
    *,
    key_added: str = "zconf",
    key: str | None = None,
    latent: int = 0,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
):
    """Distribution of Z-hat (or its probability) in each category of an ``obs`` column.

    This is the view for real data without ground truth: does Z-hat line up with donor, batch or
    cell type, and how does it split between treated and control cells?

    Parameters
    ----------
    adata
        Annotated AnnData.
    groupby
        ``obs`` column to group by (for example ``"treatment"`` or ``"donor"``).
    key_added
        The ``key_added`` given to :meth:`~zconf.ZConf.annotate_adata`: the probability is read from
        ``obs["{key_added}_z{latent}"]`` (the posterior mean for a ``"normal"`` latent).
    key
        An ``obs`` column, or ``obsm`` key (column ``latent``), to draw instead.
    latent
        Which latent factor.
    {show_save_ax}

    Returns
    -------
    {returns_axes}
    """
    if groupby not in adata.obs:
        msg = f"`groupby` column {groupby!r} not found in adata.obs (columns: {list(adata.obs.columns)})."
        raise KeyError(msg)
    key_given = key is not None
    key = OUTPUT_KEYS.LATENT_PROB_COLUMN.format(key=key_added, j=latent) if key is None else key
    values = _obs_or_obsm(adata, key, latent)
    groups = adata.obs[groupby].astype("category")
    names = list(groups.cat.categories)
    data = [values[(groups == g).to_numpy()] for g in names]
    fig, ax_ = new_axes(ax, figsize=(max(4.0, 1.2 * len(names) + 2), 4.5))
    parts = ax_.violinplot([d if len(d) else [np.nan] for d in data], showmeans=True, showextrema=False)
    for body in parts["bodies"]:
        body.set_alpha(0.5)
    rng = np.random.default_rng(0)
    for i, values_in_group in enumerate(data, start=1):
        jitter = rng.uniform(-0.15, 0.15, size=len(values_in_group))
        ax_.scatter(i + jitter, values_in_group, s=3, alpha=0.25, color="k", linewidths=0)
    ax_.set_xticks(range(1, len(names) + 1), [str(n) for n in names], rotation=30 if len(names) > 4 else 0)
    ax_.set_xlabel(groupby)
    params = adata.uns.get(OUTPUT_KEYS.UNS.format(key=key_added), {}).get("params", {})
    quantity = "E[Z]" if params.get("latent_distribution") == "normal" else "P(Z=1)"  # a continuous Z-hat
    ax_.set_ylabel(key if key_given else f"{quantity}: {key}")
    means = ", ".join(f"{n}: {np.mean(d):.2f}" for n, d in zip(names[:6], data[:6], strict=False) if len(d))
    ax_.set_title(f"{key} by {groupby} (means {means})", fontsize="medium")
    return finish(fig, ax_, name="zhat_by_group", show=show, save=save, return_fig=return_fig, ax_given=ax is not None)
