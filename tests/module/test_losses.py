import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from zconf.module import ZConfModule, nb_deviance, nb_log_likelihood, nb_state_log_likelihoods
from zconf.module._losses import digamma


@settings(max_examples=60, deadline=None)
@given(
    y=st.integers(min_value=0, max_value=5000),
    mean=st.floats(min_value=1e-3, max_value=1e4),
    dispersion=st.floats(min_value=1e-3, max_value=50.0),
)
def test_nb_matches_scipy(y, mean, dispersion):
    theta = 1.0 / dispersion
    ours = nb_log_likelihood(
        torch.tensor(float(y), dtype=torch.float64),
        torch.tensor(np.log(mean), dtype=torch.float64),
        torch.tensor(np.log(theta), dtype=torch.float64),
    ).item()
    expected = stats.nbinom.logpmf(y, theta, theta / (theta + mean))
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    y=st.integers(min_value=0, max_value=10**6),
    log_mean=st.floats(min_value=-10, max_value=14),
    log_theta=st.floats(min_value=-8, max_value=8),
)
def test_deviance_nonnegative_and_zero_at_saturation(y, log_mean, log_theta):
    y_t = torch.tensor(float(y), dtype=torch.float64)
    lt = torch.tensor(log_theta, dtype=torch.float64)
    dev = nb_deviance(y_t, torch.tensor(log_mean, dtype=torch.float64), lt).item()
    assert dev >= 0 and np.isfinite(dev)
    if y > 0:
        assert nb_deviance(y_t, torch.log(y_t), lt).item() < 1e-8


def test_extreme_values_stay_finite():
    y = torch.tensor([0.0, 1e6, 3.0, 1e6])
    log_mean = torch.tensor([80.0, -80.0, 0.0, 13.8])
    log_theta = torch.tensor([-50.0, 50.0, 30.0, -30.0])
    assert torch.isfinite(nb_log_likelihood(y, log_mean, log_theta)).all()


@pytest.mark.parametrize("integer_counts", [False, True])  # every count or the non-zeros; the count tables
@pytest.mark.parametrize("rate", [4.0, 0.3, 60.0])  # few zeros, mostly zeros, counts beyond the tables
def test_state_log_likelihoods_equal_the_elementwise_sum_with_gradients(rate, integer_counts):
    generator = torch.Generator().manual_seed(0)
    y = torch.poisson(torch.full((6, 9), rate), generator=generator).double()
    y[2] = 0.0  # a cell without counts
    y[3, 4] = 5000.0  # far beyond COUNT_TABLE_MAX
    log_mean = torch.randn(6, 3, 9, generator=generator, dtype=torch.float64).requires_grad_()
    log_theta = torch.randn(9, generator=generator, dtype=torch.float64).requires_grad_()
    fast = nb_state_log_likelihoods(y, log_mean, log_theta, integer_counts=integer_counts)
    slow = nb_log_likelihood(y.unsqueeze(1), log_mean, log_theta).sum(-1)
    torch.testing.assert_close(fast, slow)
    weights = torch.rand(6, 3, generator=generator, dtype=torch.float64)  # as the state weights of the loss
    grads_fast = torch.autograd.grad((weights * fast).sum(), (log_mean, log_theta))
    grads_slow = torch.autograd.grad((weights * slow).sum(), (log_mean, log_theta))
    for a, b in zip(grads_fast, grads_slow, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("integer_counts", [False, True])
def test_state_log_likelihoods_pass_gradcheck(integer_counts):
    generator = torch.Generator().manual_seed(1)
    y = torch.poisson(torch.full((4, 5), 2.0), generator=generator).double()
    y[0, 0] = 300.0  # beyond the count tables
    log_mean = torch.randn(4, 2, 5, generator=generator, dtype=torch.float64).requires_grad_()
    log_theta = torch.randn(5, generator=generator, dtype=torch.float64).requires_grad_()
    function = lambda m, t: nb_state_log_likelihoods(y, m, t, integer_counts=integer_counts)  # noqa: E731
    assert torch.autograd.gradcheck(function, (log_mean, log_theta))


def test_count_tables_hold_float32_precision_at_real_depths():
    generator = torch.Generator().manual_seed(2)
    y = torch.poisson(torch.full((128, 500), 3.0), generator=generator)
    y[:, :5] = torch.poisson(torch.full((128, 5), 400.0), generator=generator)  # a few highly expressed genes
    log_mean = torch.randn(128, 2, 500, generator=generator)
    log_theta = torch.randn(500, generator=generator)
    log_theta[::50] = 15.0  # near-Poisson genes of real counts: θ ~ 3e6, where sums of θ log θ lost thousands of nats
    tables = nb_state_log_likelihoods(y, log_mean, log_theta, integer_counts=True)
    exact = nb_log_likelihood(y.double().unsqueeze(1), log_mean.double(), log_theta.double()).sum(-1)
    torch.testing.assert_close(tables.double(), exact, rtol=1e-5, atol=1e-2)


def test_digamma_matches_torch_over_the_range_of_counts_plus_theta():
    x = torch.logspace(-9, 7, 5000, dtype=torch.float64)
    reference = torch.digamma(x)
    assert ((digamma(x) - reference).abs() / (reference.abs() + 1)).max() < 1e-10
    x32 = x.float()
    assert ((digamma(x32).double() - reference).abs() / (reference.abs() + 1)).max() < 2e-6


def test_straight_through_forward_is_binary_and_gradient_is_sigmoid():
    module = ZConfModule(n_input=5, n_continuous_cov=2, n_hidden=4)
    y = torch.poisson(torch.full((8, 5), 3.0))
    d = torch.tensor([0.0, 1.0] * 4)
    cov = torch.rand(8, 2)
    out = module.inference(y, d, cov)
    z = out["z"]
    assert set(z.detach().unique().tolist()) <= {0.0, 1.0}
    logits = out["z_logits"]
    (grad_z,) = torch.autograd.grad(z.sum(), logits, retain_graph=False)
    p = torch.sigmoid(logits.detach())
    torch.testing.assert_close(grad_z, p * (1 - p))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_genes=st.integers(1, 4))
def test_partial_r2_of_nested_fit_in_unit_interval(seed, n_genes):
    from zconf.metrics import deviance_partial_r2_from_arrays

    rng = np.random.default_rng(seed)
    n = 60
    x = rng.integers(0, 2, (n, 2)).astype(float)
    d = rng.integers(0, 2, n).astype(float)
    d[:2] = [0.0, 1.0]
    z = rng.random((n, 1))
    counts = rng.poisson(rng.gamma(2.0, 1.0, (n, n_genes)))
    counts[0] = 1
    values = deviance_partial_r2_from_arrays(counts, x, d, z)
    assert 0.0 <= values["treatment"] <= 1.0
    genes = values["genes"][np.isfinite(values["genes"])]
    assert np.all((genes >= 0) & (genes <= 1))


class _FixedLogits(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, inputs):
        return self.logits


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(min_value=-20, max_value=20), min_size=1, max_size=16))
def test_straight_through_property(logit_values):
    """The module's Z-hat is exactly 0/1 forward and has the sigmoid's gradient backward."""
    n = len(logit_values)
    module = ZConfModule(n_input=3, n_hidden=2, relaxation="straight_through")
    logits = torch.tensor(logit_values).unsqueeze(-1).requires_grad_(True)
    module.generator = _FixedLogits(logits)
    out = module.inference(torch.ones(n, 3), torch.zeros(n), torch.zeros(n, 0))
    z = out["z"]
    assert set(z.detach().unique().tolist()) <= {0.0, 1.0}
    (grad,) = torch.autograd.grad(z.sum(), logits)
    prob = torch.sigmoid(logits.detach())
    torch.testing.assert_close(grad, prob * (1 - prob))


def test_renormalised_latent_keeps_the_expected_library_of_the_cell_without_z():
    """With the observed library as offset, no state of Z changes a cell's expected total count."""
    torch.manual_seed(0)
    module = ZConfModule(
        n_input=6, n_continuous_cov=2, n_hidden=4, n_latent=2, use_observed_lib_size=True, compositional_latent=True
    )
    with torch.no_grad():
        module.nb_head.linear.weight.normal_()
    covariates, d = torch.randn(5, 2), torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    log_library = torch.log(torch.tensor([[100.0], [250.0], [80.0], [1000.0], [3.0]]))
    out = module.generative(torch.zeros(5, 2), d, covariates, log_library, states=True)
    library_by_state = torch.logsumexp(out["log_mean"], dim=-1)  # (cells, 4 states)
    without_z = torch.logsumexp(module.nb_head(covariates, d, torch.zeros(5, 2)), dim=-1, keepdim=True)
    torch.testing.assert_close(library_by_state, (without_z + log_library).expand(-1, 4))
    # the genes' shares still move with Z, and a plain offset (or a size factor) leaves Z's part as it is
    assert out["log_mean"].std(dim=1).max() > 0.1
    sized = ZConfModule(
        n_input=6, n_latent=2, use_observed_lib_size=True, use_size_factor=True, compositional_latent=True
    )
    assert module.renormalises_latent and not sized.renormalises_latent  # a size factor is depth, not the library
    module.compositional_latent = False
    plain = module.generative(torch.zeros(5, 2), d, covariates, log_library, states=True)["log_mean"]
    torch.testing.assert_close(plain, module.nb_head(*_expand(covariates, d, module.states)) + log_library[:, None])


def _expand(covariates, d, states):
    n, s = covariates.shape[0], states.shape[0]
    return covariates[:, None].expand(n, s, -1), d[:, None].expand(n, s), states[None].expand(n, -1, -1)
