import numpy as np
import pytest

import zconf


def test_confounded_preset_fields(tmp_path):
    adata = zconf.data.simulate("confounded", n_obs=300, n_vars=40, random_state=3)
    assert adata.shape == (300, 40)
    assert [c for c in adata.obs if c.startswith("x")] == ["x0", "x1", "x2", "x3"]
    assert set(np.unique(adata.obs["treatment"])) == {0, 1}
    assert adata.obsm["z_true"].shape == (300, 1)
    assert adata.layers["log_mean_true"].shape == (300, 40)
    np.testing.assert_array_equal(adata.X, adata.layers["counts"])
    assert np.all(adata.X == np.rint(adata.X)) and adata.X.min() >= 0
    assert (adata.var["dispersion_true"] >= 0.5).all()
    effect = adata.var["treatment_effect_true"].to_numpy()
    assert (effect != 0).sum() == round(0.2 * 40)
    sim = adata.uns["simulation"]
    assert np.isclose(np.std(adata.obs[["x0", "x1", "x2", "x3"]].to_numpy() @ sim["beta1"]), 0.8)
    assert sim["gamma1"][0] > 0
    adata.write_h5ad(tmp_path / "sim.h5ad")


def test_seed_preset_is_the_notebook():
    adata = zconf.data.simulate("seed")
    sim = adata.uns["simulation"]
    assert adata.shape == (1000, 100)
    assert np.all(sim["beta1"] == 0) and np.all(sim["gamma1"] == 0)
    assert np.all(sim["beta2"] == 0)
    np.testing.assert_allclose(adata.obs["treatment_logit_true"], 0.0)


def test_reproducible_and_seed_dependent():
    a = zconf.data.simulate(n_obs=50, n_vars=10, random_state=1)
    b = zconf.data.simulate(n_obs=50, n_vars=10, random_state=1)
    c = zconf.data.simulate(n_obs=50, n_vars=10, random_state=2)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


def test_overrides_absolute_gamma1_and_k2():
    adata = zconf.data.simulate("seed", n_obs=100, n_vars=10, gamma1=1.5, n_latent=2, p_x=[0.2, 0.4, 0.6, 0.8])
    assert adata.obsm["z_true"].shape == (100, 2)
    np.testing.assert_allclose(adata.uns["simulation"]["gamma1"], [1.5, 1.5])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"preset": "nope"}, "Unknown preset"),
        ({"gamma_2": 1.0}, "Unknown simulation parameter"),
        ({"p_z": 1.5}, "p_z"),
        ({"n_obs": 0}, "n_obs"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        zconf.data.simulate(**kwargs)


def test_bayes_posterior_recovers_strong_confounder():
    adata = zconf.data.simulate("seed", n_obs=300, n_vars=60, random_state=0)
    posterior = zconf.data.bayes_posterior(adata)
    assert posterior.shape == (300, 1)
    assert zconf.metrics.latent_recovery(adata.obsm["z_true"], posterior)["corr"] > 0.98


def test_bayes_posterior_given_the_library_uses_the_softmax_of_the_true_log_means():
    from scipy import stats

    adata = zconf.data.simulate("weak", n_obs=200, n_vars=30, random_state=1)
    sim, d = adata.uns["simulation"], adata.obs["treatment"].to_numpy(float)
    x = adata.obs[[f"x{j}" for j in range(int(sim["params"]["n_covariates"]))]].to_numpy(float)
    y, theta = np.asarray(adata.layers["counts"], float), 1.0 / adata.var["dispersion_true"].to_numpy(float)
    p_z, joint = float(sim["params"]["p_z"]), []
    for z in (0.0, 1.0):  # an independent computation with scipy's NB, one binary factor
        eta = float(sim["params"].get("intercept", 0.0)) + np.column_stack([x, d]) @ sim["beta2"] + z * sim["gamma2"][0]
        mean = y.sum(1, keepdims=True) * np.exp(eta) / np.exp(eta).sum(1, keepdims=True)
        logit = x @ sim["beta1"] + z * sim["gamma1"][0]
        log_d = np.where(d == 1, -np.logaddexp(0, -logit), -np.logaddexp(0, logit))
        log_y = stats.nbinom.logpmf(y, theta, theta / (theta + mean)).sum(1)
        joint.append(np.log(p_z if z else 1 - p_z) + log_d + log_y)
    expected = 1.0 / (1.0 + np.exp(joint[0] - joint[1]))
    given_library = zconf.data.bayes_posterior(adata, library_offset=True)[:, 0]
    np.testing.assert_allclose(given_library, expected, atol=1e-8)
    assert not np.allclose(given_library, zconf.data.bayes_posterior(adata)[:, 0], atol=1e-3)
