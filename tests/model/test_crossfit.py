"""Cross-fitted Z-hat: fold split, label alignment, and the method end to end."""

import numpy as np
import pytest

import zconf
from tests.conftest import COVARIATES, FAST_TRAIN, setup
from zconf.analysis import apply_alignment, column_alignment, stratified_folds


def test_stratified_folds_balance_each_arm():
    treatment = np.r_[np.zeros(31, dtype=int), np.ones(9, dtype=int)]
    folds = stratified_folds(treatment, 3, random_state=0)
    for fold in range(3):
        in_fold = folds == fold
        assert treatment[in_fold].sum() == 3  # 9 treated cells: 3 per fold
        assert (treatment[in_fold] == 0).sum() in (10, 11)
    assert not np.array_equal(folds, stratified_folds(treatment, 3, random_state=1))


def test_column_alignment_undoes_permutation_and_flip():
    rng = np.random.default_rng(0)
    reference = rng.random((500, 3))
    noisy = np.clip(reference + rng.normal(0, 0.05, reference.shape), 0, 1)
    shuffled = noisy[:, [2, 0, 1]].copy()
    shuffled[:, 1] = 1 - shuffled[:, 1]  # column 1 of `shuffled` is reference column 0, flipped
    order, flip = column_alignment(reference, shuffled)
    np.testing.assert_array_equal(order, [1, 2, 0])
    np.testing.assert_array_equal(flip, [True, False, False])
    np.testing.assert_allclose(apply_alignment(shuffled, order, flip), noisy)


def test_cross_fitted_latent_recovers_z_and_leaves_inputs_alone(fitted_confounded):
    model, adata = fitted_confounded
    keys = {name: set(getattr(adata, name)) for name in ("obs", "obsm", "uns", "layers", "var")}
    counts = adata.layers["counts"].copy()
    z_before = model.get_latent_representation(soft=True)
    crossed = model.get_cross_fitted_latent(n_folds=2)
    assert crossed.shape == (adata.n_obs, 1)
    assert ((crossed >= 0) & (crossed <= 1)).all()
    z_true = adata.obsm["z_true"][:, 0]
    # the fold models are aligned to this model: same labels, not merely the same split up to a flip
    # (measured: 0.94 with this model's Z-hat, 0.90 with the true Z; this model's own is 0.96)
    assert np.corrcoef(crossed[:, 0], z_before[:, 0])[0, 1] > 0.85
    assert abs(np.corrcoef(crossed[:, 0], z_true)[0, 1]) > 0.8  # fold models see half the cells
    np.testing.assert_allclose(model.get_latent_representation(soft=True), z_before)
    assert {name: set(getattr(adata, name)) for name in keys} == keys
    np.testing.assert_array_equal(adata.layers["counts"], counts)
    table = model.treatment_effects(z=crossed)
    assert table["lfc"].notna().sum() > 50


def test_cross_fit_reuses_the_train_call(trained, monkeypatch):
    model, _ = trained
    seen = []
    original = zconf.ZConf.train

    def recording_train(self, *args, **kwargs):
        seen.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(zconf.ZConf, "train", recording_train)
    model.get_cross_fitted_latent(n_folds=2)
    assert len(seen) == 2
    assert seen[0]["max_epochs"] == FAST_TRAIN["max_epochs"]
    assert seen[0]["batch_size"] == FAST_TRAIN["batch_size"]
    hard = model.get_cross_fitted_latent(
        n_folds=2, soft=False, train_kwargs={"max_epochs": 1, "enable_progress_bar": False}
    )
    assert seen[-1] == {"max_epochs": 1, "enable_progress_bar": False}
    assert set(np.unique(hard)) <= {0.0, 1.0}


def test_cross_fit_leaves_no_registrations_behind(trained):
    model, _ = trained
    cls = type(model)
    before = (len(cls._setup_adata_manager_store), len(cls._per_instance_manager_store))
    model.get_cross_fitted_latent(n_folds=2, train_kwargs={"max_epochs": 1, "enable_progress_bar": False})
    assert (len(cls._setup_adata_manager_store), len(cls._per_instance_manager_store)) == before
    assert model.get_latent_representation().shape[0] == model.adata.n_obs  # its own registration intact


def test_cross_fit_errors(trained, adata):
    model, _ = trained
    with pytest.raises(ValueError, match="n_folds"):
        model.get_cross_fitted_latent(n_folds=1)
    with pytest.raises(ValueError, match="smaller arm"):
        model.get_cross_fitted_latent(n_folds=10_000)
    untrained = zconf.ZConf(setup(adata), n_hidden=8, n_latent=1)
    with pytest.raises(RuntimeError, match="train"):
        untrained.get_cross_fitted_latent()


def test_cross_fit_keeps_categorical_coding(adata):
    adata.obs["site"] = np.where(
        np.arange(adata.n_obs) % 3 == 0, "a", np.where(np.arange(adata.n_obs) % 3 == 1, "b", "c")
    )
    setup(adata, categorical_covariate_keys=["site"], continuous_covariate_keys=COVARIATES)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    model.train(**FAST_TRAIN)
    assert model.get_cross_fitted_latent(n_folds=3).shape == (adata.n_obs, 1)


def test_cross_fit_after_load_and_with_two_latents(adata, tmp_path):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=2)
    model.train(**FAST_TRAIN)
    model.save(str(tmp_path / "model"))
    loaded = zconf.ZConf.load(str(tmp_path / "model"), adata=adata)
    assert loaded.train_call_["max_epochs"] == FAST_TRAIN["max_epochs"]  # saved with the model
    crossed = loaded.get_cross_fitted_latent(n_folds=2)
    assert crossed.shape == (adata.n_obs, 2)
    assert np.isfinite(loaded.treatment_effects(z=crossed)["lfc"]).sum() > 40
