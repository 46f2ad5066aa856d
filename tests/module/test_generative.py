import pytest
import torch

from zconf._constants import REGISTRY_KEYS
from zconf.module import ZConfModule


def _per_state_log_means(module, covariates, d, log_library):
    """The head evaluated at every expanded state, renormalised by log-sum-exps: the definition."""
    z_states = module.states.unsqueeze(0).expand(d.shape[0], -1, -1)
    n_states = z_states.shape[1]
    cov = covariates.unsqueeze(1).expand(-1, n_states, -1)
    d_states = d.unsqueeze(1).expand(-1, n_states)
    log_mean = module.nb_head(module.head_covariates(cov, d_states), d_states, z_states)
    if module.renormalises_latent:
        log_mean = module._renormalise_latent(log_mean, z_states)
    return log_mean + log_library.unsqueeze(1)


@pytest.mark.parametrize(("distribution", "n_latent"), [("bernoulli", 1), ("bernoulli", 2), ("categorical", 3)])
@pytest.mark.parametrize("compositional", [True, False])
def test_enumerated_log_means_equal_the_head_at_every_state(distribution, n_latent, compositional):
    torch.manual_seed(0)
    module = ZConfModule(
        n_input=40,
        n_latent=n_latent,
        latent_distribution=distribution,
        n_continuous_cov=2,
        n_cats_per_cov=[3],
        treatment_interactions=True,
        use_observed_lib_size=True,
        compositional_latent=compositional,
    ).double()
    with torch.no_grad():
        for param in module.nb_head.parameters():
            param.normal_(0, 1.5)  # state parts that move the library a lot
    codes = torch.randint(0, 3, (7, 1))
    tensors = {
        REGISTRY_KEYS.X_KEY: torch.zeros(7, 40),
        REGISTRY_KEYS.CONT_COVS_KEY: torch.randn(7, 2),
        REGISTRY_KEYS.CAT_COVS_KEY: codes,
    }
    covariates = module.design(tensors).double()
    d = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    log_library = torch.randn(7, 1, dtype=torch.float64) + 5
    fast = module._enumerated_log_means(covariates, d, log_library)
    torch.testing.assert_close(fast, _per_state_log_means(module, covariates, d, log_library))
    weights = module.nb_head.linear.weight
    grad_fast = torch.autograd.grad((fast.sin()).sum(), weights)
    grad_slow = torch.autograd.grad(_per_state_log_means(module, covariates, d, log_library).sin().sum(), weights)
    torch.testing.assert_close(grad_fast, grad_slow)
