"""The categorical latent: one confounder with L levels, marginalised exactly; its outputs, persistence and choice."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_mutual_info_score

import zconf
from tests.conftest import FAST_TRAIN, setup
from tests.model._brute_force import brute_force_loglik
from zconf.analysis import (
    candidate_label,
    choose_smallest_supported,
    complexity,
    state_overlap,
    stops_early,
    worth_fitting,
)


@pytest.fixture(scope="module")
def four_levels():
    adata = setup(zconf.data.simulate("categorical", n_obs=600, n_vars=40, random_state=0))
    model = zconf.ZConf(adata, n_hidden=32, n_latent=4, latent_distribution="categorical")
    model.train(max_epochs=30, n_init=1, accelerator="cpu", enable_progress_bar=False)
    return model, adata


def test_marginal_log_likelihood_sums_over_the_levels(four_levels):
    model, adata = four_levels
    assert model.module.renormalises_latent  # what the brute force implements
    np.testing.assert_allclose(model.get_marginal_log_likelihood(), brute_force_loglik(model, adata), rtol=1e-5)


def test_outputs_are_level_probabilities_and_one_hot_levels(four_levels):
    model, adata = four_levels
    soft, hard = model.get_latent_representation(soft=True), model.get_latent_representation()
    assert soft.shape == hard.shape == (adata.n_obs, 4)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(hard.sum(1), 1.0)
    np.testing.assert_array_equal(hard.argmax(1), soft.argmax(1))
    annotated = model.annotate_adata(copy=True)
    level = annotated.obs["zconf_level"]
    assert isinstance(level.dtype, pd.CategoricalDtype) and list(level.cat.categories) == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(level.cat.codes.to_numpy(), soft.argmax(1))
    assert annotated.uns["zconf"]["params"]["latent_distribution"] == "categorical"
    assert "zconf_level" not in adata.obs  # the user's AnnData is left alone with copy=True


def test_effects_drop_the_first_level_beside_the_intercept(four_levels):
    model, adata = four_levels
    table = model.treatment_effects(z="hard")
    hard = model.get_latent_representation()
    explicit = model.treatment_effects(z=hard[:, 1:])
    np.testing.assert_allclose(table["lfc"].to_numpy(), explicit["lfc"].to_numpy(), rtol=1e-6)
    assert table["converged"].all()
    assert np.isfinite(model.treatment_effects()["lfc"]).all()  # soft levels: no singular design
    assert np.isfinite(model.sensitivity()["treatment"])


def test_state_overlap_reports_each_level(four_levels):
    model, adata = four_levels
    overlap = model.state_overlap()
    assert list(overlap.index) == [f"level {j}" for j in range(4)]
    np.testing.assert_allclose(overlap["cells"].sum(), adata.n_obs, rtol=1e-5)
    d = adata.obs["treatment"].to_numpy()
    weights = model.get_latent_representation(soft=True)
    np.testing.assert_allclose(overlap["treated_share"], (weights * d[:, None]).sum(0) / weights.sum(0), rtol=1e-5)


def test_state_overlap_flags_a_state_of_treated_cells_only():
    rng = np.random.default_rng(0)
    d = rng.integers(0, 2, 1000)
    mediator = np.where(d[:, None] == 1, rng.dirichlet([1, 1], 1000), [[1.0, 0.0]])  # state 1: treated only
    table = state_overlap(mediator, d)
    assert bool(table.loc[0, "overlap"]) and not bool(table.loc[1, "overlap"])
    assert table.loc[1, "treated_share"] == pytest.approx(1.0)


def test_save_and_load_keep_the_family(four_levels, tmp_path):
    model, adata = four_levels
    model.save(tmp_path / "categorical")
    loaded = zconf.ZConf.load(tmp_path / "categorical", adata=adata)
    assert loaded.latent_distribution_ == "categorical" and loaded.n_latent_ == 4
    np.testing.assert_allclose(
        loaded.get_latent_representation(soft=True), model.get_latent_representation(soft=True), rtol=1e-6
    )


def test_cross_fitted_levels_are_aligned(four_levels):
    model, adata = four_levels
    crossed = model.get_cross_fitted_latent(n_folds=2, train_kwargs={**FAST_TRAIN, "max_epochs": 20})
    assert crossed.shape == (adata.n_obs, 4)
    np.testing.assert_allclose(crossed.sum(1), 1.0, rtol=1e-5)
    hard = model.get_cross_fitted_latent(n_folds=2, soft=False, train_kwargs={**FAST_TRAIN, "max_epochs": 2})
    np.testing.assert_array_equal(hard.sum(1), 1.0)


def test_bad_categorical_settings_raise_clear_errors(adata):
    adata = setup(adata)
    with pytest.raises(ValueError, match="n_latent must be >= 2"):
        zconf.ZConf(adata, n_latent=1, latent_distribution="categorical")
    with pytest.raises(ValueError, match="relaxation='marginal'"):
        zconf.ZConf(adata, n_latent=3, latent_distribution="categorical", relaxation="gumbel")
    with pytest.raises(ValueError, match="latent_distribution"):
        zconf.ZConf(adata, latent_distribution="poisson")
    with pytest.raises(ValueError, match="max_levels"):
        zconf.ZConf(adata, max_levels=1)


def test_candidates_are_ordered_by_coefficients_per_gene():
    candidates = [("categorical", 3), ("bernoulli", 2), ("none", 0), ("bernoulli", 1), ("categorical", 5)]
    ordered = sorted(candidates, key=complexity)
    assert [candidate_label(c) for c in ordered] == [
        "none",
        "bernoulli 1",
        "bernoulli 2",
        "categorical 3",
        "categorical 5",
    ]
    rng = np.random.default_rng(0)
    base = rng.normal(-300, 5, 400)
    scores = {
        ("none", 0): base,
        ("bernoulli", 1): base + 1 + rng.normal(0, 0.3, 400),
        ("categorical", 3): base + 4 + rng.normal(0, 0.3, 400),
    }
    assert choose_smallest_supported(scores) == ("categorical", 3)
    assert choose_smallest_supported(scores, eligible=[("none", 0), ("bernoulli", 1)]) == ("bernoulli", 1)
    assert not stops_early(scores, ("categorical", 3))  # compared with Bernoulli 1, the same model as 2 levels


def test_categorical_family_is_searched_only_when_bernoulli_2_gains():
    rng = np.random.default_rng(1)
    base = rng.normal(-300, 5, 400)
    one = {("none", 0): base, ("bernoulli", 1): base + 3 + rng.normal(0, 0.3, 400)}
    tied = {**one, ("bernoulli", 2): one[("bernoulli", 1)] + rng.normal(0, 0.3, 400)}
    gained = {**one, ("bernoulli", 2): one[("bernoulli", 1)] + 1 + rng.normal(0, 0.3, 400)}
    assert not worth_fitting(tied, ("categorical", 3))  # a binary confounder: three levels add nothing
    assert worth_fitting(gained, ("categorical", 3))
    assert worth_fitting(one, ("categorical", 3))  # Bernoulli 2 not fitted (max_latent=1): no evidence either way
    assert worth_fitting(tied, ("bernoulli", 3)) and worth_fitting(tied, ("categorical", 4))


@pytest.mark.slow
def test_auto_chooses_four_levels_on_a_four_level_confounder():
    adata = setup(zconf.data.simulate("categorical", n_obs=2000, n_vars=200, random_state=0))
    model = zconf.ZConf(adata)
    model.train(accelerator="cpu", enable_progress_bar=False)
    assert (model.latent_distribution_, model.n_latent_) == ("categorical", 4)
    level = model.get_latent_representation(soft=True).argmax(1)
    assert adjusted_mutual_info_score(adata.obs["z_level_true"], level) > 0.9
    assert {"treated_share_min", "treated_share_max", "overlap"} <= set(model.latent_selection_.columns)
