"""ZConfModule: the generator, classifier and NB head wired together (pure torch, no AnnData)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data

from zconf._constants import (
    GENERATOR_INPUTS,
    MODULE_KEYS,
    PHASE_SUBNETS,
    REGISTRY_KEYS,
    SUBNETS,
    Y_TRANSFORMS,
)

from ._components import Generator, NBHead, TreatmentClassifier
from ._latent import MAX_MARGINAL_LATENT, LatentDistribution, Relaxation, make_latent
from ._losses import bernoulli_nll, nb_deviance, nb_state_log_likelihoods

__all__ = ["MAX_MARGINAL_LATENT", "ZConfModule"]


def _check_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        msg = f"`{name}` must be one of {list(choices)}, got {value!r}."
        raise ValueError(msg)


def _levels_beyond_first(n_continuous: int, n_cats_per_cov: Sequence[int], dropped: int) -> list[int]:
    """Positions in :meth:`ZConfModule.design` of each categorical covariate's levels beyond its first."""
    index, start = [], n_continuous
    for n_cat in n_cats_per_cov:
        width = n_cat - dropped
        index += list(range(start + 1 - dropped, start + width))
        start += width
    return index


class ZConfModule(BaseModuleClass):
    """Infers a binary confounder Z from (X, D, Y) and models D ~ [X, Z] and Y ~ [X, D, Z].

    Parameters
    ----------
    n_input
        Number of genes.
    n_continuous_cov
        Number of continuous covariates (used as they are).
    n_cats_per_cov
        Number of categories of each categorical covariate (one-hot, first level dropped
        when the heads have an intercept, so the design stays full rank).
    n_hidden
        Hidden units of the generator.
    n_latent
        Number of binary confounders.
    relaxation
        How the losses treat the binary Z:

        * ``"marginal"``: the exact expectation over the 2**n_latent states of Z under the generator's
          probabilities q(Z | ·), plus KL(q || Bernoulli prior): a negative ELBO, so the alternating
          schedule is variational EM (predictor phases are M-steps, generator phases E-steps). The
          prior P(Z=1) is learned in the predictor phases.
        * ``"straight_through"``: the notebook's hard 0/1 Z-hat in the forward pass with the sigmoid's
          gradient, and no prior term.
        * ``"gumbel"``: a Gumbel-sigmoid sample with temperature ``temperature`` (annealed by the training
          plan), binarised straight-through in the forward pass; deterministic probabilities at inference.
        * ``"continuous"``: the sigmoid probabilities themselves enter the heads.
    latent_distribution
        ``"bernoulli"``: ``n_latent`` binary factors, additive in the heads. ``"categorical"``: one factor with
        ``n_latent`` levels (softmax generator outputs, one-hot Z), marginalised exactly over its levels
        (needs ``relaxation="marginal"``). ``"normal"``: one continuous factor (``n_latent=1``), one column in
        the heads, marginalised on a grid of values (:class:`~zconf.module._latent.NormalGridLatent`).
    intercept
        Whether the classifier and the NB head have an intercept.
    fixed_dispersion
        Known per-gene NB dispersions α; ``None`` learns them.
    y_transform
        How counts enter the generator: ``"log1p"``, raw ``"counts"`` (the notebook), or
        ``"log1p_normalized"`` (log1p of counts scaled to 10⁴ per cell).
    generator_inputs
        Which of ``"covariates"``, ``"treatment"``, ``"counts"`` the generator sees.
    use_size_factor
        Whether a registered size factor enters the NB head as a log offset (it takes precedence).
    use_observed_lib_size
        Without a size factor, whether the log of each cell's total count enters the NB head as an offset
        (scVI's ``use_observed_lib_size``). ``False`` leaves sequencing depth for the covariates or Z-hat.
    compositional_latent
        With the observed library as offset, whether Z's effects are renormalised so that Z-hat does not change a
        cell's expected library (:meth:`_renormalise_latent`).
    treatment_interactions
        Whether the NB head has a D x level column for each level beyond the first of every categorical
        covariate (:meth:`interaction_columns`): the treatment's effect on a gene may differ between cell types,
        and a latent state need not stand in for that difference (``ZConf``'s ``treatment_interactions``).
    """

    def __init__(
        self,
        n_input: int,
        *,
        n_continuous_cov: int = 0,
        n_cats_per_cov: Sequence[int] | None = None,
        n_hidden: int = 128,
        n_latent: int = 1,
        relaxation: Relaxation = "marginal",
        latent_distribution: LatentDistribution = "bernoulli",
        intercept: bool = True,
        fixed_dispersion: torch.Tensor | None = None,
        y_transform: str = "log1p",
        generator_inputs: Sequence[str] = GENERATOR_INPUTS,
        use_size_factor: bool = False,
        use_observed_lib_size: bool = False,
        compositional_latent: bool = False,
        treatment_interactions: bool = False,
    ):
        super().__init__()
        self.latent = make_latent(relaxation, n_latent, latent_distribution)  # validates the choice and the size
        _check_choice("y_transform", y_transform, Y_TRANSFORMS)
        for name in generator_inputs:
            _check_choice("generator_inputs", name, GENERATOR_INPUTS)
        if "counts" not in generator_inputs:
            msg = f"`generator_inputs` must include 'counts' (Z is inferred from Y), got {list(generator_inputs)}."
            raise ValueError(msg)
        if n_hidden < 1:
            msg = f"`n_hidden` must be >= 1, got n_hidden={n_hidden}."
            raise ValueError(msg)
        self.n_input = n_input
        self.n_latent = n_latent
        self.relaxation = relaxation
        self.latent_distribution = latent_distribution
        self.y_transform = y_transform
        self.generator_inputs = tuple(generator_inputs)
        self.use_size_factor = use_size_factor
        self.use_observed_lib_size = use_observed_lib_size
        self.compositional_latent = compositional_latent
        self.intercept = intercept
        self.n_cats_per_cov = list(n_cats_per_cov or [])
        self.n_continuous_cov = n_continuous_cov
        drop = 1 if intercept else 0
        n_cov = n_continuous_cov + sum(max(n - drop, 0) for n in self.n_cats_per_cov)
        self.n_covariates = n_cov
        self.treatment_interactions = treatment_interactions
        #: design columns of the categorical levels beyond each covariate's first (D x these enter the NB head)
        self.interaction_index = (
            _levels_beyond_first(n_continuous_cov, self.n_cats_per_cov, drop) if treatment_interactions else []
        )
        self.n_interactions = len(self.interaction_index)

        n_gen_in = (
            n_input
            + (n_cov if "covariates" in self.generator_inputs else 0)
            + (1 if "treatment" in self.generator_inputs else 0)
        )
        n_columns = self.latent.n_columns  # Z's columns in the heads (one for a normal latent on its grid)
        self.generator = Generator(n_gen_in, self.latent.n_outputs, n_hidden)
        self.classifier = TreatmentClassifier(n_cov, n_columns, intercept=intercept)
        self.nb_head = NBHead(
            n_cov + self.n_interactions, n_columns, n_input, intercept=intercept, fixed_dispersion=fixed_dispersion
        )
        # Prior logit of P(Z=1): an M-step parameter, optimised with the classifier (the model of
        # "who is treated and why"), used only by the marginal relaxation.
        self.z_prior_logit = torch.nn.Parameter(torch.zeros(self.latent.n_outputs))
        #: Gumbel-sigmoid temperature, set each epoch by the training plan (relaxation="gumbel").
        self.temperature = 1.0
        # Baselines without Z for the DBPR terms (fitted by the model before training when used):
        # logistic D ~ [1, X] and per-gene NB Y ~ [1, X, D] with its dispersion.
        self.register_buffer("baseline_d_coef", torch.zeros(1 + n_cov))
        self.register_buffer("baseline_nb_coef", torch.zeros(n_input, 2 + n_cov))
        self.register_buffer("baseline_log_theta", torch.zeros(n_input))
        self.register_buffer("baselines_fitted", torch.tensor(False))
        self.register_buffer("states", self.latent.all_states())  # (n_states, latent.n_columns)

    # ------------------------------------------------------------------ parameter groups and phases
    def subnet_parameters(self) -> dict[str, list[torch.nn.Parameter]]:
        """Trainable parameters of each sub-network, keyed by the names in ``SUBNETS``."""
        return {
            "generator": list(self.generator.parameters()),
            "classifier": [*self.classifier.parameters(), self.z_prior_logit],
            "nb_head": list(self.nb_head.parameters()),
        }

    def set_phase(self, phase: str | None) -> None:
        """Freeze every sub-network the phase does not train; ``None`` unfreezes all.

        In a predictor phase the generator is frozen, so Z-hat carries no gradient; in a generator phase
        the heads are frozen, and gradients flow through them into the generator. One forward and one
        backward per step then suffice.
        """
        active = SUBNETS if phase is None else PHASE_SUBNETS[phase]
        for name, params in self.subnet_parameters().items():
            for param in params:
                param.requires_grad_(name in active)

    # ------------------------------------------------------------------ design and inputs
    def design(self, tensors: dict[str, torch.Tensor], reference_coding: bool | None = None) -> torch.Tensor:
        """Covariate design matrix X, shape ``(n_obs_minibatch, n_covariates)``.

        Categorical covariates are one-hot encoded; with ``reference_coding`` (default: when the heads have
        an intercept) the first level of each is dropped so that the design plus an intercept is full rank.
        """
        y = tensors[REGISTRY_KEYS.X_KEY]
        parts = [y.new_zeros(y.shape[0], 0)]
        if self.n_continuous_cov:
            parts.append(tensors[REGISTRY_KEYS.CONT_COVS_KEY].float())
        if self.n_cats_per_cov:
            drop = 1 if (self.intercept if reference_coding is None else reference_coding) else 0
            codes = tensors[REGISTRY_KEYS.CAT_COVS_KEY]
            for j, n_cat in enumerate(self.n_cats_per_cov):
                parts.append(F.one_hot(codes[:, j].long(), n_cat).float()[:, drop:])
        return torch.cat(parts, dim=-1)

    def interaction_columns(self, covariates, d):
        """The D x level columns of the NB head, ``(..., n_interactions)``: ``d`` times the categorical levels.

        Works on torch tensors and numpy arrays alike; ``covariates`` is :meth:`design`'s coding, ``d`` has its
        shape without the last axis.
        """
        return covariates[..., self.interaction_index] * d[..., None]

    def head_covariates(self, covariates: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """The NB head's covariate block: X, then the D x level columns when the head has them."""
        if not self.n_interactions:
            return covariates
        return torch.cat([covariates, self.interaction_columns(covariates, d)], dim=-1)

    def _get_inference_input(self, tensors: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        return {
            MODULE_KEYS.Y_KEY: tensors[REGISTRY_KEYS.X_KEY],
            MODULE_KEYS.D_KEY: tensors[REGISTRY_KEYS.TREATMENT_KEY].squeeze(-1).float(),
            MODULE_KEYS.COVARIATES_KEY: self.design(tensors),
        }

    def _get_generative_input(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict[str, torch.Tensor], **kwargs
    ) -> dict[str, torch.Tensor | None]:
        return {
            MODULE_KEYS.Z_KEY: inference_outputs[MODULE_KEYS.Z_KEY],
            MODULE_KEYS.D_KEY: tensors[REGISTRY_KEYS.TREATMENT_KEY].squeeze(-1).float(),
            MODULE_KEYS.COVARIATES_KEY: self.design(tensors),
            MODULE_KEYS.LOG_LIBRARY_KEY: self.log_library(tensors),
        }

    def log_library(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The NB head's ``(n_obs_minibatch, 1)`` log offset: the registered size factor, the observed library, or none.

        The observed library is each cell's total count (at least 1), as in scVI and in every count GLM's
        normalisation; without it, depth is the strongest factor shared by all genes and Z-hat becomes depth.
        """
        if self.use_size_factor and REGISTRY_KEYS.SIZE_FACTOR_KEY in tensors:
            return torch.log(tensors[REGISTRY_KEYS.SIZE_FACTOR_KEY].float())
        if self.use_observed_lib_size:
            return torch.log(tensors[REGISTRY_KEYS.X_KEY].float().sum(-1, keepdim=True).clamp_min(1.0))
        return None

    def _transform_counts(self, y: torch.Tensor) -> torch.Tensor:
        if self.y_transform == "counts":
            return y
        if self.y_transform == "log1p":
            return torch.log1p(y)
        library = y.sum(-1, keepdim=True).clamp_min(1.0)
        return torch.log1p(y / library * 1e4)

    # ------------------------------------------------------------------ inference and generative
    @auto_move_data
    def inference(self, y: torch.Tensor, d: torch.Tensor, covariates: torch.Tensor) -> dict[str, torch.Tensor]:
        """Generator pass: Z logits, probabilities and the straight-through hard Z-hat."""
        inputs = []
        if "covariates" in self.generator_inputs:
            inputs.append(covariates)
        if "treatment" in self.generator_inputs:
            inputs.append(d.unsqueeze(-1))
        inputs.append(self._transform_counts(y))
        z_logits = self.generator(torch.cat(inputs, dim=-1))  # (n_obs_minibatch, n_latent)
        z_prob = self.latent.probabilities(z_logits)
        z = self.latent.draw(z_logits, self.training, self.temperature)
        return {MODULE_KEYS.Z_LOGITS_KEY: z_logits, MODULE_KEYS.Z_PROB_KEY: z_prob, MODULE_KEYS.Z_KEY: z}

    @auto_move_data
    def generative(
        self,
        z: torch.Tensor,
        d: torch.Tensor,
        covariates: torch.Tensor,
        log_library: torch.Tensor | None = None,
        states: bool | None = None,
    ) -> dict[str, torch.Tensor]:
        """Heads evaluated at the states the latent asks for: every state (marginal) or Z-hat.

        ``states=True`` evaluates every state and ``False`` Z-hat only, whatever the relaxation.

        Returns ``d_logit`` ``(n_obs_minibatch, n_states)`` and ``log_mean``
        ``(n_obs_minibatch, n_states, n_vars)``; ``n_states`` is 1 at Z-hat.
        """
        enumerated = self.latent.enumerates if states is None else bool(states)
        if enumerated:
            z_states = self.states.unsqueeze(0).expand(d.shape[0], -1, -1)
        else:
            z_states = z.unsqueeze(1)
        n_states = z_states.shape[1]
        cov = covariates.unsqueeze(1).expand(-1, n_states, -1)  # (n_obs_minibatch, n_states, n_covariates)
        d_states = d.unsqueeze(1).expand(-1, n_states)  # (n_obs_minibatch, n_states)
        d_logit = self.classifier(cov, z_states)
        if enumerated:
            log_mean = self._enumerated_log_means(covariates, d, log_library)
        else:
            log_mean = self.nb_head(self.head_covariates(cov, d_states), d_states, z_states)
            if log_library is not None:
                if self.renormalises_latent:
                    log_mean = self._renormalise_latent(log_mean, z_states)
                log_mean = log_mean + log_library.unsqueeze(1)
        return {
            MODULE_KEYS.D_LOGIT_KEY: d_logit,
            MODULE_KEYS.LOG_MEAN_KEY: log_mean,
            MODULE_KEYS.STATES_KEY: z_states,
        }

    @property
    def renormalises_latent(self) -> bool:
        """Whether Z's part of the log-means is renormalised (:meth:`_renormalise_latent`)."""
        observed = self.use_observed_lib_size and not self.use_size_factor
        return self.compositional_latent and observed and self.n_latent > 0

    def _renormalise_latent(self, log_mean: torch.Tensor, z_states: torch.Tensor) -> torch.Tensor:
        """Subtract from each state's log-means the log change in expected library that Z's part makes.

        With the observed library as offset, the library is given, not modelled: a state that raises some genes
        lowers the share of all others, as scVI's softmax over genes says. Without this, Z enters the head as a
        multiplicative change of the expected library, which two factors cannot make additively (the log of a sum
        of their effects over genes has an interaction), and a 4-level categorical or a third binary factor
        fitted that interaction better than the two true factors: measured on the ``two_binary`` scenario, the
        4-level categorical beat Bernoulli 2 by 0.63 nats per cell (seed 8, in sample) with the plain offset, and
        renormalised it fell 4.2 nats per held-out cell below it (seed 1); Bernoulli 2 is chosen in 19 of 20
        seeds instead of 16 (``benchmarks/results/selection_summary_two_binary.md``). Only Z's part is
        renormalised, against the same cell without it, so the model without Z stays the per-gene GLM that IRLS
        fits exactly.

        ``log_mean`` is ``(n_obs_minibatch, n_states, n_vars)`` before the offset; ``z_states`` the states.
        """
        # Z's part of the first state only: the cell without Z is the same for all states (the matmul of every
        # state's part cost as much as the log-sum-exp)
        z_part = z_states[:, :1] @ self._z_weights().T  # (n_obs, 1, n_vars)
        without_z = torch.logsumexp(log_mean[:, :1] - z_part, dim=-1, keepdim=True)
        return log_mean - (torch.logsumexp(log_mean, dim=-1, keepdim=True) - without_z)

    def _enumerated_log_means(
        self, covariates: torch.Tensor, d: torch.Tensor, log_library: torch.Tensor | None
    ) -> torch.Tensor:
        """Log-means at every state of Z, ``(n_obs_minibatch, n_states, n_vars)``, from one pass of the head.

        Z enters the head additively and the states are the same for every cell, so the log-means are the cell's
        part without Z, ``(n_obs, n_vars)``, plus each state's part, ``(n_states, n_vars)``. The renormalisation
        (:meth:`_renormalise_latent`) is then log Σ_g softmax(cell part)_g exp(state part_g), a matrix product
        of the two exponentiated parts instead of two log-sum-exps over every state and gene. Equal to the head
        evaluated at the expanded states; measured at 128 x 2,000 with Bernoulli 1 on 1 thread (2026-12-07), the
        head and renormalisation took 5.9 ms forward and backward this way before, against 1.2 ms for the head
        alone. Each exponentiated part is shifted by its maximum, so the product underflows only when a state's
        part spans more than ~87 nats across genes beyond where the cell's part peaks (a diverged fit); it is
        kept finite there.
        """
        no_latent = covariates.new_zeros(d.shape[0], self.latent.n_columns)
        without_z = self.nb_head(self.head_covariates(covariates, d), d, no_latent)  # (n_obs, n_vars)
        state_part = self.states.to(without_z) @ self._z_weights().T  # (n_states, n_vars)
        if log_library is None:
            return without_z.unsqueeze(1) + state_part
        log_mean = (without_z + log_library).unsqueeze(1) + state_part  # the offset added over genes, not states
        if self.renormalises_latent:
            cell_peak = without_z.detach().amax(-1, keepdim=True)
            state_peak = state_part.detach().amax(-1, keepdim=True)  # (n_states, 1)
            cell_weights = (without_z - cell_peak).exp()
            state_ratios = cell_weights @ (state_part - state_peak).exp().T  # (n_obs, n_states)
            state_ratios = state_ratios.clamp_min(torch.finfo(log_mean.dtype).tiny)
            shift = state_ratios.log() - cell_weights.sum(-1, keepdim=True).log() + state_peak.T  # (n_obs, n_states)
            log_mean = log_mean.sub_(shift.unsqueeze(-1))  # in place: the sum's backward does not need it
        return log_mean

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fresh random initialisation of every sub-network and the prior (a restart)."""
        for module in self.modules():
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()
        self.z_prior_logit.zero_()
        if self.nb_head.learns_dispersion:
            self.nb_head.log_theta.zero_()

    @torch.no_grad()
    def initialize_intercepts(self, log_means: torch.Tensor, treated_fraction: float) -> None:
        """Start the heads' intercepts at the data's log mean counts and the logit of the treated fraction."""
        if not self.intercept:
            return
        self.nb_head.linear.bias.copy_(torch.as_tensor(log_means, dtype=torch.float32))
        treated = min(max(float(treated_fraction), 1e-3), 1 - 1e-3)
        self.classifier.linear.bias.fill_(math.log(treated / (1 - treated)))

    @torch.no_grad()
    def initialize_heads(self, d_coef, nb_coef, dispersion) -> None:
        """Set the heads' X and D coefficients (and intercepts) to a fit without Z; Z's stay as they are.

        ``d_coef`` is ``[intercept, X]`` of the logistic model of D and ``nb_coef``
        ``(n_vars, [intercept, X, D, D x levels])`` of the NB model (no intercept column when the heads have
        none), as :func:`zconf.glm.design_matrix` orders them; ``dispersion`` the NB dispersions α.
        """
        first = 1 if self.intercept else 0
        n_cov = self.n_covariates
        d_coef, nb_coef = torch.as_tensor(d_coef, dtype=torch.float32), torch.as_tensor(nb_coef, dtype=torch.float32)
        self.classifier.linear.weight[0, :n_cov] = d_coef[first:]
        # the head's input is [X, D x levels, D, Z] (NBHead: covariates, D, Z); the fit's [1, X, D, D x levels]
        slopes = nb_coef[:, first:]
        self.nb_head.linear.weight[:, :n_cov] = slopes[:, :n_cov]
        self.nb_head.linear.weight[:, n_cov : n_cov + self.n_interactions] = slopes[:, n_cov + 1 :]
        self.nb_head.linear.weight[:, n_cov + self.n_interactions] = slopes[:, n_cov]
        if self.intercept:
            self.classifier.linear.bias.fill_(float(d_coef[0]))
            self.nb_head.linear.bias.copy_(nb_coef[:, 0])
        self.initialize_dispersion(dispersion)

    def _z_weights(self) -> torch.Tensor:
        """The NB head's coefficients of the Z columns, ``(n_vars, n_latent)`` (after X and D)."""
        return self.nb_head.linear.weight[:, self.n_covariates + self.n_interactions + 1 :]

    @torch.no_grad()
    def z_log_fold_changes(self) -> torch.Tensor:
        """The NB head's effect of each Z-hat column on every gene's log mean, ``(n_vars, n_columns)``.

        Binary factors: their coefficients. A categorical latent: each level but the first against the first,
        as :meth:`~zconf.module._latent.CategoricalLatent.design_columns` codes it.
        """
        weights = self._z_weights().detach()
        return weights[:, 1:] - weights[:, :1] if self.latent_distribution == "categorical" else weights

    @torch.no_grad()
    def initialize_dispersion(self, dispersion) -> None:
        """Start learned NB dispersions α at the given values (``log θ = −log α``); fixed ones are kept."""
        if self.nb_head.learns_dispersion:
            self.nb_head.log_theta.copy_(-torch.log(torch.as_tensor(dispersion, dtype=torch.float32)))

    @torch.no_grad()
    def set_baselines(self, d_coef, nb_coef, dispersion) -> None:
        """Store the DBPR baselines without Z: logistic D ~ [1, X] and per-gene NB Y ~ [1, X, D]."""
        self.baseline_d_coef.copy_(torch.as_tensor(d_coef, dtype=torch.float32))
        self.baseline_nb_coef.copy_(torch.as_tensor(nb_coef, dtype=torch.float32))
        self.baseline_log_theta.copy_(-torch.log(torch.as_tensor(dispersion, dtype=torch.float32)))
        self.baselines_fitted.fill_(True)

    # ------------------------------------------------------------------ marginal likelihood
    def _state_log_terms(self, tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The log-prior ``(n_states,)``, log p(D | X, z) and log p(Y | X, D, z) ``(n_obs, n_states)`` per state."""
        d = tensors[REGISTRY_KEYS.TREATMENT_KEY].squeeze(-1).float()
        placeholder = {MODULE_KEYS.Z_KEY: d.new_zeros(d.shape[0], self.latent.n_columns)}
        generative_inputs = self._get_generative_input(tensors, placeholder)
        outputs = self.generative(**generative_inputs, states=True)
        y = tensors[REGISTRY_KEYS.X_KEY].float().to(d.device)
        log_d = -bernoulli_nll(outputs[MODULE_KEYS.D_LOGIT_KEY], d.unsqueeze(-1))  # (n_obs_minibatch, n_states)
        log_mean = outputs[MODULE_KEYS.LOG_MEAN_KEY]
        log_y = nb_state_log_likelihoods(y, log_mean, self.nb_head.clamped_log_theta(), integer_counts=True)
        log_prior = self.latent.prior_log_probs(self.z_prior_logit, self.states)  # (n_states,)
        return log_prior, log_d, log_y

    @torch.inference_mode()
    def marginal_log_likelihood(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Exact log p(D, Y | X) = log Σ_z p(z) p(D | X, z) p(Y | X, D, z) per cell, in nats.

        The sum runs over every state of Z under the learned prior; the generator plays no part, so a Z-hat
        that copies D cannot raise it. Returns ``(n_obs_minibatch,)``.
        """
        log_prior, log_d, log_y = self._state_log_terms(tensors)
        return torch.logsumexp(log_prior + log_d + log_y, dim=-1)

    @torch.inference_mode()
    def confounding_gain(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """What Z's link to the treatment adds to log p(D, Y | X), per cell, in nats: ``(n_obs_minibatch,)``.

        The model's likelihood against the same model with Z made independent of D given X:
        log p(D | X) + log Σ_z p(z) p(Y | X, D, z), where p(D | X) = Σ_z p(z) p(D | X, z) is the model's own
        propensity with Z averaged out. The difference is

            log Σ_z p(z | X, D) p(Y | X, D, z) − log Σ_z p(z) p(Y | X, D, z),

        that is, how much better the states' shares in the cell's own arm (p(z | X, D), from the classifier)
        explain its counts than their shares over both arms. It is exactly 0 when the classifier does not use Z,
        and its mean over held-out cells estimates the information that the states carry about who was treated:
        a state not linked to the treatment is not a confounder, however much of the counts it explains.
        """
        return self.marginal_and_gain(tensors)[:, 1]

    @torch.inference_mode()
    def marginal_and_gain(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """:meth:`marginal_log_likelihood` and :meth:`confounding_gain` from one evaluation of the states.

        Returns ``(n_obs_minibatch, 2)``, in double precision: the gain is a small difference of
        log-likelihoods of hundreds of nats. Scoring a candidate of ``n_latent="auto"`` needs both on the same
        cells; the heads' evaluation at every state is the costly part of each.
        """
        log_prior, log_d, log_y = (term.double() for term in self._state_log_terms(tensors))
        joint = torch.logsumexp(log_prior + log_d + log_y, dim=-1)
        independent = torch.logsumexp(log_prior + log_d, dim=-1) + torch.logsumexp(log_prior + log_y, dim=-1)
        return torch.stack([joint, joint - independent], dim=-1)

    # ------------------------------------------------------------------ loss
    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict[str, torch.Tensor],
        generative_outputs: dict[str, torch.Tensor],
        bce_weight: float = 1.0,
        nb_weight: float = 1.0,
        prior_weight: float = 1.0,
        loss_scale: str = "cell",
        dbpr_weight: float = 0.0,
        dbpr_treatment_weight: float = 1.0,
        dbpr_active: bool = True,
    ) -> LossOutput:
        """Per-cell objective, averaged over the minibatch.

        Both likelihoods are on their natural per-cell scale (NB summed over genes, BCE per cell):
        this is the log-likelihood of the generative model, and it is what makes copying D into Z-hat
        unrewarding under the marginal relaxation (the prior term then charges for the bits gained on D).

        Returns
        -------
        :class:`~scvi.module.base.LossOutput` with ``loss`` the weighted objective, ``reconstruction_loss``
        the weighted expected negative log-likelihood per cell, ``kl_local`` the prior term per cell, and
        ``extra_metrics`` ``classifier_loss`` (BCE) and ``nb_loss`` (NB NLL), both per cell.
        """
        y = tensors[REGISTRY_KEYS.X_KEY].float()
        d = tensors[REGISTRY_KEYS.TREATMENT_KEY].squeeze(-1).float()
        d_logit = generative_outputs[MODULE_KEYS.D_LOGIT_KEY]
        log_mean = generative_outputs[MODULE_KEYS.LOG_MEAN_KEY]
        nll_d = bernoulli_nll(d_logit, d.unsqueeze(-1))  # (n_obs_minibatch, n_states)
        nll_y = -nb_state_log_likelihoods(y, log_mean, self.nb_head.clamped_log_theta(), integer_counts=True)
        z_logits = inference_outputs[MODULE_KEYS.Z_LOGITS_KEY]
        weights = self.latent.state_weights(z_logits, generative_outputs[MODULE_KEYS.STATES_KEY])
        kl = self.latent.prior_term(z_logits, self.z_prior_logit)  # (n_obs_minibatch,)
        bce = (weights * nll_d).sum(-1)  # (n_obs_minibatch,)
        nb = (weights * nll_y).sum(-1)
        nb_scaled = nb / self.n_input if loss_scale == "element" else nb
        reconstruction = bce_weight * bce + nb_weight * nb_scaled
        loss = torch.mean(reconstruction + prior_weight * kl)
        extra = {"classifier_loss": bce.mean().detach(), "nb_loss": nb.mean().detach()}
        if dbpr_weight > 0:
            w_prime, v_prime = self.dbpr(tensors, generative_outputs, weights)
            extra["dbpr_treatment"], extra["dbpr_genes"] = w_prime.detach(), v_prime.mean().detach()
            if dbpr_active:  # a reward: higher partial R² lowers the generator's loss
                loss = loss - dbpr_weight * (dbpr_treatment_weight * w_prime + v_prime.mean())
        return LossOutput(loss=loss, reconstruction_loss=reconstruction, kl_local=kl, extra_metrics=extra)

    def dbpr(
        self, tensors: dict[str, torch.Tensor], generative_outputs: dict[str, torch.Tensor], weights: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Minibatch deviance-based partial R² of Z-hat against the baselines without Z.

        w' = 1 − dev(D | X, Z-hat) / dev(D | X) (McFadden) and v'_g = 1 − dev_g(Y | X, D, Z-hat) / dev_g(Y | X, D),
        with the heads' predictions (expected over Z under the marginal relaxation) and the baselines
        fitted before training; both NB deviances use the baseline's dispersion.
        """
        if not bool(self.baselines_fitted):
            msg = "DBPR terms need the baselines without Z; ZConf.train() fits them when dbpr_weight > 0."
            raise RuntimeError(msg)
        y = tensors[REGISTRY_KEYS.X_KEY].float()
        d = tensors[REGISTRY_KEYS.TREATMENT_KEY].squeeze(-1).float()
        cov = self.design(tensors)
        # the baselines' first coefficient is the intercept (zconf.glm.design_matrix order [1, X, D])
        d_logit0 = cov @ self.baseline_d_coef[1:] + self.baseline_d_coef[0]
        dev_d0 = 2 * bernoulli_nll(d_logit0, d).sum()
        dev_d1 = 2 * (weights * bernoulli_nll(generative_outputs[MODULE_KEYS.D_LOGIT_KEY], d.unsqueeze(-1))).sum()
        slopes = self.baseline_nb_coef[:, 1:]  # (n_vars, n_covariates + 1), the D column last
        log_mean0 = torch.cat([cov, d.unsqueeze(-1)], -1) @ slopes.T + self.baseline_nb_coef[:, 0]
        log_library = self.log_library(tensors)
        if log_library is not None:
            log_mean0 = log_mean0 + log_library
        dev_y0 = nb_deviance(y, log_mean0, self.baseline_log_theta).sum(0)  # (n_vars,)
        dev_y1 = (
            weights.unsqueeze(-1)
            * nb_deviance(y.unsqueeze(1), generative_outputs[MODULE_KEYS.LOG_MEAN_KEY], self.baseline_log_theta)
        ).sum((0, 1))
        w_prime = 1 - dev_d1 / dev_d0.clamp_min(1e-8)
        v_prime = 1 - dev_y1 / dev_y0.clamp_min(1e-8)
        return w_prime, v_prime

    def sample(self, *args, **kwargs):
        """Sampling new data is not part of ZConf; use :func:`zconf.data.simulate` for synthetic data."""
        msg = "ZConfModule does not sample new data; use zconf.data.simulate for synthetic counts."
        raise NotImplementedError(msg)
