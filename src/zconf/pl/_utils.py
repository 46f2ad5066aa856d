"""Shared plotting helpers: scanpy's save/show semantics and the shared parameter text."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from zconf._docs import fill_docstring

#: Parameter text shared by every plot (like ``scanpy/plotting/_docs.py``).
DOC_SHOW_SAVE_AX = """\
ax
    Axes to draw on; a new figure when ``None``.
show
    Show the figure; ``None`` shows it unless ``save`` or ``return_fig`` is given or ``ax`` is passed.
save
    ``True`` writes ``{figdir}/{name}.png`` (``scanpy.settings.figdir``); a string is a file path, or,
    without a directory part, a suffix appended to the plot name as in scanpy (``"_run1.pdf"``).
    The figure is closed after saving.
return_fig
    Return the :class:`~matplotlib.figure.Figure` instead of the Axes."""


#: The Returns text of every plot that draws on one Axes.
DOC_RETURNS_AXES = "The Axes when ``show=False``, the Figure with ``return_fig=True``, else ``None``."

#: Fills ``{show_save_ax}`` and ``{returns_axes}`` in a plot's docstring.
fill_doc = fill_docstring(show_save_ax=DOC_SHOW_SAVE_AX, returns_axes=DOC_RETURNS_AXES)


def new_axes(ax: Axes | None, figsize: tuple[float, float] = (5.5, 4.5)) -> tuple[Figure, Axes]:
    """The figure and axes to draw on."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def save_path(name: str, save: bool | str) -> Path:
    """Where ``save`` asks the plot called ``name`` to go."""
    import scanpy as sc

    figdir = Path(sc.settings.figdir)
    if save is True:
        return figdir / f"{name}.png"
    save = str(save)
    path = Path(save)
    if path.parent != Path(".") or path.is_absolute():
        return path
    if Path(save).suffix and save.startswith(name):
        return figdir / save
    suffix = save if Path(save).suffix else f"{save}.png"
    return figdir / f"{name}{suffix}"


def finish(
    fig: Figure,
    axes: Axes | list[Axes],
    *,
    name: str,
    show: bool | None,
    save: bool | str | None,
    return_fig: bool,
    ax_given: bool,
) -> Figure | Axes | list[Axes] | None:
    """Save and/or show like scanpy, then return the Axes (when not shown) or the Figure.

    A figure this call created is closed after saving; the returned Axes keep their artists.
    """
    if save:
        path = save_path(name, save)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")
    if show is None:
        show = not (save or return_fig or ax_given)
    if show:
        plt.show()
    if save and not ax_given and not return_fig:
        plt.close(fig)
    if return_fig:
        return fig
    return None if show else axes
