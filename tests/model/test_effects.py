import numpy as np
import pandas as pd
import pytest
import scvi
from hypothesis import given, settings
from hypothesis import strategies as st

import zconf
from tests.conftest import COVARIATES, FAST_TRAIN, setup
from zconf.analysis import benjamini_hochberg


def test_effects_table_columns_and_flags(trained):
    model, adata = trained
    table = model.treatment_effects()
    expected = {
        "lfc",
        "log2fc",
        "se",
        "stat",
        "pvalue",
        "padj",
        "ci_low",
        "ci_high",
        "mean_control",
        "mean_treated",
        "dispersion",
        "converged",
        "too_sparse",
    }
    assert expected <= set(table.columns)
    assert list(table.index) == list(adata.var_names)
    ok = ~table["too_sparse"]
    np.testing.assert_allclose(table.loc[ok, "log2fc"], table.loc[ok, "lfc"] / np.log(2))
    assert (table.loc[ok, "ci_low"] < table.loc[ok, "lfc"]).all()
    assert table.loc[ok, "pvalue"].between(0, 1).all()
    naive = model.treatment_effects(adjust=False)
    assert not np.allclose(naive["lfc"], table["lfc"], equal_nan=True)
    robust = model.treatment_effects(robust=True)
    np.testing.assert_allclose(robust["lfc"], table["lfc"])


def test_sparse_genes_flagged(adata):
    from tests.conftest import FAST_TRAIN, setup

    counts = adata.layers["counts"].copy()
    counts[:, 0] = 0
    counts[:2, 0] = 1
    adata.layers["counts"] = counts
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    model.train(**FAST_TRAIN)
    table = model.treatment_effects(min_cells=3)
    assert table["too_sparse"].iloc[0]
    assert np.isnan(table["pvalue"].iloc[0])


def test_bad_arguments(trained):
    model, _ = trained
    with pytest.raises(ValueError, match="`z`"):
        model.treatment_effects(z="both")
    with pytest.raises(ValueError, match="alpha"):
        model.treatment_effects(alpha=1.5)
    with pytest.raises(ValueError, match="dispersion"):
        model.treatment_effects(dispersion="shrunk")


def test_adjusted_effects_close_the_confounding_gap(fitted_confounded):
    model, adata = fitted_confounded
    truth = adata.var["treatment_effect_true"].to_numpy()
    rmse = {adj: np.sqrt(np.nanmean((model.treatment_effects(adjust=adj)["lfc"] - truth) ** 2)) for adj in (1, 0)}
    assert rmse[1] < 0.75 * rmse[0]


def test_external_z_matches_oracle_design(fitted_confounded):
    """An array for `z` is the same GLM with those columns: the true Z gives the oracle fit.

    The GLM has each cell's log total count as offset, and its D coefficients are reported relative to the
    median gene's.
    """
    model, adata = fitted_confounded
    oracle = model.treatment_effects(z=adata.obsm["z_true"])
    design = np.column_stack(
        [np.ones(adata.n_obs), adata.obs[COVARIATES].to_numpy(), adata.obs["treatment"], adata.obsm["z_true"]]
    )
    log_library = np.log(adata.layers["counts"].sum(1).clip(1))
    direct = zconf.glm.fit_nb_glm(adata.layers["counts"], design, offset=log_library)
    d_coef = direct.coef[:, len(COVARIATES) + 1]
    np.testing.assert_allclose(oracle["lfc"], d_coef - np.median(d_coef), rtol=1e-6, atol=1e-8)
    assert abs(np.median(oracle["lfc"])) < 1e-12
    # a 1-D array works too and equals the 2-D one
    flat = model.treatment_effects(z=adata.obsm["z_true"][:, 0])
    np.testing.assert_allclose(flat["lfc"], oracle["lfc"])


def test_external_z_bad_values(trained):
    model, adata = trained
    with pytest.raises(ValueError, match="shape"):
        model.treatment_effects(z=np.zeros(adata.n_obs + 1))
    with pytest.raises(TypeError, match="one-hot"):
        model.treatment_effects(z=np.array(["a"] * adata.n_obs))
    bad = np.zeros(adata.n_obs)
    bad[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.treatment_effects(z=bad)


def test_sensitivity_partial_r2_in_unit_interval(fitted_confounded):
    model, _ = fitted_confounded
    values = model.sensitivity()
    assert 0 <= values["treatment"] <= 1
    genes = values["genes"].dropna()
    assert ((genes >= 0) & (genes <= 1)).all()
    assert values["genes_mean"] > 0.05  # Z acts on every gene in this simulation


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=50))
def test_bh_monotone_and_bounded(pvalues):
    p = np.array(pvalues)
    adj = benjamini_hochberg(p)
    assert np.all(adj >= p - 1e-12)
    assert np.all(adj <= 1)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= -1e-12)


def test_sparse_counts_give_the_same_effects_and_sensitivity(adata):
    """A CSR count layer (the usual real-data case) works end to end and matches the dense fit."""
    from scipy import sparse

    dense = setup(adata.copy())
    csr = adata.copy()
    csr.layers["counts"] = sparse.csr_matrix(csr.layers["counts"])
    setup(csr)
    scvi.settings.seed = 0
    model = zconf.ZConf(csr, n_hidden=16, n_latent=1)
    model.train(**FAST_TRAIN)
    sparse_table = model.treatment_effects()
    dense_table = model.treatment_effects(dense)
    pd.testing.assert_frame_equal(sparse_table, dense_table, rtol=1e-6)
    np.testing.assert_allclose(model.sensitivity()["genes"], model.sensitivity(dense)["genes"], rtol=1e-6)


def test_gene_silent_in_control_is_tested_by_lrt(adata):
    """All zeros in control, expressed when treated: flagged `separated`, lfc +inf, a small LRT p-value."""
    counts = adata.layers["counts"].copy()
    treated = adata.obs["treatment"].to_numpy() == 1
    rng = np.random.default_rng(0)
    counts[:, 0] = np.where(treated, rng.poisson(3.0, adata.n_obs), 0)
    counts[:, 1] = np.where(treated, rng.poisson(3.0, adata.n_obs), 0)
    counts[np.flatnonzero(~treated)[:2], 1] = 1  # nearly silent in control: an ordinary, testable gene
    adata.layers["counts"] = counts
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    model.train(**FAST_TRAIN)
    table = model.treatment_effects()
    assert table["separated"].iloc[0]
    assert not table["too_sparse"].iloc[0]
    assert table["lfc"].iloc[0] == np.inf
    assert np.isnan(table["se"].iloc[0])
    assert table["pvalue"].iloc[0] < 1e-10
    assert table["padj"].iloc[0] < 1e-8
    assert not table["separated"].iloc[1]
    assert np.isfinite(table["lfc"].iloc[1]) and table["lfc"].iloc[1] > 1
    assert not table["separated"].iloc[2:].any()


def _composition_shift_data(seed: int = 0):
    """Counts whose treatment raises 10 of 100 genes 7-fold, with cells of varying depth and no confounder."""
    rng = np.random.default_rng(seed)
    n_obs, n_vars = 2000, 100
    d = rng.integers(0, 2, n_obs).astype(float)
    depth = np.exp(rng.normal(0.0, 0.5, n_obs))
    base = np.exp(rng.normal(1.0, 0.5, n_vars))
    lfc = np.zeros(n_vars)
    lfc[:10] = 2.0
    mu = depth[:, None] * base * np.exp(np.outer(d, lfc))
    counts = rng.negative_binomial(5, 5 / (5 + mu)).astype(float)
    log_library = np.log(counts.sum(1).clip(1))
    return counts, d, log_library, lfc


def test_library_offset_effects_are_centred_on_the_median_gene():
    """With the observed library as offset, genes that take a larger share of it do not push all others down."""
    from zconf.analysis import treatment_effects
    from zconf.glm import RegressionData

    counts, d, log_library, lfc = _composition_shift_data()
    covariates = np.zeros((len(d), 0))
    raw = treatment_effects(RegressionData(counts, covariates, d, log_library))
    centred = treatment_effects(RegressionData(counts, covariates, d, log_library, offset_is_library=True))
    null = lfc == 0
    # the library of treated cells is ~1.6x larger: relative to it, unchanged genes fall by ~0.45
    assert np.median(raw["lfc"][null]) < -0.3
    assert abs(np.median(centred["lfc"][null])) < 0.05
    np.testing.assert_allclose(centred["lfc"][~null], 2.0, atol=0.15)
    assert (centred["padj"][null] < 0.05).mean() < 0.1 < (raw["padj"][null] < 0.05).mean()
    np.testing.assert_allclose(centred["se"], raw["se"])


def test_centred_separated_genes_are_tested_against_the_shifted_null():
    from zconf.analysis import treatment_effects
    from zconf.glm import RegressionData

    counts, d, log_library, _ = _composition_shift_data(seed=1)
    counts[d == 0, 50] = 0  # gene 50 silent in control: separated
    table = treatment_effects(RegressionData(counts, np.zeros((len(d), 0)), d, log_library, offset_is_library=True))
    assert table["separated"].iloc[50] and table["lfc"].iloc[50] == np.inf
    assert 0 <= table["pvalue"].iloc[50] < 1e-6
