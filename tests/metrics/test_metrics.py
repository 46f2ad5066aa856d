import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from zconf import metrics


def test_latent_recovery_matches_scipy_and_sklearn():
    rng = np.random.default_rng(0)
    z = rng.integers(0, 2, 300).astype(float)
    z_hat = np.clip(z * 0.6 + rng.normal(0, 0.3, 300), 0, 1)
    out = metrics.latent_recovery(z, z_hat)
    r, p = stats.pearsonr(z, z_hat)
    assert out["corr"] == pytest.approx(r)
    assert out["pvalue"] == pytest.approx(p)
    assert out["auroc"] == pytest.approx(roc_auc_score(z, z_hat))
    assert out["accuracy"] == pytest.approx(np.mean((z_hat > 0.5) == z))
    assert out["flipped"] == [False]


def test_label_switch_is_aligned_and_raw_kept():
    z = np.array([0, 0, 1, 1, 0, 1], dtype=float)
    out = metrics.latent_recovery(z, 1 - z)
    assert out["corr"] == pytest.approx(1.0)
    assert out["raw_corr"] == pytest.approx(-1.0)
    assert out["accuracy"] == 1.0 and out["raw_accuracy"] == 0.0
    assert out["auroc"] == 1.0 and out["raw_auroc"] == 0.0
    assert out["flipped"] == [True]


def test_columns_matched_by_hungarian():
    rng = np.random.default_rng(1)
    z = rng.integers(0, 2, (200, 3)).astype(float)
    z_hat = z[:, [2, 0, 1]].copy()
    z_hat[:, 1] = 1 - z_hat[:, 1]
    out = metrics.latent_recovery(z, z_hat)
    assert out["matching"] == [1, 2, 0]
    assert out["corr"] == pytest.approx(1.0)
    assert out["flipped"] == [True, False, False]


def test_nan_safe_and_length_checks():
    z = np.array([0, 1, 0, 1, 1, 0, np.nan])
    z_hat = np.array([0.1, 0.9, np.nan, 0.8, 0.7, 0.2, 0.5])
    assert np.isfinite(metrics.latent_recovery(z, z_hat)["corr"])
    with pytest.raises(ValueError, match="same number of cells"):
        metrics.latent_recovery(z, z_hat[:3])
    with pytest.raises(ValueError, match="same number of cells"):
        metrics.leakage(z_hat, z[:4])


def test_leakage_hand_computed():
    rng = np.random.default_rng(2)
    z = rng.integers(0, 2, 2000).astype(float)
    d = rng.integers(0, 2, 2000).astype(float)
    assert metrics.leakage(z, d, z)["pcorr_d_given_z"] != metrics.leakage(d, d, z)["pcorr_d_given_z"]
    assert metrics.leakage(d, d, z)["pcorr_d_given_z"] == pytest.approx(1.0)
    mixed = np.where(rng.random(2000) < 0.5, z, d)
    out = metrics.leakage(mixed, d, z)
    assert 0.3 < out["pcorr_d_given_z"] < 0.9
    assert out["corr_d"] == pytest.approx(abs(stats.pearsonr(mixed, d)[0]))


def test_per_gene_correlation_vectorised():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    b[:, 0] = 3.0  # constant column
    r = metrics.per_gene_correlation(a, b)
    assert np.isnan(r[0])
    for j in range(1, 6):
        assert r[j] == pytest.approx(stats.pearsonr(a[:, j], b[:, j])[0])
    with pytest.raises(ValueError, match="same shape"):
        metrics.per_gene_correlation(a, b[:, :3])


def test_treatment_auroc(trained):
    model, _ = trained
    out = metrics.treatment_auroc(model)
    assert 0.5 <= out["auroc_x"] <= 1.0
    assert out["improvement"] == pytest.approx(out["auroc_x_zhat"] - out["auroc_x"])


def test_covariate_r2():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, (300, 1)).astype(float)
    design = np.column_stack([x[:, 0] == 1, x[:, 0] == 2]).astype(float)
    z_function_of_x = (x[:, 0] == 2).astype(float)
    z_free = rng.integers(0, 2, 300).astype(float)
    r2 = metrics.covariate_r2(np.column_stack([z_function_of_x, z_free, np.ones(300)]), design)
    assert r2[0] == pytest.approx(1.0)
    assert r2[1] < 0.05
    assert np.isnan(r2[2])
