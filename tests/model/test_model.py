import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scvi

import zconf
from tests.conftest import COVARIATES, FAST_TRAIN, setup


def test_shapes_and_predictions(trained):
    model, adata = trained
    z = model.get_latent_representation()
    probs = model.get_latent_representation(soft=True)
    assert z.shape == probs.shape == (adata.n_obs, 1)
    assert set(np.unique(z)) <= {0.0, 1.0}
    np.testing.assert_array_equal(z, (probs > 0.5).astype(z.dtype))
    pred = model.get_predictions()
    assert pred["d_logit"].shape == pred["d_prob"].shape == (adata.n_obs,)
    assert pred["log_mean"].shape == pred["mean"].shape == (adata.n_obs, adata.n_vars)
    assert pred["dispersion"].shape == (adata.n_vars,)
    np.testing.assert_allclose(pred["mean"], np.exp(pred["log_mean"]), rtol=1e-6)
    assert model.get_predicted_mean().shape == (adata.n_obs, adata.n_vars)


def test_rows_follow_input_order(trained):
    model, adata = trained
    full = model.get_predictions()
    idx = np.array([5, 0, 17, 3])
    sub = model.get_predictions(indices=idx, batch_size=3)
    np.testing.assert_allclose(sub["log_mean"], full["log_mean"][idx], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sub["z_prob"], full["z_prob"][idx], rtol=1e-5)
    reversed_adata = adata[::-1].copy()
    rev = model.get_predictions(reversed_adata, batch_size=7)
    np.testing.assert_allclose(rev["z_prob"], full["z_prob"][::-1], rtol=1e-5)


def test_annotate_adata_writes_exactly_documented_keys(trained, tmp_path):
    model, adata = trained
    before = adata.copy()
    out = model.annotate_adata(copy=True)
    assert set(out.obsm) - set(before.obsm) == {"X_zconf"}
    assert set(out.obs.columns) - set(before.obs.columns) == {"zconf_z0", "zconf_d_prob"}
    assert set(out.layers) - set(before.layers) == {"zconf_mean"}
    assert set(out.uns) - set(before.uns) == {"zconf"}
    assert out.uns["zconf"]["params"]["n_latent"] == 1
    assert "version" in out.uns["zconf"]["params"]
    assert "X_zconf" not in adata.obsm  # copy=True left the original alone
    out.write_h5ad(tmp_path / "annotated.h5ad")
    back = zconf.__dict__["data"]  # noqa: F841 - ensure package import ok
    import anndata as ad

    reread = ad.read_h5ad(tmp_path / "annotated.h5ad")
    np.testing.assert_array_equal(reread.obsm["X_zconf"], out.obsm["X_zconf"])
    custom = model.annotate_adata(key_added="conf", copy=True)
    assert "X_conf" in custom.obsm and "conf_z0" in custom.obs


def test_user_adata_unchanged_except_registry_and_outputs(adata):
    original = adata.copy()
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    model.train(**FAST_TRAIN)
    model.annotate_adata()
    registry_obs = {"_scvi_treatment"}
    registry_obsm = {"_scvi_extra_continuous_covs"}
    registry_uns = {"_scvi_uuid", "_scvi_manager_uuid"}
    assert set(adata.obs.columns) == set(original.obs.columns) | registry_obs | {"zconf_z0", "zconf_d_prob"}
    assert set(adata.obsm) == set(original.obsm) | registry_obsm | {"X_zconf"}
    assert set(adata.layers) == set(original.layers) | {"zconf_mean"}
    assert set(adata.uns) == set(original.uns) | registry_uns | {"zconf"}
    pd.testing.assert_frame_equal(adata.obs[original.obs.columns], original.obs)
    pd.testing.assert_frame_equal(adata.var, original.var)
    np.testing.assert_array_equal(adata.X, original.X)
    for key in original.layers:
        np.testing.assert_array_equal(adata.layers[key], original.layers[key])
    np.testing.assert_array_equal(adata.obsm["z_true"], original.obsm["z_true"])


def test_save_load_reproduces_outputs(trained, tmp_path):
    model, adata = trained
    model.save(tmp_path / "model", overwrite=True)
    loaded = zconf.ZConf.load(tmp_path / "model", adata=adata)
    a, b = model.get_predictions(), loaded.get_predictions()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert loaded.is_trained_


def test_reproducible_with_seed(adata):
    results = []
    for _ in range(2):
        scvi.settings.seed = 7
        data = setup(adata.copy())
        model = zconf.ZConf(data, n_hidden=8, n_latent=1)
        model.train(**FAST_TRAIN)
        results.append(model.get_latent_representation(soft=True))
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("fmt", ["int", "csr", "csc"])
def test_sparse_and_integer_inputs_match_dense(adata, fmt):
    convert = {"int": lambda m: m.astype(np.int64), "csr": sp.csr_matrix, "csc": sp.csc_matrix}[fmt]
    dense = setup(adata.copy())
    other = adata.copy()
    other.layers["counts"] = convert(other.layers["counts"])
    setup(other)
    scvi.settings.seed = 0
    m1 = zconf.ZConf(dense, n_hidden=8, n_latent=1)
    m1.train(**FAST_TRAIN)
    scvi.settings.seed = 0
    m2 = zconf.ZConf(other, n_hidden=8, n_latent=1)
    m2.train(**FAST_TRAIN)
    np.testing.assert_allclose(
        m1.get_latent_representation(soft=True), m2.get_latent_representation(soft=True), rtol=1e-5
    )


def test_categorical_treatment_with_control_level(adata):
    adata.obs["stim"] = pd.Categorical(np.where(adata.obs["treatment"] == 1, "ctrl", "stim"))
    setup(adata, treatment_key="stim", control_level="stim", categorical_covariate_keys=None)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    _, d = model.get_design()
    np.testing.assert_array_equal(d, (adata.obs["stim"] == "ctrl").to_numpy().astype(float))


def test_categorical_covariates_and_size_factor(adata):
    adata.obs["batch"] = pd.Categorical(np.repeat(["a", "b", "c", "d"], adata.n_obs // 4))
    adata.obs["size"] = np.asarray(adata.layers["counts"].sum(1)).ravel() / 100 + 0.1
    setup(adata, categorical_covariate_keys=["batch"], size_factor_key="size")
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    covariates, _ = model.get_design()
    assert covariates.shape == (adata.n_obs, len(COVARIATES) + 3)  # one-hot, first level dropped
    model.train(**FAST_TRAIN)
    assert np.isfinite(model.get_predicted_mean()).all()


def test_fixed_dispersion_and_no_intercept(adata):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1, intercept=False, dispersion_key="dispersion_true")
    assert not model.module.nb_head.learns_dispersion
    assert model.module.nb_head.linear.bias is None
    model.train(**FAST_TRAIN)
    np.testing.assert_allclose(model.get_predictions()["dispersion"], adata.var["dispersion_true"], rtol=1e-5)


def test_straight_through_relaxation_trains(adata):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1, relaxation="straight_through", y_transform="counts")
    model.train(**FAST_TRAIN)
    assert model.get_latent_representation().shape == (adata.n_obs, 1)


def test_untrained_model_query_errors(adata):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    with pytest.raises(RuntimeError, match="not trained"):
        model.get_latent_representation()


def test_recovery_and_no_leakage(fitted_seed_preset):
    """Small, fast accuracy check: the default fit recovers Z and Z-hat does not copy D."""
    model, adata = fitted_seed_preset
    z_true = adata.obsm["z_true"]
    d = adata.obs["treatment"].to_numpy()
    for soft in (False, True):
        z_hat = model.get_latent_representation(soft=soft)
        assert zconf.metrics.latent_recovery(z_true, z_hat)["corr"] >= 0.97
    leak = zconf.metrics.leakage(model.get_latent_representation(), d, z_true)["pcorr_d_given_z"]
    # noise level of the partial correlation is ~1/sqrt(n) = 0.04 here; the Bayes posterior reaches ~0.04 too
    assert leak <= 0.12
    # the same check fails for a Z-hat that copies D
    copied = zconf.metrics.leakage(d.astype(float), d, z_true)["pcorr_d_given_z"]
    assert copied > 0.9
    assert zconf.metrics.latent_recovery(z_true, d)["corr"] < 0.5


def test_n_init_keeps_best_fit_and_its_history(adata):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    model.train(**{**FAST_TRAIN, "max_epochs": 4, "n_init": 2})
    # the kept run's history only: its 2 screening epochs, then the 2 it was trained on for
    assert len(model.history["elbo_train"]) == 4
    assert model.is_trained_
    with pytest.raises(ValueError, match="n_init"):
        model.train(**{**FAST_TRAIN, "n_init": 0})


def test_collapsed_fit_is_restarted(adata, monkeypatch):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    calls = []
    monkeypatch.setattr(zconf.model._training, "is_collapsed", lambda z_prob, latent=None: calls.append(1) or True)
    model.train(max_restarts=2, **FAST_TRAIN)
    assert len(calls) == 3  # the first fit and both restarts were checked
    assert len(model.history["elbo_train"]) == FAST_TRAIN["max_epochs"]


def test_observed_library_is_the_default_offset(adata):
    """Each cell's log total count is an offset of the NB head and of the effects' GLMs, unless turned off."""
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    data = model.regression_data()
    log_library = np.log(np.asarray(adata.layers["counts"].sum(1)).ravel().clip(1))
    assert model.module.use_observed_lib_size and data.offset_is_library
    np.testing.assert_allclose(data.offset, log_library)
    model.train(**FAST_TRAIN)
    batch = next(iter(model._make_data_loader(adata=adata, indices=np.arange(40), shuffle=False)))
    module = model.module
    module.compositional_latent = False  # the plain offset here; the renormalised one: tests/module/test_losses.py
    inference = module.inference(**module._get_inference_input(batch))
    generative_inputs = module._get_generative_input(batch, inference)
    with_offset = module.generative(**generative_inputs, states=False)["log_mean"][:, 0]
    without = module.generative(**{**generative_inputs, "log_library": None}, states=False)["log_mean"][:, 0]
    shift = (with_offset - without).detach().numpy()
    np.testing.assert_allclose(shift, np.broadcast_to(log_library[:40, None], shift.shape), rtol=1e-5)

    notebook = zconf.ZConf(adata, n_hidden=8, **{**zconf.presets.NOTEBOOK["model"], "dispersion_key": None})
    assert not notebook.module.use_observed_lib_size and notebook.regression_data().offset is None


def test_size_factor_takes_precedence_over_the_observed_library(adata):
    adata.obs["size"] = np.linspace(0.5, 2.0, adata.n_obs)
    setup(adata, size_factor_key="size")
    data = zconf.ZConf(adata, n_hidden=8, n_latent=1).regression_data()
    np.testing.assert_allclose(data.offset, np.log(adata.obs["size"]))
    assert not data.offset_is_library
