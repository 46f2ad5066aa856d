"""The automatic choice of the number of confounders: held-out log-likelihood per candidate."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from ._utils import fill_doc, finish, new_axes


@fill_doc
def latent_selection(
    model,
    *,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
):
    """Held-out log-likelihood per cell of each candidate latent (family and size), relative to the chosen one.

    Each point is a candidate of ``ZConf(adata, n_latent="auto")``: its mean held-out exact marginal
    log-likelihood minus the chosen candidate's, with ±2 standard errors of the paired per-cell difference
    (the bar a larger candidate must clear). The chosen candidate is the filled marker at 0; crosses mark
    candidates whose states may not be adjusted for (the column ``role`` of ``latent_selection_`` says why), which
    are never chosen.

    Parameters
    ----------
    model
        A :class:`~zconf.ZConf` trained with ``n_latent="auto"`` (it holds ``latent_selection_``).
    {show_save_ax}

    Returns
    -------
    {returns_axes}
    """
    table = getattr(model, "latent_selection_", None)
    if table is None:
        msg = "This model has no latent_selection_: train a ZConf(adata, n_latent='auto') first."
        raise ValueError(msg)
    ax_given = ax is not None
    # family over size on two lines, with room for "categorical" under each candidate: one line each overlapped
    # at 5 candidates (bernoulli 2, categorical 3, bernoulli 3 ran together on a 5-inch figure)
    fig, ax = new_axes(ax, figsize=(max(5.0, 0.95 * len(table) + 1.5), 3.8))
    labels = table.index.to_numpy()
    x = np.arange(len(table))
    gain, se = table["gain_vs_chosen"].to_numpy(), table["gain_vs_chosen_se"].to_numpy()
    chosen = table["chosen"].to_numpy(dtype=bool)
    # candidates whose states are no confounders (one arm only, not linked to the treatment, or another signature
    # in each arm) are never chosen: drawn as crosses (tables of older models hold the overlap column only)
    column = "eligible" if "eligible" in table else "overlap"
    no_overlap = ~table[column].to_numpy(dtype=bool) if column in table else np.zeros(len(table), bool)
    ax.axhline(0.0, color="0.6", linestyle="--", linewidth=1)
    ax.errorbar(x, gain, yerr=2 * se, fmt="none", ecolor="C0", capsize=4)
    plain = ~chosen & ~no_overlap
    if plain.any():
        ax.plot(x[plain], gain[plain], "o", mfc="white", mec="C0", ms=8, label="candidate")
    if no_overlap.any():
        ax.plot(x[no_overlap], gain[no_overlap], "x", color="C1", ms=9, mew=2, label="not a confounder")
    ax.plot(x[chosen], gain[chosen], "o", color="C3", ms=9, label=f"chosen: {labels[chosen][0]}")
    ax.set_xticks(x, [str(label).replace(" ", "\n", 1) for label in labels], fontsize=9)
    ax.set_xlabel("candidate latent (family and size)")
    ax.set_ylabel("held-out log-likelihood gain\nover the chosen (nats per cell)")
    absolute = table["heldout_loglik"].to_numpy()
    ax.set_title(f"Choice of the latent (chosen: {absolute[chosen][0]:.2f} nats per held-out cell)", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="best")
    ax.margins(x=0.15 if len(x) <= 5 else 0.06)
    if np.all(np.isfinite(gain)):
        spread = max(float(np.max(np.abs(gain) + 2 * se)), 1e-3)
        top = max(float(np.max(gain + 2 * se)), 0.0)  # no candidate beats the chosen one by much: little room above
        ax.set_ylim(-1.15 * spread, top + 0.25 * spread)
    return finish(fig, ax, name="latent_selection", show=show, save=save, return_fig=return_fig, ax_given=ax_given)
