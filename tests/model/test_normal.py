"""The normal latent: one continuous confounder on a grid of values; its outputs, effects, persistence and choice."""

import numpy as np
import pytest
import torch

import zconf
from tests.conftest import setup
from tests.model._brute_force import brute_force_loglik
from zconf.analysis import candidate_label, complexity, shift_along_signature, signature_shift, worth_fitting
from zconf.model._submodels import candidates_to_try
from zconf.module._latent import NORMAL_GRID_STATES, NormalGridLatent, make_latent


@pytest.fixture(scope="module")
def continuous():
    adata = setup(zconf.data.simulate("continuous", n_obs=800, n_vars=60, random_state=0))
    model = zconf.ZConf(adata, n_hidden=32, n_latent=1, latent_distribution="normal")
    model.train(max_epochs=40, n_init=1, accelerator="cpu", enable_progress_bar=False)
    return model, adata


def test_grid_is_a_discretised_standard_normal():
    latent = NormalGridLatent(1)
    values = latent.all_states().numpy()[:, 0]
    assert values.shape == (NORMAL_GRID_STATES,) and np.all(np.diff(values) > 0)
    np.testing.assert_allclose(values, -values[::-1], atol=1e-6)  # symmetric about 0
    np.testing.assert_allclose(values.mean(), 0.0, atol=1e-6)
    assert 0.85 < values.std() < 1.0  # equal-mass midpoints: a little narrower than N(0, 1)
    logits = torch.randn(5, NORMAL_GRID_STATES)
    np.testing.assert_allclose(
        latent.probabilities(logits).numpy()[:, 0], torch.softmax(logits, -1).numpy() @ values, rtol=1e-5
    )
    assert latent.log_weights(logits, latent.all_states()).shape == (5, NORMAL_GRID_STATES)
    assert (latent.n_outputs, latent.n_columns) == (NORMAL_GRID_STATES, 1)


@pytest.mark.parametrize(
    ("relaxation", "n_latent", "match"), [("marginal", 2, "n_latent must be 1"), ("gumbel", 1, "relaxation='marginal'")]
)
def test_bad_normal_latents_are_refused(relaxation, n_latent, match):
    with pytest.raises(ValueError, match=match):
        make_latent(relaxation, n_latent, "normal")


def test_model_refuses_more_than_one_normal_factor(adata):
    setup(adata)
    with pytest.raises(ValueError, match="latent_distribution='normal'.*n_latent must be 1"):
        zconf.ZConf(adata, n_latent=2, latent_distribution="normal")


def test_marginal_log_likelihood_sums_over_the_grid(continuous):
    model, adata = continuous
    # float32 sums over 60 genes of counts up to hundreds: within 0.01 nats of the double-precision sum
    np.testing.assert_allclose(model.get_marginal_log_likelihood(), brute_force_loglik(model, adata), atol=1e-2)


def test_zhat_is_the_posterior_mean_and_tracks_the_confounder(continuous):
    model, adata = continuous
    soft, hard = model.get_latent_representation(soft=True), model.get_latent_representation()
    assert soft.shape == (adata.n_obs, 1)
    np.testing.assert_allclose(hard, soft, rtol=1e-6)  # a continuous Z-hat is not thresholded
    assert abs(np.corrcoef(soft[:, 0], adata.obsm["z_true"][:, 0])[0, 1]) > 0.8
    overlap = model.state_overlap()
    assert len(overlap) == NORMAL_GRID_STATES and overlap.index[0].startswith("z=")
    annotated = model.annotate_adata(copy=True)
    assert "zconf_level" not in annotated.obs and annotated.obsm["X_zconf"].shape == (adata.n_obs, 1)


def test_effects_shift_zhat_along_its_signature(continuous):
    model, adata = continuous
    truth = adata.var["treatment_effect_true"].to_numpy()

    def rmse(table):
        return float(np.sqrt(np.nanmean((table["lfc"].to_numpy() - truth) ** 2)))

    shifted, plain = model.treatment_effects(), model.treatment_effects(shift_correction=False)
    naive = model.treatment_effects(adjust=False)
    assert isinstance(shifted.attrs["z_shift"], float) and plain.attrs["z_shift"] is None
    # the shift is the one a direct call finds, and the default applies it
    z_shifted, shift = shift_along_signature(model.regression_data(), model.get_latent_representation(soft=True))
    assert shift == pytest.approx(shifted.attrs["z_shift"])
    explicit = model.treatment_effects(z=z_shifted)
    np.testing.assert_allclose(shifted["lfc"], explicit["lfc"], rtol=1e-6, equal_nan=True)
    assert rmse(shifted) < rmse(naive)
    assert rmse(shifted) <= rmse(plain) * 1.05


def test_shift_correction_needs_one_continuous_column(fitted_confounded):
    model, _ = fitted_confounded
    assert model.treatment_effects().attrs["z_shift"] is None  # binary states are identified: no shift
    with pytest.raises(ValueError, match="shift_correction"):
        model.treatment_effects(shift_correction="yes")
    if model.module.latent.n_columns != 1:
        with pytest.raises(ValueError, match="one continuous Z-hat column"):
            model.treatment_effects(shift_correction=True)


def test_signature_shift_is_robust_to_sparse_effects():
    rng = np.random.default_rng(1)
    gamma = rng.normal(size=800)
    effect = np.where(rng.random(800) < 0.3, rng.normal(0, 2, 800), 0.0)
    se = rng.uniform(0.05, 0.5, 800)
    assert signature_shift(effect - 0.4 * gamma + 0.2, gamma, se) == pytest.approx(-0.4, abs=0.02)
    assert signature_shift(np.full(10, np.nan), np.ones(10)) == 0.0  # too few genes: no shift
    with pytest.raises(ValueError, match="one continuous column"):
        shift_along_signature(None, np.zeros((4, 2)))


def test_saved_normal_model_loads(continuous, tmp_path):
    model, adata = continuous
    model.save(tmp_path / "normal", overwrite=True)
    loaded = zconf.ZConf.load(tmp_path / "normal", adata=adata)
    assert (loaded.latent_distribution_, loaded.n_latent_) == ("normal", 1)
    np.testing.assert_allclose(loaded.get_latent_representation(soft=True), model.get_latent_representation(soft=True))


def test_normal_is_a_candidate_between_bernoulli_1_and_2():
    candidates = candidates_to_try(None, 2, 3)
    assert candidates == [("none", 0), ("bernoulli", 1), ("bernoulli", 2), ("normal", 1), ("categorical", 3)]
    assert candidates_to_try("normal", 4, 8) == [("none", 0), ("normal", 1)]
    ordered = sorted(candidates, key=complexity)
    assert ordered.index(("normal", 1)) == ordered.index(("bernoulli", 1)) + 1
    assert candidate_label(("normal", 1)) == "normal 1"
    base = np.linspace(-300, -299, 400)
    gained = {("none", 0): base, ("bernoulli", 1): base + 5.0, ("bernoulli", 2): base + 7.0}
    assert worth_fitting(gained, ("normal", 1))
    assert not worth_fitting({**gained, ("bernoulli", 2): base + 5.0}, ("normal", 1))  # 4 values added nothing
    assert not worth_fitting({("none", 0): base, ("bernoulli", 1): base}, ("normal", 1))  # 2 values added nothing
