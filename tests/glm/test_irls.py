import numpy as np
import pytest
import statsmodels.api as sm

from zconf.glm import fit_logistic_glm, fit_nb_glm


@pytest.fixture(scope="module")
def nb_data():
    rng = np.random.default_rng(0)
    n = 400
    x = np.column_stack([np.ones(n), rng.integers(0, 2, n), rng.normal(size=n)])
    beta = np.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.4], [-1.0, 0.3, 0.2]])
    alpha = np.array([0.5, 1.2, 0.1])
    mu = np.exp(x @ beta.T)
    y = rng.poisson(rng.gamma(1 / alpha, mu * alpha))
    return x, y, alpha


def test_nb_irls_matches_statsmodels_fixed_dispersion(nb_data):
    x, y, alpha = nb_data
    fit = fit_nb_glm(y, x, dispersion=alpha, tol=1e-12)
    for g in range(y.shape[1]):
        ref = sm.GLM(y[:, g], x, family=sm.families.NegativeBinomial(alpha=alpha[g])).fit(tol=1e-12)
        np.testing.assert_allclose(fit.coef[g], ref.params, atol=1e-4)
        np.testing.assert_allclose(fit.se[g], ref.bse, atol=1e-4)
        np.testing.assert_allclose(fit.deviance[g], ref.deviance, rtol=1e-6)
    assert fit.converged.all()


def test_nb_dispersion_ml_matches_statsmodels(nb_data):
    x, y, _ = nb_data
    fit = fit_nb_glm(y, x, dispersion_method="ml", dispersion_rounds=3, tol=1e-12)
    for g in range(y.shape[1]):
        ref = sm.NegativeBinomial(y[:, g], x).fit(disp=0)
        np.testing.assert_allclose(fit.dispersion[g], ref.params[-1], rtol=1e-3, atol=2e-4)
        np.testing.assert_allclose(fit.coef[g], ref.params[:-1], atol=1e-3)


def test_pearson_dispersion_close_to_truth():
    rng = np.random.default_rng(1)
    n, g = 3000, 40
    x = np.column_stack([np.ones(n), rng.integers(0, 2, n)])
    alpha = rng.uniform(0.2, 2.0, g)
    y = rng.poisson(rng.gamma(1 / alpha, np.exp(1 + 0.5 * x[:, 1:2]) * alpha))
    fit = fit_nb_glm(y, x)
    assert np.median(np.abs(fit.dispersion / alpha - 1)) < 0.1


def test_chunking_does_not_change_results(nb_data):
    x, y, alpha = nb_data
    a = fit_nb_glm(y, x, dispersion=alpha, gene_chunk=1)
    b = fit_nb_glm(y, x, dispersion=alpha, gene_chunk=512)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-6, atol=1e-8)


def test_offset_is_a_log_size_factor(nb_data):
    x, y, alpha = nb_data
    size = np.exp(np.random.default_rng(2).normal(0, 0.3, len(x)))
    fit = fit_nb_glm(y, x, dispersion=alpha, offset=np.log(size))
    ref = sm.GLM(y[:, 0], x, family=sm.families.NegativeBinomial(alpha=alpha[0]), offset=np.log(size)).fit()
    np.testing.assert_allclose(fit.coef[0], ref.params, atol=1e-4)


def test_logistic_matches_statsmodels():
    rng = np.random.default_rng(3)
    x = np.column_stack([np.ones(300), rng.normal(size=(300, 2))])
    d = (rng.random(300) < 1 / (1 + np.exp(-(x @ [0.3, 1.0, -0.5])))).astype(float)
    fit = fit_logistic_glm(d, x)
    ref = sm.GLM(d, x, family=sm.families.Binomial()).fit()
    np.testing.assert_allclose(fit.coef[0], ref.params, atol=1e-6)
    np.testing.assert_allclose(fit.se[0], ref.bse, atol=1e-6)
    np.testing.assert_allclose(fit.deviance[0], ref.deviance, rtol=1e-8)


def test_bad_dispersion_method(nb_data):
    x, y, _ = nb_data
    with pytest.raises(ValueError, match="dispersion_method"):
        fit_nb_glm(y, x, dispersion_method="cr")


def test_prior_weights_match_statsmodels_frequency_weights(nb_data):
    from zconf.glm import sample_weights

    x, y, alpha = nb_data
    samples = np.arange(len(y)) % 7 + (np.arange(len(y)) % 3 == 0) * 7  # samples of unequal sizes
    weights = sample_weights(samples)
    totals = np.bincount(np.unique(samples, return_inverse=True)[1], weights=weights)
    np.testing.assert_allclose(totals, totals[0])
    np.testing.assert_allclose(weights.mean(), 1.0)
    fit = fit_nb_glm(y, x, dispersion=alpha, tol=1e-12, weights=weights)
    for g in range(y.shape[1]):
        ref = sm.GLM(y[:, g], x, family=sm.families.NegativeBinomial(alpha=alpha[g]), freq_weights=weights)
        ref = ref.fit(tol=1e-12)
        np.testing.assert_allclose(fit.coef[g], ref.params, atol=1e-4)
        np.testing.assert_allclose(fit.se[g], ref.bse, atol=1e-4)
        np.testing.assert_allclose(fit.deviance[g], ref.deviance, rtol=1e-6)
    unweighted = fit_nb_glm(y, x, dispersion=alpha, tol=1e-12)
    ones = fit_nb_glm(y, x, dispersion=alpha, tol=1e-12, weights=np.ones(len(y)))
    np.testing.assert_allclose(ones.coef, unweighted.coef)
    with pytest.raises(ValueError, match="weights"):
        fit_nb_glm(y, x, weights=np.r_[0.0, np.ones(len(y) - 1)])
    with pytest.raises(ValueError, match=r"shape \(400,\)"):
        fit_nb_glm(y, x, weights=np.ones(3))
