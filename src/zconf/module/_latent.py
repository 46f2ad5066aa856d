"""The latent's families: how Z-hat is drawn, which states the losses evaluate, their weights and the prior.

One object per ``relaxation``, chosen once when the module is built; the module and its loss ask it, and never
guess the mode from a tensor's shape. Pure torch, no AnnData.
"""

from __future__ import annotations

import itertools
from typing import Literal

import torch
import torch.nn.functional as F

from ._losses import bernoulli_kl

Relaxation = Literal["marginal", "straight_through", "gumbel", "continuous"]

#: The exact marginal enumerates 2**n_latent states per cell; beyond this it is too costly.
MAX_MARGINAL_LATENT = 6


class BernoulliLatent:
    """``n_latent`` independent binary confounders; the base behaviour is the notebook's straight-through Z-hat.

    Parameters
    ----------
    n_latent
        Number of binary factors (0 allowed: the model without Z).

    Attributes
    ----------
    enumerates
        Whether the losses are the exact expectation over every state of Z (a negative ELBO).
    """

    name: str = "straight_through"
    enumerates: bool = False

    def __init__(self, n_latent: int):
        if n_latent < 0:
            msg = f"`n_latent` must be >= 0, got {n_latent}."
            raise ValueError(msg)
        self.n_latent = n_latent

    def all_states(self) -> torch.Tensor:
        """Every value of Z, ``(2**n_latent, n_latent)``; one empty state when ``n_latent`` is 0."""
        states = list(itertools.product([0.0, 1.0], repeat=self.n_latent))
        return torch.tensor(states, dtype=torch.float32).reshape(len(states), self.n_latent)

    def probabilities(self, z_logits: torch.Tensor) -> torch.Tensor:
        """P(Z_j = 1 | ·) from the generator's logits."""
        return torch.sigmoid(z_logits)

    def draw(self, z_logits: torch.Tensor, training: bool, temperature: float) -> torch.Tensor:
        """The Z-hat that enters the heads: exactly 0/1 forward, the sigmoid's gradient backward."""
        soft = torch.sigmoid(z_logits)
        return (soft > 0.5).to(soft.dtype) + (soft - soft.detach())

    def states(self, z: torch.Tensor, all_states: torch.Tensor) -> torch.Tensor:
        """States the heads are evaluated at, ``(n_obs_minibatch, n_states, n_latent)``: Z-hat, or all of them."""
        if self.enumerates:
            return all_states.unsqueeze(0).expand(z.shape[0], -1, -1)
        return z.unsqueeze(1)

    def log_weights(self, z_logits: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Log q(state | ·) of each cell and state, ``(n_obs_minibatch, n_states)``."""
        log_p1 = F.logsigmoid(z_logits).unsqueeze(1)
        log_p0 = F.logsigmoid(-z_logits).unsqueeze(1)
        return (states * log_p1 + (1 - states) * log_p0).sum(-1)

    def state_weights(self, z_logits: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Weights of the states in the losses: q(state) when enumerating, else 1 for the single Z-hat."""
        if self.enumerates:
            return self.log_weights(z_logits, states).exp()
        return z_logits.new_ones(states.shape[:2])

    def prior_term(self, z_logits: torch.Tensor, prior_logit: torch.Tensor) -> torch.Tensor:
        """Per-cell KL(q || prior), ``(n_obs_minibatch,)``; 0 for the relaxations that are not an ELBO."""
        if not self.enumerates:
            return z_logits.new_zeros(z_logits.shape[0])
        return bernoulli_kl(z_logits, prior_logit).sum(-1)

    def prior_log_probs(self, prior_logit: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Log p(state) under the prior, ``(n_states,)`` for ``states`` ``(n_states, n_latent)``."""
        return (states * F.logsigmoid(prior_logit) + (1 - states) * F.logsigmoid(-prior_logit)).sum(-1)


class MarginalBernoulli(BernoulliLatent):
    """The exact expectation over Z's 2**n_latent states plus a KL to a learned Bernoulli prior (an ELBO)."""

    name = "marginal"
    enumerates = True

    def __init__(self, n_latent: int):
        super().__init__(n_latent)
        if n_latent > MAX_MARGINAL_LATENT:
            msg = (
                f"relaxation='marginal' enumerates 2**n_latent states; n_latent={n_latent} exceeds "
                f"{MAX_MARGINAL_LATENT}. Use relaxation='straight_through' or fewer latents."
            )
            raise ValueError(msg)


class GumbelBernoulli(BernoulliLatent):
    """A Gumbel-sigmoid sample at the plan's temperature, binarised straight-through; deterministic at inference."""

    name = "gumbel"

    def draw(self, z_logits: torch.Tensor, training: bool, temperature: float) -> torch.Tensor:
        """Hard 0/1 forward from a noisy sample during training, from the probabilities otherwise."""
        if not training:
            return super().draw(z_logits, training, temperature)
        u = torch.rand_like(z_logits).clamp(1e-6, 1 - 1e-6)
        soft = torch.sigmoid((z_logits + torch.log(u) - torch.log1p(-u)) / temperature)
        return (soft > 0.5).to(soft.dtype) + (soft - soft.detach())


class ContinuousBernoulli(BernoulliLatent):
    """The sigmoid probabilities themselves enter the heads (no binarisation)."""

    name = "continuous"

    def draw(self, z_logits: torch.Tensor, training: bool, temperature: float) -> torch.Tensor:
        """The probabilities."""
        return torch.sigmoid(z_logits)


LATENT_FAMILIES: dict[str, type[BernoulliLatent]] = {
    family.name: family for family in (MarginalBernoulli, BernoulliLatent, GumbelBernoulli, ContinuousBernoulli)
}


def make_latent(relaxation: Relaxation, n_latent: int) -> BernoulliLatent:
    """The latent object of a ``relaxation`` (raises a ValueError naming the valid ones)."""
    if relaxation not in LATENT_FAMILIES:
        msg = f"`relaxation` must be one of {list(LATENT_FAMILIES)}, got {relaxation!r}."
        raise ValueError(msg)
    return LATENT_FAMILIES[relaxation](n_latent)
