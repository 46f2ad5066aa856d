import numpy as np
import pytest
from scipy import stats

from zconf.analysis._empirical_bayes import moderate_variances, robust_prior_df, squeeze_var


def _prior_draws(rng, n_genes, d0=10.0, s0=0.5, df=6.0):
    sigma2 = s0 * d0 / rng.chisquare(d0, n_genes)
    return sigma2 * rng.chisquare(df, n_genes) / df


def test_robust_prior_df_spares_genes_from_the_prior_and_drops_outliers():
    rng = np.random.default_rng(0)
    df = 6.0
    s2 = _prior_draws(rng, 5000, df=df)
    s2[:20] *= 50.0  # genes whose variance between samples is far above that of the others
    _, d0, s0 = squeeze_var(s2, df)
    prior_df = robust_prior_df(s2, df, d0, s0)
    assert np.all((prior_df >= 0) & (prior_df <= d0))
    assert np.median(prior_df[:20]) < 0.2 * d0
    assert np.mean(prior_df[20:] >= 0.9 * d0) > 0.99


def test_robust_prior_df_keeps_the_test_calibrated_under_the_prior():
    rng = np.random.default_rng(1)
    df, d0_true, s0_true = 6.0, 10.0, 0.5
    sigma2 = s0_true * d0_true / rng.chisquare(d0_true, 20000)
    s2 = sigma2 * rng.chisquare(df, 20000) / df
    numerator = sigma2 * rng.chisquare(1, 20000)  # a null one-df contrast with the same variance
    post, df_total = moderate_variances(s2, df)
    p = stats.f.sf(numerator / post, 1, df_total)
    assert np.mean(p < 0.05) == pytest.approx(0.05, abs=0.006)
    assert np.mean(p < 0.01) <= 0.012


def test_robust_prior_df_without_prior_variance_or_genes():
    s2 = np.array([1.0, np.nan, 2.0])
    assert np.all(robust_prior_df(s2, 4.0, np.inf, np.ones(3)) == np.inf)
    assert robust_prior_df(np.array([np.nan]), 4.0, 5.0, np.ones(1)).tolist() == [5.0]


def test_squeeze_var_abundance_trend_does_not_bias_the_prior_scale():
    rng = np.random.default_rng(2)
    s2 = _prior_draws(rng, 20000, d0=10.0, s0=0.5, df=6.0)
    abundance = rng.uniform(0, 10, s2.size)  # no trend in truth: the trended prior must find the flat one
    _, d0, s0 = squeeze_var(s2, 6.0, covariate=abundance)
    assert d0 == pytest.approx(10.0, rel=0.25)
    assert np.median(s0) == pytest.approx(0.5, rel=0.015)  # a running median of log s2 sits 3% high


def test_squeeze_var_recovers_prior():
    rng = np.random.default_rng(0)
    d0, s0, df = 10.0, 0.5, 5.0
    sigma2 = s0 * d0 / rng.chisquare(d0, 20000)
    s2 = sigma2 * rng.chisquare(df, 20000) / df
    post, d0_hat, s0_hat = squeeze_var(s2, df)
    assert d0_hat == pytest.approx(d0, rel=0.2)
    assert s0_hat[0] == pytest.approx(s0, rel=0.05)
    assert np.all((post - s0_hat) * (s2 - s0_hat) >= -1e-12)  # shrunk towards the prior, never past it


def test_squeeze_var_follows_an_abundance_trend_with_df_per_gene():
    rng = np.random.default_rng(3)
    n, d0 = 5000, 8.0
    abundance = rng.uniform(0, 8, n)
    truth = 0.5 * np.exp(-0.2 * abundance)  # QL dispersion falling with abundance
    df = rng.uniform(2, 7, n)
    s2 = truth * d0 / rng.chisquare(d0, n) * rng.chisquare(df) / df
    _, d0_hat, s0 = squeeze_var(s2, df, covariate=abundance)
    assert d0_hat == pytest.approx(d0, rel=0.25)
    assert np.median(np.abs(np.log(s0 / truth))) < 0.05


def test_weighted_local_linear_reproduces_a_line_and_ignores_zero_weights():
    from zconf.analysis._empirical_bayes import weighted_local_linear

    x = np.linspace(0, 10, 400)
    y = 2.0 - 0.5 * x
    weights = np.ones_like(x)
    weights[::7] = 0.0
    y_noisy = y.copy()
    y_noisy[::7] += 100.0  # only on the zero-weight points
    assert np.allclose(weighted_local_linear(x, y_noisy, weights, span=0.5), y, atol=1e-8)


def test_robust_prior_df_never_rises_further_in_the_tail():
    rng = np.random.default_rng(4)
    s2 = _prior_draws(rng, 3000)
    s2[:30] *= rng.uniform(5, 60, 30)
    _, d0, s0 = squeeze_var(s2, 6.0)
    prior_df = robust_prior_df(s2, 6.0, d0, s0)
    order = np.argsort(s2 / s0)
    assert np.all(np.diff(prior_df[order]) <= 1e-9)
