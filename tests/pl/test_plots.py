import matplotlib

matplotlib.use("agg")
import numpy as np
import pytest
import scanpy as sc
from matplotlib.collections import PathCollection
from scipy import stats

import zconf
from zconf._constants import HISTORY_KEYS, OUTPUT_KEYS


@pytest.fixture(scope="module")
def annotated(trained):
    model, adata = trained
    return model, model.annotate_adata(copy=True)


def _n_points(ax):
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def test_zhat_vs_true(annotated, tmp_path):
    _, adata = annotated
    ax = zconf.pl.zhat_vs_true(adata, soft=True, show=False, save=str(tmp_path / "z.png"))
    assert (tmp_path / "z.png").stat().st_size > 0
    assert _n_points(ax) == adata.n_obs
    r, _ = stats.pearsonr(adata.obsm["z_true"][:, 0], adata.obs["zconf_z0"].to_numpy())
    assert f"r = {r:.3f}" in ax.get_title()
    ols = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(ols) == 1 and ols[0].get_color() == "orange"


def test_treatment_logits(annotated, tmp_path):
    _, adata = annotated
    ax = zconf.pl.treatment_logits(adata, show=False, save=str(tmp_path / "d.png"))
    assert _n_points(ax) == adata.n_obs
    styles = sorted(line.get_linestyle() for line in ax.get_lines())
    assert styles == ["--", ":"]
    assert "r = " in ax.get_title()


def test_treatment_logits_constant_truth_says_so(annotated):
    """The notebook's literal settings randomise D: every true logit is 0 and r is undefined, not 'nan'."""
    _, adata = annotated
    adata = adata.copy()
    adata.obs["treatment_logit_true"] = 0.0
    ax = zconf.pl.treatment_logits(adata, show=False)
    assert "undefined" in ax.get_title()
    assert "nan" not in ax.get_title()


def test_gene_correlations(annotated, tmp_path):
    _, adata = annotated
    ax = zconf.pl.gene_correlations(adata, show=False, save=str(tmp_path / "g.png"))
    r = zconf.metrics.per_gene_correlation(np.log(adata.layers["zconf_mean"]), adata.layers["log_mean_true"])
    assert f"mean = {np.nanmean(r):.3f}" in ax.get_title()
    assert sum(p.get_height() for p in ax.patches) == np.isfinite(r).sum()


def test_history(annotated, tmp_path):
    model, _ = annotated
    axes = zconf.pl.history(model, smooth_alpha=0.3, show=False, save=str(tmp_path / "h.png"))
    assert (tmp_path / "h.png").stat().st_size > 0
    columns = [HISTORY_KEYS.TRAIN_LOSS, HISTORY_KEYS.NB_LOSS_TRAIN, HISTORY_KEYS.CLASSIFIER_LOSS_TRAIN]
    assert len(axes) >= len(columns)
    for axis, column in zip(axes, columns, strict=False):
        assert column in axis.get_title()
        # each term on its own linear axis, scaled to its own values: BCE (~0.7) is not squashed under NB (~100s)
        values = model.history[column].to_numpy(dtype=float).ravel()
        low, high = axis.get_ylim()
        assert axis.get_yscale() == "linear"
        assert low <= values.min() and values.max() <= high
        assert high - low < 2 * max(np.ptp(values), 1e-3 * abs(values).max())
    labels = {line.get_label() for line in axes[0].get_lines()}
    assert {"generator phases", "predictor phases"} <= labels
    assert {"EMA, generator phases", "EMA, predictor phases"} <= labels
    fig = zconf.pl.history(model, return_fig=True)
    assert len(fig.axes) == len(axes)


def test_history_phases_are_the_logged_epochs(annotated):
    """Each phase's series holds exactly the epochs that the history marks as that phase."""
    model, _ = annotated
    axes = zconf.pl.history(model, show=False)
    phase = model.history[HISTORY_KEYS.GENERATOR_PHASE].to_numpy(dtype=float).ravel()
    lines = {line.get_label(): line for line in axes[0].get_lines()}
    generator_epochs = lines["generator phases"].get_xdata()
    predictor_epochs = lines["predictor phases"].get_xdata()
    np.testing.assert_array_equal(generator_epochs, np.flatnonzero(phase == 1) + 1)
    np.testing.assert_array_equal(predictor_epochs, np.flatnonzero(phase == 0) + 1)


def test_history_on_given_axes(annotated):
    import matplotlib.pyplot as plt

    model, _ = annotated
    n_terms = len(zconf.pl.history(model, show=False))
    fig, axes = plt.subplots(1, n_terms)
    assert zconf.pl.history(model, ax=axes, show=False) == list(axes)
    with pytest.raises(ValueError, match=f"this history has {n_terms} terms"):
        zconf.pl.history(model, ax=axes[:1], show=False)
    plt.close(fig)


def test_plots_read_key_added(trained):
    model, _ = trained
    adata = model.annotate_adata(key_added="run1", copy=True)
    assert OUTPUT_KEYS.LATENT.format(key="run1") in adata.obsm
    zconf.pl.zhat_vs_true(adata, key_added="run1", soft=True, show=False)
    zconf.pl.treatment_logits(adata, key_added="run1", show=False)
    zconf.pl.gene_correlations(adata, key_added="run1", show=False)
    ax = zconf.pl.zhat_by_group(adata, "treatment", key_added="run1", show=False)
    assert ax.get_title().startswith("run1_z0 by treatment")
    with pytest.raises(KeyError, match="zconf_z0"):
        zconf.pl.zhat_by_group(adata, "treatment", show=False)
    with pytest.raises(ValueError, match="either `key`"):
        zconf.pl.zhat_vs_true(adata, key="X_run1", soft=True, show=False)


def test_zhat_by_group(annotated, tmp_path):
    _, adata = annotated
    ax = zconf.pl.zhat_by_group(adata, "treatment", show=False, save=str(tmp_path / "grp.png"))
    assert "by treatment" in ax.get_title()
    with pytest.raises(KeyError, match="donor"):
        zconf.pl.zhat_by_group(adata, "donor", show=False)


def test_missing_truth_key_is_clear(annotated):
    _, adata = annotated
    with pytest.raises(KeyError, match="not found"):
        zconf.pl.zhat_vs_true(adata, true_key="z_missing", show=False)


def test_history_untrained_model_errors(adata):
    from tests.conftest import setup

    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    with pytest.raises(RuntimeError, match="train"):
        zconf.pl.history(model, show=False)


def test_scanpy_interoperability(trained, tmp_path):
    model, adata = trained
    ad = model.annotate_adata(copy=True)
    sc.pp.neighbors(ad, use_rep="X_zconf", n_neighbors=10)
    sc.tl.umap(ad, min_dist=0.5)
    sc.pl.umap(ad, color="zconf_z0", show=False)
    ad.obs["condition"] = ad.obs["treatment"].map({0: "control", 1: "treated"}).astype("category")
    sc.pl.violin(ad, "zconf_z0", groupby="condition", show=False)


def test_embedding_with_two_latents(adata):
    from tests.conftest import FAST_TRAIN, setup

    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=2)
    model.train(**FAST_TRAIN)
    model.annotate_adata()
    assert adata.obsm["X_zconf"].shape == (adata.n_obs, 2)
    ax = sc.pl.embedding(adata, basis="zconf", color="zconf_z1", show=False)
    assert ax is not None
