"""The exact marginal likelihood, the model without Z, the automatic choice of n_latent, seeds and old saves."""

import itertools
import logging
from dataclasses import replace
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scvi
import torch
from scipy import stats

import zconf
from tests.conftest import COVARIATES, FAST_TRAIN, setup
from zconf.analysis import PairedGain, choose_smallest_supported, stops_early
from zconf.model._submodels import CANDIDATE_EPOCH_FRACTION, _candidate_schedule
from zconf.model._training import RunResult, best_of_restarts, default_max_epochs, fine_tune_epochs, is_collapsed

OLD_MODEL = Path(__file__).parents[1] / "data" / "old_format_model"


def _brute_force_loglik(model, adata) -> np.ndarray:
    """log Σ_z p(z) p(D | X, z) p(Y | X, D, z), summed state by state with scipy's NB and Bernoulli pmfs."""
    module = model.module
    x, d = model.get_design(adata)
    y = np.asarray(adata.layers["counts"])
    log_library = np.log(y.sum(1).clip(1)) if module.use_observed_lib_size else np.zeros(len(d))
    prior = torch.sigmoid(module.z_prior_logit).detach().numpy()
    theta = np.exp(module.nb_head.clamped_log_theta().detach().numpy())
    w_d, b_d = module.classifier.linear.weight.detach().numpy()[0], module.classifier.linear.bias.item()
    w_y, b_y = module.nb_head.linear.weight.detach().numpy(), module.nb_head.linear.bias.detach().numpy()
    terms = []
    for state in itertools.product([0.0, 1.0], repeat=module.n_latent):
        z = np.tile(state, (len(d), 1))
        log_prior = np.sum(np.where(np.array(state) == 1, np.log(prior), np.log1p(-prior)))
        p_d = 1 / (1 + np.exp(-(np.hstack([x, z]) @ w_d + b_d)))
        log_d = stats.bernoulli.logpmf(d, p_d)
        eta = np.hstack([x, d[:, None], z]) @ w_y.T + b_y
        if module.renormalises_latent:  # Z's part renormalised: the same expected library as without Z
            eta_without_z = np.hstack([x, d[:, None], np.zeros_like(z)]) @ w_y.T + b_y
            eta = eta - np.log(np.exp(eta).sum(1, keepdims=True) / np.exp(eta_without_z).sum(1, keepdims=True))
        mu = np.exp(eta + log_library[:, None])
        log_y = stats.nbinom.logpmf(y, theta, theta / (theta + mu)).sum(1)
        terms.append(log_prior + log_d + log_y)
    return np.logaddexp.reduce(np.stack(terms), axis=0)


@pytest.mark.parametrize(("n_latent", "compositional"), [(0, True), (1, True), (2, True), (2, False)])
def test_marginal_log_likelihood_equals_the_brute_force_sum(adata, n_latent, compositional):
    adata = setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=n_latent, compositional_latent=compositional)
    model.train(**FAST_TRAIN)
    assert model.module.renormalises_latent == (compositional and n_latent > 0)
    loglik = model.get_marginal_log_likelihood(batch_size=37)
    assert loglik.shape == (adata.n_obs,)
    np.testing.assert_allclose(loglik, _brute_force_loglik(model, adata), rtol=1e-5)
    np.testing.assert_allclose(model.get_marginal_log_likelihood(indices=[3, 1]), loglik[[3, 1]], rtol=1e-6)


def test_model_without_z_works_everywhere(adata, tmp_path):
    adata = setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=0)
    model.train(**FAST_TRAIN)
    assert model.n_latent_ == 0
    assert model.get_latent_representation().shape == (adata.n_obs, 0)
    adjusted, naive = model.treatment_effects(), model.treatment_effects(adjust=False)
    np.testing.assert_array_equal(adjusted["lfc"].to_numpy(), naive["lfc"].to_numpy())
    assert model.get_cross_fitted_latent().shape == (adata.n_obs, 0)
    annotated = model.annotate_adata(copy=True)
    assert annotated.obsm["X_zconf"].shape == (adata.n_obs, 0)
    assert "zconf_d_prob" in annotated.obs and "zconf_z0" not in annotated.obs
    model.save(tmp_path / "m")
    loaded = zconf.ZConf.load(tmp_path / "m", adata=adata)
    np.testing.assert_allclose(loaded.get_predictions()["d_prob"], model.get_predictions()["d_prob"], rtol=1e-6)


def test_paired_gain_rule_and_forward_stop():
    rng = np.random.default_rng(1)
    base = rng.normal(-200, 10, 800)
    noise = rng.normal(0, 1, 800)
    assert not PairedGain.of(base + 0.01 * noise, base).clear  # a tie: no clear gain
    assert PairedGain.of(base + 0.5 + noise, base).clear  # 0.5 nats per cell, SE 0.035
    # large data: 0.03 nats per cell is 30 SEs, yet below the floor a more complex model must clear
    many = rng.normal(-200, 10, 200_000)
    small_gain = PairedGain.of(many + 0.03 + 0.05 * rng.normal(size=200_000), many)
    assert small_gain.mean > 20 * small_gain.se and not small_gain.clear
    scores = {0: base, 1: base + 2 + noise, 2: base + 2 + noise + 0.001 * rng.normal(size=800)}
    assert choose_smallest_supported(scores) == 1
    assert stops_early(scores, 2) and not stops_early(scores, 1)


def test_best_of_restarts_keeps_the_lowest_score_and_restarts_collapsed_fits():
    calls = []

    def fit(run):
        calls.append(run)
        return RunResult(score=[5.0, 4.0, 6.0, 3.0][run], state=run, collapsed=run < 2)

    best = best_of_restarts(fit, n_init=1, max_restarts=3)
    assert calls == [0, 1, 2, 3] and best.state == 3  # restarts go on while the best fit is a collapsed one
    calls.clear()
    assert best_of_restarts(fit, n_init=1, max_restarts=1).state == 1 and calls == [0, 1]  # the cap holds
    assert best_of_restarts(lambda run: None, n_init=3, max_restarts=0) is None
    assert is_collapsed(np.r_[np.zeros(99), 1.0][:, None]) and not is_collapsed(np.zeros((5, 0)))


def test_auto_chooses_no_confounder_when_there_is_none():
    adata = setup(zconf.data.simulate("no_confounder", n_obs=400, n_vars=30, random_state=3))
    model = zconf.ZConf(adata, n_hidden=16, max_latent=2)
    model.train(accelerator="cpu", enable_progress_bar=False)  # default epochs: candidates need them
    table = model.latent_selection_
    assert model.n_latent_ == 0 and table["chosen"].sum() == 1 and bool(table.loc["none", "chosen"])
    assert {"heldout_loglik", "heldout_loglik_se", "fit_seconds"} <= set(table.columns)
    np.testing.assert_array_equal(
        model.treatment_effects()["lfc"].to_numpy(), model.treatment_effects(adjust=False)["lfc"].to_numpy()
    )


def test_auto_finds_a_strong_confounder_and_survives_save_load(tmp_path, caplog):
    adata = zconf.data.simulate("confounded", n_obs=400, n_vars=30, random_state=4, gamma2_scale=1.5)
    adata.obs["well"] = [f"w{int(t)}{i % 3}" for i, t in enumerate(adata.obs["treatment"])]  # one arm per well
    model = zconf.ZConf(setup(adata), n_hidden=16, max_latent=2)
    # a confounder is chosen while obs holds sample-like labels that were not registered: the user is told
    with caplog.at_level(logging.INFO, logger="zconf"), pytest.warns(UserWarning, match=r"\['well'\].*sample_key"):
        model.train(accelerator="cpu", enable_progress_bar=False)
    # the log says what was found, and what no observational check can rule out (a mediator)
    assert "confounder" in caplog.text and "treatment_effects(adjust=False)" in caplog.text
    # a confounder is found; which family carries it is not asserted: with the observed library as offset, on
    # 30 simulated genes (whose libraries follow Z, with no depth of their own) categorical 3 beat Bernoulli 1
    # by 0.09 ± 0.03 nats per held-out cell, and without it Bernoulli 1 won
    assert model.n_latent_ >= 1
    z = model.get_latent_representation(soft=True)
    assert max(abs(np.corrcoef(z[:, j], adata.obsm["z_true"][:, 0])[0, 1]) for j in range(z.shape[1])) > 0.9
    # the final fit started from the chosen candidate and only fine-tuned on all cells
    assert len(model.history["train_loss"]) == fine_tune_epochs(default_max_epochs(adata.n_obs, 128))
    model.save(tmp_path / "auto")
    loaded = zconf.ZConf.load(tmp_path / "auto", adata=adata)
    assert loaded.n_latent_ == model.n_latent_
    np.testing.assert_allclose(loaded.get_latent_representation(soft=True), z, rtol=1e-6)
    assert loaded.latent_selection_.equals(model.latent_selection_)


def test_same_call_gives_the_same_answer(adata):
    """Without the user seeding scvi-tools (``settings.seed`` is ``None`` by default), the seeded fit repeats."""
    scvi.settings.seed = None  # the suite's fixture sets 0; a user's session has None
    adata = setup(adata)
    results = []
    for _ in range(2):
        model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
        model.train(max_epochs=4, batch_size=64, accelerator="cpu", enable_progress_bar=False)
        results.append((model.get_latent_representation(soft=True), model.treatment_effects()["lfc"].to_numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    state = torch.get_rng_state()
    model.train(max_epochs=2, batch_size=64, accelerator="cpu", enable_progress_bar=False)
    assert torch.equal(state, torch.get_rng_state())  # the user's random stream is left alone


@pytest.mark.parametrize("n_train", [320, 1600, 8000, 80000])
def test_candidates_train_for_the_default_steps_or_the_users_epochs(n_train):
    n_batches = -(-n_train // 128)
    full = default_max_epochs(n_train, 128)
    schedule = _candidate_schedule({}, n_train)
    epochs = schedule["max_epochs"]
    batches = schedule.get("limit_train_batches", n_batches)
    assert epochs % 2 == 0 and epochs <= full + 1
    assert epochs * batches >= min(800, full * batches)  # never fewer steps than the 10k x 1k trial's floor
    assert epochs * batches >= round(CANDIDATE_EPOCH_FRACTION * full) * batches - batches
    assert (n_train > 20_480) == ("limit_train_batches" in schedule)  # large data: short epochs, as the final fit
    assert _candidate_schedule({"max_epochs": 6}, n_train) == {"max_epochs": 6}  # the user's epochs are kept
    users_limit = _candidate_schedule({"limit_train_batches": 0.5}, n_train)
    assert "limit_train_batches" not in users_limit  # the user's own limit travels in the train call


def test_default_auto_call_gives_the_same_answer_twice(adata):
    scvi.settings.seed = None  # as in a user's session
    adata = setup(adata)
    results = []
    for _ in range(2):
        model = zconf.ZConf(adata, n_hidden=8, max_latent=1, max_levels=2)
        model.train(max_epochs=4, batch_size=64, accelerator="cpu", enable_progress_bar=False)
        results.append((model.latent_selection_, model.get_latent_representation(soft=True)))
    np.testing.assert_array_equal(results[0][1], results[1][1])
    columns = ["heldout_loglik", "chosen"]
    assert results[0][0][columns].equals(results[1][0][columns])


def test_a_model_saved_by_version_0_1_still_loads():
    adata = ad.read_h5ad(OLD_MODEL / "model_v0_1" / "adata.h5ad")
    model = zconf.ZConf.load(OLD_MODEL / "model_v0_1", adata=adata)
    assert model.n_latent_ == 1
    np.testing.assert_allclose(model.get_latent_representation(soft=True), np.load(OLD_MODEL / "z_prob.npy"), rtol=1e-5)
    # saved before the library offset existed: loaded as it was trained, without one
    assert model.module.use_observed_lib_size is False and model.regression_data().offset is None
    assert model.init_params_["non_kwargs"]["use_observed_lib_size"] is False
    assert model.module.compositional_latent is False and not model.module.renormalises_latent
    assert COVARIATES[:2] == list(adata.obsm["_scvi_extra_continuous_covs"].columns)


def test_latent_selection_plot(tmp_path):
    import matplotlib

    matplotlib.use("agg")
    adata = setup(zconf.data.simulate("confounded", n_obs=300, n_vars=30, random_state=5))
    model = zconf.ZConf(adata, n_hidden=8, max_latent=1)
    model.train(max_epochs=8, n_init=1, accelerator="cpu", enable_progress_bar=False)
    ax = zconf.pl.latent_selection(model, show=False)
    assert len(ax.lines) >= 2 and "chosen" in ax.get_title()
    zconf.pl.latent_selection(model, save=str(tmp_path / "selection.png"))
    assert (tmp_path / "selection.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="latent_selection_"):
        zconf.pl.latent_selection(zconf.ZConf(adata, n_latent=1))


def test_the_model_without_z_is_fitted_exactly(adata):
    """The candidate without Z is the GLM's maximum-likelihood fit (IRLS, ML dispersions), not minibatch steps."""
    from zconf.glm import design_matrix, fit_nb_glm
    from zconf.model._training import fit_without_latent

    adata = setup(adata)
    exact = zconf.ZConf(adata, n_hidden=8, n_latent=0)
    fit_without_latent(exact, random_state=0)
    assert exact.is_trained_
    stepped = zconf.ZConf(adata, n_hidden=8, n_latent=0)
    stepped.train(**FAST_TRAIN)
    # no fit of the same model has a higher training likelihood than its maximum-likelihood fit
    assert exact.get_marginal_log_likelihood().sum() >= stepped.get_marginal_log_likelihood().sum() - 1e-3
    data = exact.regression_data(reference_coding=None)
    counts = data.counts.toarray() if hasattr(data.counts, "toarray") else np.asarray(data.counts)
    design = design_matrix(data.covariates, data.treatment).matrix
    glm = fit_nb_glm(counts, design, offset=data.offset, dispersion_method="ml")
    coef = exact.module.nb_head.linear.weight.detach().numpy()[:, exact.module.n_covariates]
    np.testing.assert_allclose(coef, glm.coef[:, -1], atol=1e-4)


def test_treatment_interactions_give_each_level_its_own_effect(adata):
    """With ``treatment_interactions`` the NB head has D x level columns, started at (and, without Z, equal to)
    the GLM with those columns; the per-level treatment effects it holds are those of the GLM."""
    from zconf.glm import design_matrix, fit_nb_glm
    from zconf.model._training import fit_without_latent

    adata = adata.copy()
    adata.obs["site"] = pd.Categorical(np.arange(adata.n_obs) % 3).rename_categories(["a", "b", "c"])
    setup(adata, categorical_covariate_keys=["site"])
    plain = zconf.ZConf(adata, n_hidden=8, n_latent=0, treatment_interactions=False)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=0)  # on by default
    assert model.module.n_interactions == 2 and plain.module.n_interactions == 0
    assert model.module.nb_head.linear.in_features == plain.module.nb_head.linear.in_features + 2
    fit_without_latent(model, random_state=0)
    data = model.regression_data(reference_coding=None)
    counts = data.counts.toarray() if hasattr(data.counts, "toarray") else np.asarray(data.counts)
    x, d = data.covariates, data.treatment
    levels = x[:, model.module.interaction_index]
    glm = fit_nb_glm(
        counts, design_matrix(x, d, levels * d[:, None]).matrix, offset=data.offset, dispersion_method="ml"
    )
    weight = model.module.nb_head.linear.weight.detach().numpy()
    n_cov = model.module.n_covariates
    np.testing.assert_allclose(weight[:, n_cov + 2], glm.coef[:, n_cov + 1], atol=1e-4)  # D, at the first level
    np.testing.assert_allclose(weight[:, n_cov : n_cov + 2], glm.coef[:, n_cov + 2 :], atol=1e-4)  # D x b, D x c
    # the exact marginal likelihood sees the interaction block: it fits at least as well as the additive GLM
    fit_without_latent(plain, random_state=0)
    assert model.get_marginal_log_likelihood().sum() >= plain.get_marginal_log_likelihood().sum()
    with_z = zconf.ZConf(adata, n_hidden=8, n_latent=1, treatment_interactions=True)
    with_z.train(**FAST_TRAIN)
    assert with_z.get_latent_representation().shape == (adata.n_obs, 1)
    assert with_z.module.z_log_fold_changes().shape == (adata.n_vars, 1)


def test_a_model_saved_before_treatment_interactions_loads_without_them(adata, tmp_path):
    """A save whose arguments lack ``treatment_interactions`` (written before it existed) is built without the
    D x level columns, so that its weights fit, and gives the same Z-hat as before."""
    adata = adata.copy()
    adata.obs["site"] = pd.Categorical(np.arange(adata.n_obs) % 3).rename_categories(["a", "b", "c"])
    setup(adata, categorical_covariate_keys=["site"])
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1, treatment_interactions=False)
    model.train(**FAST_TRAIN)
    model.save(tmp_path / "model")
    path = tmp_path / "model" / "model.pt"
    saved = torch.load(path, weights_only=False)
    del saved["attr_dict"]["init_params_"]["non_kwargs"]["treatment_interactions"]
    torch.save(saved, path)
    loaded = zconf.ZConf.load(tmp_path / "model", adata=adata)
    assert loaded.module.n_interactions == 0 and loaded.init_params_["non_kwargs"]["treatment_interactions"] is False
    np.testing.assert_allclose(loaded.get_latent_representation(soft=True), model.get_latent_representation(soft=True))
    assert zconf.ZConf(adata, n_latent=1).module.n_interactions == 2  # a new model has them


def _sampled(cells_per_sample: int | None) -> ad.AnnData:
    """A strong confounder (both arms of equal size, P(D | Z) about 0.2 and 0.85) with whole samples treated.

    The samples nest in (Z, D). ``None``: one sample per (Z, D), so that both arms hold the same two kinds of
    sample; else samples of ``cells_per_sample`` cells, so that the treated samples are mostly of one Z, as when
    donors were treated.
    """
    full = zconf.data.simulate("confounded", n_obs=2000, n_vars=30, random_state=4, gamma2_scale=1.5, gamma1=2.0)
    d = full.obs["treatment"].to_numpy().astype(int)
    rng = np.random.default_rng(0)
    arms = [np.flatnonzero(d == arm) for arm in (0, 1)]
    n_arm = min(map(len, arms))
    adata = full[np.sort(np.concatenate([rng.choice(cells, n_arm, replace=False) for cells in arms]))].copy()
    z, d = adata.obsm["z_true"][:, 0].astype(int), adata.obs["treatment"].to_numpy().astype(int)
    group = pd.Series([f"z{a}d{b}" for a, b in zip(z, d, strict=True)])
    rank = group.groupby(group).cumcount().to_numpy()
    chunk = np.zeros(len(group), dtype=int) if cells_per_sample is None else rank // cells_per_sample
    adata.obs["sample"] = pd.Categorical(group + "_" + chunk.astype(str))
    return setup(adata, sample_key="sample")


@pytest.mark.parametrize("cells_per_sample", [None, 10])
def test_registered_samples_gate_the_choice_and_weight_the_effects(cells_per_sample):
    """With samples registered, a state is adjusted for only if its share differs between treated and untreated
    samples beyond the spread between samples; every sample counts the same in the per-cell effects."""
    adata = _sampled(cells_per_sample)
    model = zconf.ZConf(adata, n_hidden=16, max_latent=2)
    model.train(accelerator="cpu", enable_progress_bar=False)
    table = model.latent_selection_
    with_z = table.drop(index="none")
    if cells_per_sample is None:  # four samples: no split of them can show a link (smallest p-value 1/3)
        assert model.n_latent_ == 0
        assert (with_z["sample_link_pvalue"] >= 1 / 3 - 1e-9).all()
        assert "not linked across samples" in set(with_z["role"])
    else:  # the treated samples are mostly of one Z: a confounder across samples, found and adjusted for
        assert model.n_latent_ >= 1
        assert table.loc[table["chosen"], "sample_link_pvalue"].iloc[0] < 0.05
    # the per-cell effects weight every sample alike when asked, and only then
    data = model.regression_data()
    assert data.weights is None
    weights = zconf.glm.sample_weights(adata.obs["sample"].to_numpy())
    totals = pd.Series(weights).groupby(adata.obs["sample"].to_numpy(), observed=True).sum()
    np.testing.assert_allclose(totals, totals.iloc[0])
    expected = zconf.analysis.treatment_effects(replace(data, weights=weights), gene_names=adata.var_names)
    weighted = model.treatment_effects(adjust=False, weight_samples=True)["lfc"]
    pd.testing.assert_series_equal(weighted, expected["lfc"])
    assert not np.allclose(weighted, model.treatment_effects(adjust=False)["lfc"])
    with pytest.raises(ValueError, match="the sample-aware effects"):
        model.treatment_effects(weight_samples=True, sample_key="sample")


def test_weight_samples_needs_registered_samples(trained):
    model, _ = trained
    with pytest.raises(ValueError, match=r"setup_anndata\(\.\.\., sample_key="):
        model.treatment_effects(weight_samples=True)
