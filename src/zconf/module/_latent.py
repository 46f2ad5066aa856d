"""The latent's families: how Z-hat is drawn, which states the losses evaluate, their weights and the prior.

One object per ``relaxation``, chosen once when the module is built; the module and its loss ask it, and never
guess the mode from a tensor's shape. Pure torch, no AnnData.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ._losses import bernoulli_kl

Relaxation = Literal["marginal", "straight_through", "gumbel", "continuous"]
LatentDistribution = Literal["bernoulli", "categorical", "normal"]

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
    distribution: str = "bernoulli"
    enumerates: bool = False

    def __init__(self, n_latent: int):
        if n_latent < 0:
            msg = f"`n_latent` must be >= 0, got {n_latent}."
            raise ValueError(msg)
        self.n_latent = n_latent

    @property
    def n_outputs(self) -> int:
        """Generator outputs and prior logits: one per factor (per level, per grid state for the others)."""
        return self.n_latent

    @property
    def n_columns(self) -> int:
        """Columns of Z in the heads, ``all_states().shape[1]``."""
        return self.n_latent

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

    def is_collapsed(self, z_prob: np.ndarray, share: float) -> bool:
        """Whether some factor put more than ``share`` of the cells (mean P(Z_j=1) per column) in one state."""
        means = np.asarray(z_prob, dtype=float).mean(axis=0)
        return bool(means.size and np.any((means < 1 - share) | (means > share)))

    @staticmethod
    def design_columns(z: np.ndarray) -> np.ndarray:
        """The columns of Z-hat (hard or soft) that enter a GLM design with intercept: all of them."""
        return z

    #: Whether a column's 0/1 labels may be swapped when two fits are aligned (a binary factor's may).
    allows_flips: bool = True

    @staticmethod
    def hard(z_prob: np.ndarray) -> np.ndarray:
        """The hard Z-hat of probabilities: each factor thresholded at 0.5."""
        return (z_prob >= 0.5).astype(float)

    @staticmethod
    def state_labels(states: np.ndarray) -> list[str]:
        """Names of the states (rows of ``all_states()``): the factors' 0/1 values, e.g. ``"01"``."""
        return ["".join(str(int(v)) for v in row) or "all cells" for row in states]

    @staticmethod
    def informative_columns(z_prob: np.ndarray) -> np.ndarray:
        """The columns of Z-hat that a fit is expected to use: every factor."""
        return z_prob


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


class CategoricalLatent(BernoulliLatent):
    """One confounder with ``n_latent`` levels (a donor, a patient), marginalised exactly over its levels.

    The generator's ``n_latent`` outputs are the logits of a softmax; Z is one-hot and enters both heads, as
    scvi-tools' CellAssign marginalises a discrete cell type. The heads see all ``n_latent`` one-hot columns
    beside their intercept; the redundant direction is harmless to gradient descent and leaves the likelihood
    unchanged, while the GLMs of the effects drop the first level (:meth:`design_columns`). The prior is a
    learned categorical distribution (softmax of ``prior_logit``), the loss the exact expectation over the
    levels plus KL(q || prior): an ELBO, as for :class:`MarginalBernoulli`.
    """

    name = "marginal"
    distribution = "categorical"
    enumerates = True

    def __init__(self, n_latent: int):
        if n_latent < 2:
            msg = (
                f"latent_distribution='categorical' needs n_latent >= 2 levels, got {n_latent}; one level is the "
                "model without Z (n_latent=0)."
            )
            raise ValueError(msg)
        self.n_latent = n_latent

    def all_states(self) -> torch.Tensor:
        """The one-hot levels, ``(n_latent, n_latent)``."""
        return torch.eye(self.n_latent)

    def probabilities(self, z_logits: torch.Tensor) -> torch.Tensor:
        """P(Z = level | ·), a softmax over the levels."""
        return torch.softmax(z_logits, dim=-1)

    def draw(self, z_logits: torch.Tensor, training: bool, temperature: float) -> torch.Tensor:
        """The most likely level one-hot forward, the softmax's gradient backward."""
        soft = torch.softmax(z_logits, dim=-1)
        hard = F.one_hot(soft.argmax(-1), self.n_latent).to(soft.dtype)
        return hard + (soft - soft.detach())

    def log_weights(self, z_logits: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Log q(level | ·) of each cell and level."""
        return (states * torch.log_softmax(z_logits, dim=-1).unsqueeze(1)).sum(-1)

    def prior_term(self, z_logits: torch.Tensor, prior_logit: torch.Tensor) -> torch.Tensor:
        """KL(q || categorical prior) per cell."""
        log_q = torch.log_softmax(z_logits, dim=-1)
        return (log_q.exp() * (log_q - torch.log_softmax(prior_logit, dim=-1))).sum(-1)

    def prior_log_probs(self, prior_logit: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Log p(level) under the prior."""
        return (states * torch.log_softmax(prior_logit, dim=-1)).sum(-1)

    def is_collapsed(self, z_prob: np.ndarray, share: float) -> bool:
        """Whether one level holds more than ``share`` of the cells.

        Unused levels are allowed: the prior empties the levels the data do not need.
        """
        means = np.asarray(z_prob, dtype=float).mean(axis=0)
        return bool(means.size and means.max() > share)

    @staticmethod
    def design_columns(z: np.ndarray) -> np.ndarray:
        """The levels but the first (reference coding beside the GLM's intercept)."""
        return z[:, 1:]

    allows_flips = False  # a level can be renamed, not negated

    @staticmethod
    def hard(z_prob: np.ndarray) -> np.ndarray:
        """The most likely level, one-hot."""
        return np.eye(z_prob.shape[1])[z_prob.argmax(1)]

    @staticmethod
    def state_labels(states: np.ndarray) -> list[str]:
        """``"level 0"``, ``"level 1"``, ..."""
        return [f"level {j}" for j in range(len(states))]

    @staticmethod
    def informative_columns(z_prob: np.ndarray) -> np.ndarray:
        """The levels in use: levels the data do not need stay empty, which is no failure."""
        return z_prob[:, z_prob.std(0) >= 1e-3]


#: States of the ``"normal"`` latent's grid (see :class:`NormalGridLatent`). Measured on the ``continuous``
#: scenario (seeds 1 and 2, 2026-12-07, before the shift correction of the effects): 11 states gave held-out
#: log-likelihoods 0.4-0.5 nats per cell below 21 and effects 0.54/0.59x naive against 0.49/0.52x; 31 states
#: gained 0.1-0.2 nats more but no accuracy (0.48/0.60x) at 1.5x the time of 21.
NORMAL_GRID_STATES = 21


class NormalGridLatent(CategoricalLatent):
    """One continuous confounder (a stress, cycle or severity score), marginalised exactly on a grid of values.

    Z is one column in both heads, as a continuous covariate would be: one coefficient per gene and one in the
    classifier. Its values are the ``NORMAL_GRID_STATES`` equal-probability quantiles of a standard normal
    (the midpoints of as many bins of equal mass), and the prior over them is learned (a softmax of
    ``prior_logit``, starting uniform: a discretised N(0, 1)). The generator's outputs are the logits of
    q(state | X, D, Y); the loss is the exact expectation over the states plus KL(q || prior), an ELBO, as for
    :class:`CategoricalLatent`. With a learned prior it holds Bernoulli 1 (two grid values with all the mass), so
    on a binary confounder it can only tie with it.

    Why: the categorical latent spends ``L - 1`` coefficients per gene on what is one direction when the
    confounder is continuous; measured on the ``continuous`` scenario, categorical 7 was chosen and reached
    0.67x the naive effect RMSE (docs/model.md). Z-hat is the posterior mean E[Z | X, D, Y] (soft) and
    there is no thresholded form: ``hard`` keeps it.
    """

    distribution = "normal"

    def __init__(self, n_latent: int, n_states: int = NORMAL_GRID_STATES):
        if n_latent != 1:
            msg = (
                f"latent_distribution='normal' is one continuous confounder on a grid of {n_states} values: "
                f"n_latent must be 1, got {n_latent}."
            )
            raise ValueError(msg)
        if n_states < 3:
            msg = f"The normal latent's grid needs at least 3 states, got {n_states}."
            raise ValueError(msg)
        self.n_latent = n_latent
        self.n_states = n_states
        levels = (torch.arange(n_states, dtype=torch.float64) + 0.5) / n_states
        self._values = torch.special.ndtri(levels).to(torch.float32).unsqueeze(-1)  # (n_states, 1)

    @property
    def n_outputs(self) -> int:
        """One generator output and prior logit per grid state."""
        return self.n_states

    @property
    def n_columns(self) -> int:
        """Z is one column in the heads."""
        return 1

    def all_states(self) -> torch.Tensor:
        """The grid values, ``(n_states, 1)``: the midpoints in probability of equal-mass bins of N(0, 1)."""
        return self._values.clone()

    def probabilities(self, z_logits: torch.Tensor) -> torch.Tensor:
        """The posterior mean E[Z | ·], ``(n_obs_minibatch, 1)``."""
        return torch.softmax(z_logits, dim=-1) @ self._values.to(z_logits)

    def draw(self, z_logits: torch.Tensor, training: bool, temperature: float) -> torch.Tensor:
        """The posterior mean (a continuous Z-hat is not rounded)."""
        return self.probabilities(z_logits)

    def log_weights(self, z_logits: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Log q(state | ·) of each cell and grid state (the states in the order of :meth:`all_states`)."""
        return torch.log_softmax(z_logits, dim=-1)

    def prior_log_probs(self, prior_logit: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Log p(state) under the learned prior, ``(n_states,)``."""
        return torch.log_softmax(prior_logit, dim=-1)

    def is_collapsed(self, z_prob: np.ndarray, share: float) -> bool:
        """Whether the posterior means of (almost) all cells are one value: their SD below 0.05 prior SDs.

        ``share`` (the binary families' threshold) does not apply to a continuous Z-hat.
        """
        z_prob = np.asarray(z_prob, dtype=float)
        return bool(z_prob.size and z_prob.std(axis=0).max() < 0.05)

    @staticmethod
    def design_columns(z: np.ndarray) -> np.ndarray:
        """The posterior mean, one column."""
        return z

    allows_flips = True  # the sign of a continuous factor is arbitrary (1 - z and -z differ by an intercept)

    @staticmethod
    def hard(z_prob: np.ndarray) -> np.ndarray:
        """A continuous Z-hat has no thresholded form: the posterior mean itself."""
        return z_prob

    @staticmethod
    def state_labels(states: np.ndarray) -> list[str]:
        """``"z=-1.69"``, ..., the grid values."""
        return [f"z={float(v[0]):+.2f}" for v in states]

    @staticmethod
    def informative_columns(z_prob: np.ndarray) -> np.ndarray:
        """The posterior mean."""
        return z_prob


LATENT_FAMILIES: dict[str, type[BernoulliLatent]] = {
    family.name: family for family in (MarginalBernoulli, BernoulliLatent, GumbelBernoulli, ContinuousBernoulli)
}


LATENT_DISTRIBUTIONS = ("bernoulli", "categorical", "normal")


def make_latent(
    relaxation: Relaxation, n_latent: int, distribution: LatentDistribution = "bernoulli"
) -> BernoulliLatent:
    """The latent object of a ``relaxation`` and ``distribution`` (a ValueError names the valid ones)."""
    if distribution not in LATENT_DISTRIBUTIONS:
        msg = f"`latent_distribution` must be one of {list(LATENT_DISTRIBUTIONS)}, got {distribution!r}."
        raise ValueError(msg)
    if distribution in ("categorical", "normal"):
        if relaxation != "marginal":
            msg = (
                f"latent_distribution={distribution!r} is marginalised exactly over its states: it needs "
                f"relaxation='marginal', got {relaxation!r}."
            )
            raise ValueError(msg)
        return CategoricalLatent(n_latent) if distribution == "categorical" else NormalGridLatent(n_latent)
    if relaxation not in LATENT_FAMILIES:
        msg = f"`relaxation` must be one of {list(LATENT_FAMILIES)}, got {relaxation!r}."
        raise ValueError(msg)
    return LATENT_FAMILIES[relaxation](n_latent)
