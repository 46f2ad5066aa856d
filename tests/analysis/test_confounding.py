"""Is a hidden state a confounder: its link to the treatment and its signature in both arms."""

import numpy as np
import pandas as pd
import pytest
import torch

import zconf
from tests.conftest import FAST_TRAIN, setup
from zconf.analysis import TreatmentLink, balanced_columns, signature_agreement
from zconf.model import _submodels


def test_confounding_gain_is_the_likelihood_of_the_link_and_zero_without_one(adata):
    """The per-cell gain equals log p(D, Y | X) minus the same with Z independent of D, and vanishes when the
    classifier does not use Z."""
    model = zconf.ZConf(setup(adata), n_hidden=8, n_latent=2)
    model.train(**FAST_TRAIN)
    gain = model.get_confounding_gain()
    assert gain.shape == (adata.n_obs,)
    module = model.module
    module.eval()
    tensors = next(iter(model._make_data_loader(adata=adata, batch_size=adata.n_obs, shuffle=False)))
    with torch.no_grad():
        log_prior, log_d, log_y = (t.double() for t in module._state_log_terms(tensors))
    p_d = torch.logsumexp(log_prior + log_d, -1)  # the model's propensity with Z averaged out
    expected = torch.logsumexp(log_prior + log_d + log_y, -1) - p_d - torch.logsumexp(log_prior + log_y, -1)
    np.testing.assert_allclose(gain, expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        model.get_marginal_log_likelihood() - gain, (p_d + torch.logsumexp(log_prior + log_y, -1)).numpy(), atol=1e-3
    )
    with torch.no_grad():
        module.classifier.linear.weight[:, -module.n_latent :] = 0.0
    np.testing.assert_allclose(model.get_confounding_gain(), 0.0, atol=1e-4)
    assert not TreatmentLink.of(model.get_confounding_gain(), 2).linked


def test_treatment_link_is_a_likelihood_ratio_test():
    link = TreatmentLink.of(np.full(500, 0.01), 1)  # statistic 10 on 1 degree of freedom
    assert link.statistic == pytest.approx(10.0) and link.pvalue == pytest.approx(0.001565, rel=1e-3)
    assert link.linked and not TreatmentLink.of(np.full(500, 0.002), 1).linked
    assert TreatmentLink.of(np.zeros(10), 0).pvalue == 1.0


def _counts(rng, treatment, z, shift_control, shift_treated):
    """NB-like counts: Z shifts genes by ``shift_control`` in the control arm and ``shift_treated`` in the treated."""
    shift = np.where(treatment[:, None] == 1, shift_treated, shift_control)
    mean = np.exp(1.0 + 0.5 * treatment[:, None] + z[:, None] * shift)
    return rng.poisson(rng.gamma(5.0, mean / 5.0))


def test_signature_agreement_tells_a_factor_before_treatment_from_a_response_pattern():
    rng = np.random.default_rng(0)
    n, genes = 3000, 120
    treatment = rng.integers(0, 2, n).astype(float)
    z = rng.binomial(1, 0.3 + 0.4 * treatment).astype(float)  # a confounder: linked to the treatment
    signature = rng.normal(0, 0.8, genes)
    covariates = np.zeros((n, 0))
    same = signature_agreement(_counts(rng, treatment, z, signature, signature), covariates, treatment, z[:, None])
    other = rng.normal(0, 0.8, genes)  # another set of genes in each arm: not one factor
    differ = signature_agreement(_counts(rng, treatment, z, signature, other), covariates, treatment, z[:, None])
    assert same > 0.9 and abs(differ) < 0.3
    assert differ < zconf.analysis.MIN_SIGNATURE_AGREEMENT < same


def test_balanced_columns_drop_the_level_best_present_in_both_arms():
    treatment = np.array([0, 0, 0, 1, 1, 1])
    levels = np.eye(3)[[0, 1, 1, 2, 1, 2]]  # level 1 is in both arms; 0 only in control, 2 only treated
    np.testing.assert_array_equal(balanced_columns(levels, treatment, categorical=True), levels[:, [0, 2]])
    np.testing.assert_array_equal(balanced_columns(levels[:, :2], treatment, categorical=False), levels[:, :2])


def test_only_confounders_are_chosen(monkeypatch):
    """A candidate that the counts support is passed over when it is not linked to the treatment, or when its
    signature differs between the arms, or when its gain is the noise of the cells' totals; the next simpler
    confounder is chosen."""
    base = np.linspace(-300, -299, 400)
    scores = {("none", 0): base, ("bernoulli", 1): base + 2.0, ("bernoulli", 2): base + 4.0}
    extra = {c: {"eligible": True, "signature_agreement": np.nan} for c in scores}
    agreement = {("bernoulli", 1): 0.9, ("bernoulli", 2): 0.05}
    monkeypatch.setattr(_submodels, "_agrees_in_both_arms", lambda model, c, cells, z: agreement[c])
    beyond_library = dict.fromkeys(scores, np.nan)  # NaN: no library offset, the check does not apply
    monkeypatch.setattr(_submodels, "_gain_beyond_library", lambda model, c, cells, z: beyond_library[c])
    chosen = _submodels._choose_confounder(
        None, scores, {c: dict(v) for c, v in extra.items()}, None, dict.fromkeys(scores)
    )
    assert chosen == ("bernoulli", 1)  # Bernoulli 2 fits best but shifts other genes in each arm
    extra[("bernoulli", 1)]["eligible"] = False  # not linked to the treatment
    agreement[("bernoulli", 2)] = 0.9
    assert _submodels._choose_confounder(
        None, scores, {c: dict(v) for c, v in extra.items()}, None, dict.fromkeys(scores)
    ) == (
        "bernoulli",
        2,
    )
    beyond_library[("bernoulli", 2)] = 0.2  # its gain is the noise of the cells' totals
    checked = {c: dict(v) for c, v in extra.items()}
    assert _submodels._choose_confounder(None, scores, checked, None, dict.fromkeys(scores)) == ("none", 0)
    assert checked[("bernoulli", 2)]["role"] == "library noise"
    assert checked[("bernoulli", 2)]["gain_beyond_library"] == 0.2
    beyond_library[("bernoulli", 2)] = 0.95
    extra[("bernoulli", 2)]["eligible"] = False
    assert _submodels._choose_confounder(None, scores, extra, None, dict.fromkeys(scores)) == ("none", 0)


def test_selection_table_reports_why(adata):
    model = zconf.ZConf(setup(adata), n_hidden=8, max_latent=1, max_levels=2)
    model.train(max_epochs=4, batch_size=64, accelerator="cpu", enable_progress_bar=False)
    table = model.latent_selection_
    columns = ("treatment_link_pvalue", "zhat_imbalance_pvalue", "signature_agreement", "gain_beyond_library")
    for column in (*columns, "role", "eligible"):
        assert column in table.columns
    assert table.loc["none", "treatment_link_pvalue"] == 1.0 and bool(table.loc["none", "eligible"])
    assert table.loc["none", "role"] == "none"
    assert isinstance(table, pd.DataFrame) and table["chosen"].sum() == 1


def test_arm_imbalance_tells_a_balanced_regressor_from_one_that_follows_the_treatment():
    rng = np.random.default_rng(1)
    n = 4000
    covariates = rng.normal(size=(n, 2))
    treatment = rng.binomial(1, 1 / (1 + np.exp(-covariates[:, 0]))).astype(float)
    balanced = rng.random((n, 1))
    follows = np.clip(balanced + 0.1 * treatment[:, None], 0, 1)
    assert zconf.analysis.arm_imbalance(balanced, covariates, treatment) > 0.01
    assert zconf.analysis.arm_imbalance(follows, covariates, treatment) < 1e-6
    assert zconf.analysis.arm_imbalance(np.zeros((n, 0)), covariates, treatment) == 1.0


def test_sample_link_is_an_exact_permutation_test_over_samples():
    from zconf.analysis import SampleLink, candidate_role

    arm = np.repeat([0, 1], 400)
    samples = np.repeat(np.arange(8), 100)
    separated = np.repeat([0.2, 0.3, 0.25, 0.2, 0.7, 0.8, 0.75, 0.7], 100)[:, None]
    link = SampleLink.of(separated, arm, samples)
    # the observed split and its mirror image are the two most extreme of the C(8, 4) = 70 splits
    assert link.pvalue == pytest.approx(2 / 70) and link.linked
    assert (link.n_samples_control, link.n_samples_treated) == (4, 4)
    # arms that separate perfectly (each constant) are the strongest evidence, at any scale of Z-hat
    constant_arms = np.repeat([0.2] * 4 + [0.8] * 4, 100)[:, None]
    assert SampleLink.of(constant_arms, arm, samples).pvalue == pytest.approx(2 / 70)
    assert SampleLink.of(separated * 1e-6, arm, samples).pvalue == pytest.approx(2 / 70)
    assert SampleLink.of(np.full((800, 1), 0.3), arm, samples).pvalue == 1.0
    # the same cell-level difference, but one sample per arm: nothing can be told from two samples
    assert SampleLink.of(separated, arm, np.repeat([0, 1], 400)).pvalue == 1.0
    assert SampleLink.of(np.zeros((800, 0)), arm, samples).pvalue == 1.0
    # over cells, a sample-level treatment's arms differ in every state's share; over samples, not beyond noise
    noise = np.repeat([0.2, 0.8, 0.25, 0.7, 0.7, 0.2, 0.75, 0.3], 100)[:, None]
    cell_link = TreatmentLink.of(np.full(800, 0.02), 1)
    assert not SampleLink.of(noise, arm, samples).linked
    assert candidate_role(True, cell_link, 0.5, SampleLink.of(noise, arm, samples)) == "not linked across samples"
    assert candidate_role(True, cell_link, 0.5, link) == "confounder"
    assert candidate_role(True, cell_link, 0.5, None) == "confounder"


def test_sample_link_is_calibrated_and_repeatable_with_many_samples():
    from zconf.analysis import SampleLink

    rng = np.random.default_rng(0)
    arm = np.repeat([0, 1], 12 * 30)
    samples = np.repeat(np.arange(24), 30)  # C(24, 12) splits: a fixed-seed draw of them
    pvalues = []
    for _ in range(200):
        composition = rng.dirichlet(np.ones(3), size=24)  # samples differ, the arms do not
        pvalues.append(SampleLink.of(np.repeat(composition, 30, axis=0), arm, samples).pvalue)
    pvalues = np.array(pvalues)
    assert 0.02 <= np.mean(pvalues < 0.05) <= 0.09 and 0.4 <= np.median(pvalues) <= 0.6
    z = np.repeat(rng.random((24, 2)), 30, axis=0)
    assert SampleLink.of(z, arm, samples).pvalue == SampleLink.of(z, arm, samples).pvalue
    shifted = z + arm[:, None] * 0.5
    assert SampleLink.of(shifted, arm, samples).pvalue < 0.001
