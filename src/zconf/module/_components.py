"""The user's three sub-networks: the Z generator, the treatment classifier and the NB head."""

from __future__ import annotations

import torch
from torch import nn

from ._losses import LOG_THETA_CLAMP


class Generator(nn.Module):
    """MLP on the generator inputs with one ReLU hidden layer and ``n_latent`` sigmoid outputs.

    ``forward`` returns the pre-sigmoid logits; the module applies the sigmoid (and the
    straight-through binarisation) so that log-probabilities can be taken stably.
    """

    def __init__(self, n_input: int, n_latent: int, n_hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_input, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_latent))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits of P(Z=1 | inputs), shape ``(n_obs_minibatch, n_latent)``."""
        return self.net(inputs)


class TreatmentClassifier(nn.Module):
    """Linear logistic model of the treatment, D ~ [X, Z-hat]."""

    def __init__(self, n_covariates: int, n_latent: int, intercept: bool = True):
        super().__init__()
        self.linear = nn.Linear(n_covariates + n_latent, 1, bias=intercept)

    def forward(self, covariates: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Logit of D; ``covariates`` ``(..., n_covariates)`` and ``z`` ``(..., n_latent)``."""
        return self.linear(torch.cat([covariates, z], dim=-1)).squeeze(-1)


class NBHead(nn.Module):
    """Linear negative binomial GLM with log link, Y ~ [X, D, Z-hat], and a per-gene dispersion.

    Parameters
    ----------
    n_covariates, n_latent, n_vars
        Input and output sizes.
    intercept
        Whether each gene has an intercept.
    fixed_dispersion
        Known NB dispersions α (Var = μ + α μ²), one per gene. ``None`` learns them.
    """

    def __init__(
        self,
        n_covariates: int,
        n_latent: int,
        n_vars: int,
        intercept: bool = True,
        fixed_dispersion: torch.Tensor | None = None,
    ):
        super().__init__()
        self.linear = nn.Linear(n_covariates + 1 + n_latent, n_vars, bias=intercept)
        if fixed_dispersion is None:
            self.log_theta = nn.Parameter(torch.zeros(n_vars))
        else:
            self.register_buffer("log_theta", -torch.log(fixed_dispersion.float()))

    @property
    def learns_dispersion(self) -> bool:
        """Whether the dispersion is a trained parameter."""
        return isinstance(self.log_theta, nn.Parameter)

    def forward(self, covariates: torch.Tensor, d: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Log-means ``(..., n_vars)`` without any size-factor offset."""
        return self.linear(torch.cat([covariates, d.unsqueeze(-1), z], dim=-1))

    def clamped_log_theta(self) -> torch.Tensor:
        """Log θ = −log α, clamped to the finite range the likelihood uses."""
        return self.log_theta.clamp(-LOG_THETA_CLAMP, LOG_THETA_CLAMP)
