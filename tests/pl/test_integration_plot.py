"""zconf.pl integration_umap: the 2 x 2 grid of UMAPs before and after integration."""

import matplotlib

matplotlib.use("agg")
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from matplotlib.collections import PathCollection

from zconf.pl._integration import integration_umap


@pytest.fixture
def two_datasets():
    rng = np.random.default_rng(0)
    n = 120
    cell_type = np.resize(["a", "b", "c"], n)
    dataset = np.where(np.arange(n) < 70, "ctrl", "stim")
    means = rng.gamma(2.0, 2.0, size=(3, 30))
    rates = means[pd.Categorical(cell_type).codes] * np.where(dataset == "stim", 1.5, 1.0)[:, None]
    adata = AnnData(rng.poisson(rates).astype(np.float32))
    adata.obs["condition"] = pd.Categorical(dataset)
    adata.obs["cell_type"] = pd.Categorical(cell_type)
    adata.obsm["X_pairedvae"] = rng.normal(size=(n, 4)) + pd.Categorical(cell_type).codes[:, None]
    return adata


def _n_points(ax):
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def test_grid_titles_points_and_file(two_datasets, tmp_path):
    obsm_before = set(two_datasets.obsm)
    axes = integration_umap(two_datasets, "condition", "cell_type", show=False, save=str(tmp_path / "u.png"))
    assert (tmp_path / "u.png").stat().st_size > 0
    assert len(axes) == 4
    assert all(_n_points(ax) == two_datasets.n_obs for ax in axes)
    titles = [ax.get_title() for ax in axes]
    assert titles[0].startswith("before") and titles[2].startswith("after: X_pairedvae")
    assert "condition" in titles[0] and "cell_type" in titles[1]
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend == ["ctrl", "stim"]
    assert set(two_datasets.obsm) == obsm_before  # the UMAPs are computed on copies


def test_given_before_representation_and_return_fig(two_datasets):
    two_datasets.obsm["X_raw"] = np.log1p(two_datasets.X)
    fig = integration_umap(two_datasets, "condition", "cell_type", rep_before="X_raw", return_fig=True)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title().startswith("before: X_raw")


def test_errors_name_the_missing_key(two_datasets):
    with pytest.raises(KeyError, match="annotate_adata"):
        integration_umap(two_datasets, "condition", "cell_type", rep_after="X_missing", show=False)
    with pytest.raises(KeyError, match="label_key"):
        integration_umap(two_datasets, "condition", "celltype", show=False)
