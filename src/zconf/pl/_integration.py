"""Side-by-side UMAPs of two datasets before and after integration (e.g. by :class:`zconf.PairedVAE`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._utils import finish


def _umap(representation: np.ndarray, n_neighbors: int, random_state: int) -> np.ndarray:
    import scanpy as sc

    embedded = AnnData(np.zeros((representation.shape[0], 1), dtype=np.float32))
    embedded.obsm["X_rep"] = np.asarray(representation, dtype=np.float32)
    try:
        sc.pp.neighbors(embedded, use_rep="X_rep", n_neighbors=n_neighbors, random_state=random_state)
    except AttributeError:  # scanpy's approximate neighbours (> 4,096 cells) with scipy's sparse arrays
        import umap

        reducer = umap.UMAP(n_neighbors=n_neighbors, random_state=random_state)
        return reducer.fit_transform(embedded.obsm["X_rep"])
    sc.tl.umap(embedded, random_state=random_state)
    return embedded.obsm["X_umap"]


def _log_normalised_pca(adata: AnnData, layer: str | None, n_comps: int) -> np.ndarray:
    import scanpy as sc
    from scipy import sparse

    counts = adata.X if layer is None else adata.layers[layer]
    if sparse.issparse(counts):  # scanpy's normalisation needs a sparse matrix, not a sparse array
        counts = sparse.csr_matrix(counts)
    normalised = AnnData(counts.astype(np.float32))
    sc.pp.normalize_total(normalised)
    sc.pp.log1p(normalised)
    n_comps = min(n_comps, min(normalised.shape) - 1)
    sc.pp.pca(normalised, n_comps=n_comps, random_state=0)
    return normalised.obsm["X_pca"]


def _representation(adata: AnnData, key: str, role: str) -> np.ndarray:
    if key not in adata.obsm:
        msg = (
            f"adata.obsm[{key!r}] not found for the {role} representation (available: {list(adata.obsm)}). "
            "For PairedVAE, run model.annotate_adata(adata) first (it writes obsm['X_pairedvae'])."
        )
        raise KeyError(msg)
    return np.asarray(adata.obsm[key])


def _scatter(ax: Axes, coords: np.ndarray, labels: pd.Series, title: str, order: np.ndarray, legend: bool) -> None:
    categories = labels.cat.categories
    colours = plt.get_cmap("tab10" if len(categories) <= 10 else "tab20")(np.arange(len(categories)) % 20)
    codes = labels.cat.codes.to_numpy()
    ax.scatter(coords[order, 0], coords[order, 1], c=colours[codes[order]], s=4, linewidths=0, rasterized=True)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("UMAP1", fontsize=8)
    ax.set_ylabel("UMAP2", fontsize=8)
    if legend:
        handles = [
            plt.Line2D([], [], marker="o", linestyle="", color=colours[i], markersize=5, label=str(level))
            for i, level in enumerate(categories)
        ]
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)


def integration_umap(
    adata: AnnData,
    dataset_key: str,
    label_key: str,
    *,
    rep_after: str = "X_pairedvae",
    rep_before: str | None = None,
    layer: str | None = None,
    n_neighbors: int = 15,
    random_state: int = 0,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
) -> Figure | list[Axes] | None:
    """UMAPs of the two datasets before and after integration, coloured by dataset and by cell type.

    A 2 × 2 grid: the top row embeds the representation before integration, the bottom row the integrated
    one (``adata.obsm[rep_after]``); the left column is coloured by ``dataset_key``, the right column by
    ``label_key``. Good integration mixes the colours on the bottom left and keeps the cell types of the
    bottom right apart. Cells are drawn in a random order, so neither dataset hides the other. The UMAPs are
    computed on private copies; ``adata`` is not modified.

    Parameters
    ----------
    adata
        AnnData with both datasets, e.g. the one a :class:`zconf.PairedVAE` was trained on and then
        annotated (:meth:`zconf.PairedVAE.annotate_adata`).
    dataset_key
        ``adata.obs`` column naming each cell's dataset.
    label_key
        ``adata.obs`` column with the cell types.
    rep_after
        ``adata.obsm`` key of the integrated representation.
    rep_before
        ``adata.obsm`` key of the representation before integration; ``None`` computes a PCA (50
        components) of the log-normalised counts in ``layer``.
    layer
        Layer of raw counts for ``rep_before=None``; ``adata.X`` when ``None``.
    n_neighbors
        Neighbours of the kNN graph of each UMAP.
    random_state
        Seed of the UMAPs and of the drawing order.
    show
        Show the figure; ``None`` shows it unless ``save`` or ``return_fig`` is given.
    save
        ``True`` writes ``{figdir}/integration_umap.png`` (``scanpy.settings.figdir``); a string is a file
        path, or, without a directory part, a suffix appended to the plot name as in scanpy.
    return_fig
        Return the :class:`~matplotlib.figure.Figure` instead of the four Axes.

    Returns
    -------
    The Figure with ``return_fig=True``; otherwise the four Axes (row-major: before × dataset, before ×
    cell type, after × dataset, after × cell type) when not shown, else ``None``.

    Examples
    --------
    >>> model.annotate_adata(adata)  # doctest: +SKIP
    >>> zconf.pl.integration_umap(adata, "condition", "cell_type", save="integration.png")  # doctest: +SKIP
    """
    for key, role in ((dataset_key, "dataset_key"), (label_key, "label_key")):
        if key not in adata.obs:
            msg = f"{role}={key!r} is not a column of adata.obs (available: {list(adata.obs.columns)})."
            raise KeyError(msg)
    after = _representation(adata, rep_after, "integrated")
    if rep_before is None:
        before, before_name = _log_normalised_pca(adata, layer, 50), "PCA of log-normalised counts"
    else:
        before, before_name = _representation(adata, rep_before, "unintegrated"), rep_before
    datasets = adata.obs[dataset_key].astype("category")
    labels = adata.obs[label_key].astype("category")
    order = np.random.default_rng(random_state).permutation(adata.n_obs)
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 8.5))
    for row, (name, representation) in enumerate(((f"before: {before_name}", before), (f"after: {rep_after}", after))):
        coords = _umap(representation, n_neighbors, random_state)
        _scatter(axes[row, 0], coords, datasets, f"{name}\ncoloured by {dataset_key}", order, legend=row == 0)
        _scatter(axes[row, 1], coords, labels, f"{name}\ncoloured by {label_key}", order, legend=row == 0)
    fig.tight_layout()
    return finish(
        fig,
        list(axes.ravel()),
        name="integration_umap",
        show=show,
        save=save,
        return_fig=return_fig,
        ax_given=False,
    )
