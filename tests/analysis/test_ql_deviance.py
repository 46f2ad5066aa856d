import numpy as np
import pytest

from zconf.analysis._empirical_bayes import squeeze_var
from zconf.analysis._ql_deviance import EXACT_MAX_MEAN, _unit_deviance, adjusted_ql_dispersion, deviance_moments
from zconf.glm import fit_nb_glm


@pytest.mark.parametrize(("mu", "dispersion"), [(0.4, 1e-6), (2.0, 0.2), (12.0, 0.05)])
def test_deviance_moments_match_simulation(mu, dispersion):
    rng = np.random.default_rng(0)
    n = 1.0 / dispersion
    y = rng.negative_binomial(n, n / (n + mu), size=400_000).astype(float)
    d = _unit_deviance(y, np.full_like(y, mu), np.full_like(y, dispersion))
    mean, var = deviance_moments(np.array([mu]), np.array([dispersion]))
    assert mean[0] == pytest.approx(d.mean(), rel=0.01)
    assert var[0] == pytest.approx(d.var(), rel=0.02)


@pytest.mark.parametrize("dispersion", [1e-6, 0.05, 0.5])
def test_deviance_moments_continuous_at_the_switch_and_chi_square_in_the_limit(dispersion):
    below = deviance_moments(np.array([EXACT_MAX_MEAN * 0.9999]), np.array([dispersion]))
    above = deviance_moments(np.array([EXACT_MAX_MEAN * 1.0001]), np.array([dispersion]))
    np.testing.assert_allclose(np.ravel(below), np.ravel(above), rtol=0.02)
    mean, var = deviance_moments(np.array([1e5]), np.array([1e-8]))
    assert mean[0] == pytest.approx(1.0, abs=1e-3) and var[0] == pytest.approx(2.0, abs=1e-2)


@pytest.mark.parametrize("mu", [0.3, 1.0])
def test_adjusted_ql_dispersion_is_unbiased_at_small_counts_where_deviance_over_df_is_not(mu):
    rng = np.random.default_rng(1)
    y = rng.poisson(mu, size=(8, 6000)).astype(float)
    y = y[:, y.sum(0) > 0]
    design, dispersion = np.ones((8, 1)), np.full(y.shape[1], 1e-6)
    fit = fit_nb_glm(y, design, dispersion=dispersion)
    fitted = np.exp(design @ fit.coef.T)
    s2, df = adjusted_ql_dispersion(y, fitted, design, dispersion)
    legacy = fit.deviance / 7
    assert abs(np.mean(s2) - 1) < 0.1  # the true QL dispersion of Poisson counts is 1
    assert abs(np.mean(s2) - 1) < abs(np.mean(legacy) - 1)
    assert np.all(df > 0)


def test_squeeze_var_recovers_the_prior_with_df_per_gene():
    rng = np.random.default_rng(2)
    d0, s0 = 10.0, 0.5
    df = rng.uniform(3, 12, 20000)  # fractional df, as the adjusted deviances give
    s2 = s0 * d0 / rng.chisquare(d0, df.size) * rng.chisquare(df) / df
    post, d0_hat, s0_hat = squeeze_var(s2, df)
    assert d0_hat == pytest.approx(d0, rel=0.2)
    assert s0_hat[0] == pytest.approx(s0, rel=0.05)
    assert np.all((post - s0_hat) * (s2 - s0_hat) >= -1e-12)


def test_count_range_covers_the_nb_quantile_and_large_dispersions_stay_bounded():
    from scipy import stats

    from zconf.analysis._ql_deviance import _count_range

    mu, a = np.meshgrid(np.geomspace(0.01, 100, 30), np.geomspace(1e-6, 100, 30))
    mu, a = mu.ravel(), a.ravel()
    assert np.all(_count_range(mu, a) >= stats.nbinom.isf(1e-10, 1 / a, 1 / (1 + a * mu)))
    mean, var = deviance_moments(np.array([100.0, 50.0]), np.array([100.0, 10.0]))  # beyond the exact sums
    assert np.all(np.isfinite(mean)) and np.all(var > 0)
