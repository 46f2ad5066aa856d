import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import sparse, stats

from zconf.analysis._pseudobulk import COLUMNS, composition_factors, pseudobulk_effects
from zconf.glm import RegressionData, design_matrix, fit_nb_glm


def _simulate(n_samples=8, cells=60, n_genes=150, sample_sd=0.3, effect=None, z_effect=0.0, seed=0):
    """Cells nested in samples; each sample has its own log-normal deviation per gene (the replicate noise)."""
    rng = np.random.default_rng(seed)
    samples = np.repeat(np.arange(n_samples), cells)
    d = (samples >= n_samples // 2).astype(float)
    z = rng.binomial(1, 0.2 + 0.4 * d)[:, None].astype(float)  # a state more common in the treated samples
    base = rng.normal(0.5, 1.0, n_genes)
    deviation = rng.normal(0, sample_sd, (n_samples, n_genes))
    lfc = np.zeros(n_genes) if effect is None else effect
    size = np.exp(rng.normal(0, 0.3, len(samples)))
    log_mu = base + deviation[samples] + d[:, None] * lfc + z * z_effect
    counts = rng.poisson(size[:, None] * np.exp(log_mu))
    return counts, samples, d, z


def _data(counts, d, covariates=None):
    covariates = np.zeros((len(d), 0)) if covariates is None else covariates
    return RegressionData(counts=counts, covariates=covariates, treatment=d)


def test_sample_in_both_arms_raises_naming_it():
    counts, samples, d, _ = _simulate(n_genes=5)
    d = d.copy()
    d[np.flatnonzero(samples == 2)[0]] = 1.0
    with pytest.raises(ValueError, match=r"samples \[np.int64\(2\)\]|samples \[2\]"):
        pseudobulk_effects(_data(counts, d), samples)


def test_output_columns_index_and_df_from_samples():
    counts, samples, d, z = _simulate(n_genes=30)
    names = [f"g{i}" for i in range(30)]
    table = pseudobulk_effects(_data(sparse.csr_matrix(counts), d), samples, gene_names=names)
    assert list(table.columns) == list(COLUMNS)
    assert table.index.name == "gene" and list(table.index) == names
    assert (table["n_samples_control"] == 4).all() and (table["n_samples_treated"] == 4).all()
    assert (table["df_residual"] == 8 - 2).all()  # samples minus [1, D], not 480 cells
    assert (table["df"] >= table["df_residual"]).all()
    np.testing.assert_allclose(table["log2fc"], table["lfc"] / np.log(2))
    adjusted = pseudobulk_effects(_data(counts, d), samples, z)
    assert (adjusted["df_residual"] == 8 - 3).all()  # one composition column for the binary Z-hat
    np.testing.assert_allclose(
        table["mean_treated"], counts[d == 1].mean(0), err_msg="mean count per treated cell, as the per-cell table"
    )


def test_null_pvalues_uniform_where_per_cell_wald_is_not():
    pvalues, per_cell = [], []
    for seed in range(3):
        counts, samples, d, _ = _simulate(n_genes=200, seed=seed)
        pvalues.append(pseudobulk_effects(_data(counts, d), samples)["pvalue"].dropna().to_numpy())
        fit = fit_nb_glm(counts, design_matrix(np.zeros((len(d), 0)), d).matrix)
        per_cell.append(2 * stats.norm.sf(np.abs(fit.coef[:, 1] / fit.se[:, 1])))
    pooled = np.concatenate(pvalues)
    assert stats.kstest(pooled, "uniform").pvalue > 0.001
    assert 0.02 < np.mean(pooled < 0.05) < 0.09
    assert np.mean(np.concatenate(per_cell) < 0.05) > 0.3  # cells as replicates: the failure being fixed


def test_power_and_direction_of_true_effects():
    effect = np.zeros(200)
    effect[:10], effect[10:20] = np.log(3.0), -np.log(3.0)  # 10% of genes changed, both ways
    counts, samples, d, _ = _simulate(n_genes=200, effect=effect, sample_sd=0.15, seed=4)
    table = pseudobulk_effects(_data(counts, d), samples)
    called = table["padj"].to_numpy() < 0.1
    assert called[:20].mean() > 0.7
    assert called[20:].sum() / max(called.sum(), 1) <= 0.2
    assert (np.sign(table["lfc"].to_numpy()[:20][called[:20]]) == np.sign(effect[:20][called[:20]])).all()


def test_agrees_with_direct_fit_on_hand_built_pseudobulk():
    counts, samples, d, z = _simulate(n_genes=20, z_effect=0.8, seed=1)
    table = pseudobulk_effects(_data(counts, d), samples, z)
    y = np.stack([counts[samples == s].sum(0) for s in range(8)]).astype(float)
    share_library = y.sum(1)
    library = share_library * composition_factors(y, share_library)
    d_sample = np.array([d[samples == s][0] for s in range(8)])
    share = np.array([(z[samples == s, 0] * counts[samples == s].sum(1)).sum() for s in range(8)]) / share_library
    design = design_matrix(np.zeros((8, 0)), d_sample, share)
    alpha = table["dispersion"].to_numpy()
    direct = fit_nb_glm(y, design.matrix, offset=np.log(library), dispersion=alpha, tol=1e-10)
    np.testing.assert_allclose(table["lfc"], direct.coef[:, design.treatment_index], atol=1e-5)
    for g in range(3):  # the same model in statsmodels, and the F-test from its deviances
        family = sm.families.NegativeBinomial(alpha=alpha[g])
        full = sm.GLM(y[:, g], design.matrix, family=family, offset=np.log(library)).fit(tol=1e-12)
        reduced = sm.GLM(y[:, g], design.without("treatment").matrix, family=family, offset=np.log(library))
        reduced = reduced.fit(tol=1e-12)
        assert abs(full.params[design.treatment_index] - table["lfc"].iloc[g]) < 1e-4
        f_stat = (reduced.deviance - full.deviance) / table["ql_dispersion"].iloc[g]
        assert stats.f.sf(f_stat, 1, table["df"].iloc[g]) == pytest.approx(table["pvalue"].iloc[g], rel=1e-4)


def test_groups_give_one_table_per_level_and_skip_thin_levels():
    counts, samples, d, _ = _simulate(n_genes=20, cells=80)
    groups = np.where(np.arange(len(d)) % 2 == 0, "T", "B")
    groups[(groups == "B") & (samples >= 1)] = "T"  # level B: only sample 0 -> too few samples per arm
    cell_type = (groups == "T").astype(float)[:, None]
    with pytest.warns(UserWarning, match="B"):
        table = pseudobulk_effects(_data(counts, d, cell_type), samples, groups=groups)
    assert table.index.names == ["group", "gene"]
    assert list(table.index.get_level_values("group").unique()) == ["T"]
    assert len(table) == 20


def test_covariate_varying_within_sample_is_refused_or_averaged():
    counts, samples, d, z = _simulate(n_genes=10)
    with pytest.raises(ValueError, match=r"vary between the cells of one sample.*groups="):
        pseudobulk_effects(_data(counts, d, z), samples)
    table = pseudobulk_effects(_data(counts, d, z), samples, cell_covariates="mean")
    assert (table["df_residual"] == 5).all()


def test_sample_level_covariate_and_separation():
    counts, samples, d, _ = _simulate(n_genes=10)
    counts[d == 1, 0] = 0  # gene 0 silent in the treated arm
    counts[d == 0, 0] += 5
    batch = (samples % 2).astype(float)[:, None]  # constant within each sample
    table = pseudobulk_effects(_data(counts, d, batch), samples)
    assert (table["df_residual"] == 8 - 3).all()
    assert table["separated"].iloc[0] and table["lfc"].iloc[0] == -np.inf
    assert table["pvalue"].iloc[0] < 1e-3


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"z": np.full((480, 1), 2.0)}, "hard 0/1"),
        ({"samples": np.arange(10)}, r"shape \(480,\)"),
        ({"alpha": 1.5}, "alpha"),
        ({"cell_covariates": "drop"}, "cell_covariates"),
        ({"samples": pd.Series(np.repeat(np.arange(8), 60)).where(lambda s: s != 3).to_numpy()}, "missing"),
    ],
)
def test_bad_input_is_named(change, match):
    counts, samples, d, _ = _simulate(n_genes=5)
    kwargs = {"samples": samples, **change}
    with pytest.raises(ValueError, match=match):
        pseudobulk_effects(_data(counts, d), **kwargs)


def test_too_few_samples_or_df_raises():
    counts, samples, d, _ = _simulate(n_samples=4, n_genes=5)
    with pytest.raises(ValueError, match="min_samples=3"):
        pseudobulk_effects(_data(counts, d), samples, min_samples=3)
    rng = np.random.default_rng(0)
    sample_level = rng.normal(size=(4, 2))[samples]  # two sample-level covariates: [1, X, D] fills 4 samples
    with pytest.raises(ValueError, match="no residual degrees of freedom"):
        pseudobulk_effects(_data(counts, d, sample_level), samples)


def test_a_z_hat_that_leaves_no_degrees_of_freedom_is_left_out_with_a_warning():
    counts, samples, d, _ = _simulate(n_samples=4, n_genes=5)
    many = np.random.default_rng(0).integers(0, 2, (len(d), 3)).astype(float)
    with pytest.warns(UserWarning, match="tested without Z-hat"):
        table = pseudobulk_effects(_data(counts, d), samples, many)
    assert not table["z_adjusted"].any()
    np.testing.assert_allclose(table["lfc"], pseudobulk_effects(_data(counts, d), samples)["lfc"])
    counts, samples, d, z = _simulate(n_samples=8, n_genes=5)
    assert pseudobulk_effects(_data(counts, d), samples, z)["z_adjusted"].all()


def test_pseudobulks_of_few_cells_are_left_out_and_named():
    counts, samples, d, _ = _simulate(n_genes=20, cells=40)
    few = np.flatnonzero(samples == 5)[5:]  # sample 5 keeps 5 cells
    keep = np.setdiff1d(np.arange(len(d)), few)
    counts, samples, d = counts[keep], samples[keep], d[keep]
    with pytest.warns(UserWarning, match=r"min_cells=10 cells: 5 \(5\)"):
        table = pseudobulk_effects(_data(counts, d), samples)
    assert (table["n_samples_treated"] == 3).all() and (table["df_residual"] == 7 - 2).all()
    kept = pseudobulk_effects(_data(counts, d), samples, min_cells=0)
    assert (kept["n_samples_treated"] == 4).all()
    with pytest.raises(ValueError, match="min_cells"):
        pseudobulk_effects(_data(counts, d), samples, min_cells=-1)
