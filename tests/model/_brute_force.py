"""The exact marginal log-likelihood of a trained ZConf, summed state by state with scipy's pmfs (test oracle)."""

import numpy as np
import torch
from scipy import stats


def brute_force_loglik(model, adata) -> np.ndarray:
    """log Σ_s p(s) p(D | X, z_s) p(Y | X, D, z_s) over the module's states z_s, one state at a time.

    The states are the rows of ``module.states``: a categorical latent's one-hot levels, a normal latent's grid
    values. The log-means are those of the default renormalised latent with the observed library as offset:
    each state keeps the expected library of the cell without Z.
    """
    module = model.module
    x, d = model.get_design(adata)
    y = np.asarray(adata.layers["counts"])
    log_library = np.log(y.sum(1).clip(1))  # the default offset: each cell's observed total count
    log_prior = torch.log_softmax(module.z_prior_logit, -1).detach().numpy()
    theta = np.exp(module.nb_head.clamped_log_theta().detach().numpy())
    w_d, b_d = module.classifier.linear.weight.detach().numpy()[0], module.classifier.linear.bias.item()
    w_y, b_y = module.nb_head.linear.weight.detach().numpy(), module.nb_head.linear.bias.detach().numpy()
    terms = []
    for state, values in enumerate(module.states.numpy()):
        z = np.broadcast_to(values, (len(d), len(values)))
        p_d = 1 / (1 + np.exp(-(np.hstack([x, z]) @ w_d + b_d)))
        eta = np.hstack([x, d[:, None], z]) @ w_y.T + b_y
        eta_without_z = np.hstack([x, d[:, None], np.zeros_like(z)]) @ w_y.T + b_y
        eta = eta - np.log(np.exp(eta).sum(1, keepdims=True) / np.exp(eta_without_z).sum(1, keepdims=True))
        log_y = stats.nbinom.logpmf(y, theta, theta / (theta + np.exp(eta + log_library[:, None]))).sum(1)
        terms.append(log_prior[state] + stats.bernoulli.logpmf(d, p_d) + log_y)
    return np.logaddexp.reduce(np.stack(terms), axis=0)
