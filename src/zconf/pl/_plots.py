"""scanpy-style diagnostic plots of a fitted ZConf model and its annotated AnnData."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from zconf.metrics import per_gene_correlation
from zconf.metrics._latent import _pearson

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
    key: str = "X_zconf",
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
    key
        ``obsm`` key of Z-hat, or ``obs`` column (for example ``"zconf_z0"``, the probability).
    true_key
        ``obsm`` key or ``obs`` column of the true Z.
    latent
        Column of Z-hat (and of the true Z) to draw.
    soft
        Draw the probability column ``{prefix}_z{latent}`` instead of the hard Z-hat in ``key``.
    jitter
        Horizontal jitter around 0 and 1.
    random_state
        Seed of the jitter.
    {show_save_ax}

    Returns
    -------
    The Axes when ``show=False``, the Figure with ``return_fig=True``, else ``None``.
    """
    if soft:
        key = f"{key.removeprefix('X_')}_z{latent}"
    z_hat = _obs_or_obsm(adata, key, latent)
    z_true = _obs_or_obsm(adata, true_key, latent)
    r, p = _pearson(z_true, z_hat)
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
    ax_.set_title(_r_title("Z-hat vs true Z", r, p))
    ax_.legend(loc="best", fontsize="small")
    return finish(fig, ax_, name="zhat_vs_true", show=show, save=save, return_fig=return_fig, ax_given=ax is not None)


@fill_doc
def treatment_logits(
    adata: AnnData,
    *,
    key: str = "zconf_d_prob",
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
    key
        ``obs`` column with the predicted P(D=1) (converted to a logit) or a predicted logit.
    true_key
        ``obs`` column with the true logit of D.
    {show_save_ax}

    Returns
    -------
    The Axes when ``show=False``, the Figure with ``return_fig=True``, else ``None``.
    """
    pred = _obs_or_obsm(adata, key)
    if np.all((pred >= 0) & (pred <= 1)):
        pred = np.log(np.clip(pred, 1e-12, 1)) - np.log(np.clip(1 - pred, 1e-12, 1))
    true = _obs_or_obsm(adata, true_key)
    r, p = _pearson(true, pred)
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
    layer: str = "zconf_mean",
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
    layer
        Layer of predicted means.
    true_layer
        Layer of true log-means.
    log
        Take the log of ``layer`` first (predicted means to log-means).
    bins
        Histogram bins.
    {show_save_ax}

    Returns
    -------
    The Axes when ``show=False``, the Figure with ``return_fig=True``, else ``None``.
    """
    pred = _layer(adata, layer)
    pred = np.log(np.clip(pred, 1e-30, None)) if log else pred
    r = per_gene_correlation(pred, _layer(adata, true_layer))
    finite = r[np.isfinite(r)]
    fig, ax_ = new_axes(ax)
    ax_.hist(finite, bins=bins, color="tab:blue", alpha=0.8)
    ax_.axvline(np.mean(finite), color="orange", ls=":", lw=2, label="mean")
    ax_.set_xlabel("Per-gene r (predicted vs true log-mean)")
    ax_.set_ylabel("Genes")
    ax_.set_title(f"Per-gene correlation: mean = {np.mean(finite):.3f}, median = {np.median(finite):.3f}")
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
    """Training losses per epoch: generator phases (total, BCE, NB) and predictor phases on their own axes.

    Losses are per cell (NB summed over genes), on a log scale so that BCE and NB share an axis.

    Parameters
    ----------
    model
        A trained :class:`~zconf.ZConf`.
    smooth_alpha
        If given (in (0, 1)), overlay an exponential moving average of each curve.
    ax
        Two Axes (generator phase, predictor phase); a new figure when ``None``.
    show, save, return_fig
        As in the other plots (``ax`` here is a pair of Axes).

    Returns
    -------
    The two Axes when ``show=False``, the Figure with ``return_fig=True``, else ``None``.
    """
    if not getattr(model, "is_trained_", False) or not model.history:
        msg = "The model has no training history; call model.train() first."
        raise RuntimeError(msg)
    if smooth_alpha is not None and not 0 < smooth_alpha < 1:
        msg = f"`smooth_alpha` must lie in (0, 1), got {smooth_alpha}."
        raise ValueError(msg)
    frame = pd.concat(
        [model.history[k] for k in ("train_loss", "classifier_loss_train", "nb_loss_train", "generator_phase")],
        axis=1,
    ).dropna()
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    else:
        axes = list(ax)
        fig = axes[0].figure
    curves = {"total": "train_loss", "BCE (D)": "classifier_loss_train", "NB (Y)": "nb_loss_train"}
    styles = {"total": "-", "BCE (D)": "--", "NB (Y)": ":"}
    for axis, is_gen, title in ((axes[0], 1.0, "Generator phases"), (axes[1], 0.0, "Predictor phases")):
        part = frame[frame["generator_phase"] == is_gen]
        steps = np.arange(1, len(part) + 1)
        for label, column in curves.items():
            if is_gen == 0.0 and label == "total":
                continue
            values = part[column].to_numpy(dtype=float)
            if len(values) == 0:
                continue
            axis.plot(steps, values, ls=styles[label], label=label)
            if smooth_alpha is not None:
                axis.plot(steps, _ema(values, smooth_alpha), lw=2, alpha=0.7, label=f"EMA {label}")
        axis.set_yscale("log")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel(f"{title[:-1].lower()} epoch")
        axis.set_ylabel("loss per cell")
        axis.set_title(title)
        axis.grid(alpha=0.2)
        axis.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return finish(fig, list(axes), name="history", show=show, save=save, return_fig=return_fig, ax_given=ax is not None)


@fill_doc
def zhat_by_group(
    adata: AnnData,
    groupby: str,
    *,
    key: str = "zconf_z0",
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
    key
        ``obs`` column with the probability, or ``obsm`` key of Z-hat (first column).
    {show_save_ax}

    Returns
    -------
    The Axes when ``show=False``, the Figure with ``return_fig=True``, else ``None``.
    """
    if groupby not in adata.obs:
        msg = f"`groupby` column {groupby!r} not found in adata.obs (columns: {list(adata.obs.columns)})."
        raise KeyError(msg)
    values = _obs_or_obsm(adata, key)
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
    ax_.set_ylabel(key)
    means = ", ".join(f"{n}: {np.mean(d):.2f}" for n, d in zip(names[:6], data[:6], strict=False) if len(d))
    ax_.set_title(f"{key} by {groupby} (means {means})", fontsize="medium")
    return finish(fig, ax_, name="zhat_by_group", show=show, save=save, return_fig=return_fig, ax_given=ax is not None)
