"""Log-likelihoods and divergences, written to stay finite for extreme counts and dispersions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: log-means are clamped to this range before exponentiation (exp(±30) is far outside count data).
LOG_MEAN_CLAMP = 30.0
#: log inverse-dispersions are clamped to this range (dispersions between ~1e-9 and ~1e9).
LOG_THETA_CLAMP = 20.0


def nb_log_likelihood(y: torch.Tensor, log_mean: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """Elementwise negative binomial log-likelihood in the mean / inverse-dispersion form.

    With mean μ and inverse dispersion θ = 1 / α, Var(Y) = μ + μ² / θ. This equals
    ``scipy.stats.nbinom.logpmf(y, n=θ, p=θ / (θ + μ))``. Everything is computed from logs
    (``logaddexp`` for log(θ + μ)), so counts of 10⁶ and dispersions near 0 stay finite.

    Parameters
    ----------
    y
        Counts, any shape.
    log_mean
        log μ, broadcastable to ``y``.
    log_theta
        log θ, broadcastable to ``y``.

    Returns
    -------
    The log-likelihood, with the broadcast shape.
    """
    log_mean = log_mean.clamp(-LOG_MEAN_CLAMP, LOG_MEAN_CLAMP)
    log_theta = log_theta.clamp(-LOG_THETA_CLAMP, LOG_THETA_CLAMP)
    theta = log_theta.exp()
    log_theta_mean = torch.logaddexp(log_theta, log_mean)
    return (
        torch.lgamma(y + theta)
        - torch.lgamma(theta)
        - torch.lgamma(y + 1.0)
        + theta * (log_theta - log_theta_mean)
        + y * (log_mean - log_theta_mean)
    )


def nb_deviance(y: torch.Tensor, log_mean: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """Elementwise NB unit deviance 2·[ℓ(y; μ=y) − ℓ(y; μ)], ≥ 0 and 0 at the saturated fit."""
    log_y = torch.where(y > 0, torch.log(y.clamp_min(1e-30)), torch.full_like(y, -LOG_MEAN_CLAMP))
    saturated = nb_log_likelihood(y, log_y, log_theta)
    return (2.0 * (saturated - nb_log_likelihood(y, log_mean, log_theta))).clamp_min(0.0)


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise binary cross-entropy with logits (the classifier's loss)."""
    return F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="none")


def bernoulli_kl(q_logits: torch.Tensor, prior_logits: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(Bernoulli(sigmoid(q_logits)) || Bernoulli(sigmoid(prior_logits)))."""
    q = torch.sigmoid(q_logits)
    return q * (F.logsigmoid(q_logits) - F.logsigmoid(prior_logits)) + (1 - q) * (
        F.logsigmoid(-q_logits) - F.logsigmoid(-prior_logits)
    )
