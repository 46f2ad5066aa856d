"""ZConfTrainingPlan: alternating predictor and generator phases with one optimizer per sub-network."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scvi.module.base import BaseModuleClass

from zconf._constants import LOSS_SCALES, PHASE_SUBNETS, REGISTRY_KEYS, SUBNETS
from zconf.glm import design_matrix, fit_logistic_glm, fit_nb_glm

from ._manual import ManualOptimizationPlan, NonFiniteLossError, check_nonnegative
from ._schedule import SCHEDULES, ConvergencePhases, phase_for_epoch, phase_for_step

__all__ = ["NonFiniteLossError", "ZConfTrainingPlan"]


def _check_schedule(schedule, predictor_epochs, generator_epochs, predictor_steps, loss_scale) -> None:
    """Raise a ValueError naming a schedule, phase length or loss scale that cannot run."""
    if schedule not in SCHEDULES:
        msg = f"`schedule` must be one of {list(SCHEDULES)}, got {schedule!r}."
        raise ValueError(msg)
    if schedule != "converge":
        phase_for_epoch(0, predictor_epochs, generator_epochs, schedule)  # validates the lengths
    if predictor_steps is not None:
        phase_for_step(0, predictor_steps)  # validates K
    if loss_scale not in LOSS_SCALES:
        msg = f"`loss_scale` must be one of {list(LOSS_SCALES)}, got {loss_scale!r}."
        raise ValueError(msg)


class ZConfTrainingPlan(ManualOptimizationPlan):
    """Manual-optimisation plan that alternates predictor and generator phases.

    Parameters
    ----------
    module
        A :class:`~zconf.module.ZConfModule`.
    lr
        Learning rate of the generator.
    lr_classifier
        Learning rate of the classifier (and the prior of Z); ``None`` uses ``lr_heads``.
    lr_nb_head
        Learning rate of the NB head; ``None`` uses ``lr_heads``.
    lr_heads
        Default learning rate of both heads. Linear GLM heads tolerate a larger rate than the generator.
    weight_decay
        Weight decay of the generator.
    weight_decay_heads
        Weight decay of both heads.
    eps
        Adam's epsilon. scvi-tools' default (0.01) damps the small per-parameter gradients of the
        linear heads; 1e-8 is Adam's own default.
    schedule
        ``"alternating"`` (default, the user's design): phases of ``predictor_epochs`` and
        ``generator_epochs`` epochs. ``"converge"``: each phase lasts until its loss stops improving
        (``patience``, ``convergence_tol``), at most ``max_phase_epochs``. ``"joint"``: all three sub-networks
        updated from one summed loss, as a comparison point.
    predictor_epochs, generator_epochs
        Phase lengths in epochs for the alternating schedule.
    predictor_steps
        K: alternate at step level instead, K predictor minibatch steps per generator step (overrides the
        epoch-level phase lengths). ``None`` (default) alternates by epoch.
    patience, max_phase_epochs, convergence_tol
        Stopping rule of the ``"converge"`` schedule.
    reinit_heads
        Re-initialise the classifier and NB head (and their optimizer state) at the start of each predictor
        phase, as the notebook did; the default ``False`` warm-starts them.
    bce_weight, nb_weight, prior_weight
        Weights of the classifier's BCE, the NB negative log-likelihood and the prior (KL) term. The prior
        weight is fixed: scvi-tools' KL warm-up (``n_epochs_kl_warmup``) does not apply to it.
    kl_weight
        Deprecated name of ``prior_weight``.
    loss_scale
        ``"cell"`` (default): both likelihoods per cell, the NB summed over genes (the model's log-likelihood).
        ``"element"``: the NB divided by the number of genes (per-element normalisation). Measured to make
        Z-hat track D (see the benchmarks), so use it only for comparison.
    dbpr_weight
        Weight of the deviance-based partial R² reward in the generator's loss:
        ``loss − dbpr_weight · (dbpr_treatment_weight · w' + mean_g v'_g)``. Subtracting rewards Z-hat for
        explaining deviance beyond the baselines without Z (the notebook added it, which penalised
        improvement). ``0`` (default) turns it off. When it is on, the plan fits the baselines (logistic
        D ~ [1, X] and per-gene NB Y ~ [1, X, D] by IRLS) on the training cells before the first step.
    dbpr_treatment_weight
        Separate weight of w', which rewards Z-hat for predicting D and can push it to copy D.
    temperature_start, temperature_end
        Gumbel-sigmoid temperature, annealed geometrically over training (relaxation ``"gumbel"``).
    **kwargs
        Passed to :class:`scvi.train.TrainingPlan`.
    """

    def __init__(
        self,
        module: BaseModuleClass,
        *,
        lr: float = 1e-3,
        lr_classifier: float | None = None,
        lr_nb_head: float | None = None,
        lr_heads: float = 1e-2,
        weight_decay: float = 0.0,
        weight_decay_heads: float = 0.0,
        eps: float = 1e-8,
        schedule: str = "alternating",
        predictor_epochs: int = 1,
        generator_epochs: int = 1,
        predictor_steps: int | None = None,
        patience: int = 2,
        max_phase_epochs: int = 10,
        convergence_tol: float = 1e-3,
        reinit_heads: bool = False,
        bce_weight: float = 1.0,
        nb_weight: float = 1.0,
        prior_weight: float = 1.0,
        kl_weight: float | None = None,
        loss_scale: str = "cell",
        dbpr_weight: float = 0.0,
        dbpr_treatment_weight: float = 1.0,
        temperature_start: float = 2.0,
        temperature_end: float = 0.5,
        **kwargs,
    ):
        _check_schedule(schedule, predictor_epochs, generator_epochs, predictor_steps, loss_scale)
        if kl_weight is not None:
            warnings.warn("`kl_weight` is deprecated; use `prior_weight`.", FutureWarning, stacklevel=2)
            check_nonnegative(kl_weight=kl_weight)
            prior_weight = kl_weight
        # the loss weights, named once: checked here, then passed on as the module's loss keywords
        weights = {"bce_weight": bce_weight, "nb_weight": nb_weight, "prior_weight": prior_weight}
        weights |= {"dbpr_weight": dbpr_weight, "dbpr_treatment_weight": dbpr_treatment_weight}
        check_nonnegative(
            **{"lr": lr, "lr_heads": lr_heads, "lr_classifier": lr_classifier, "lr_nb_head": lr_nb_head},
            **{"weight_decay": weight_decay, "weight_decay_heads": weight_decay_heads},
            **weights,
        )
        if temperature_start <= 0 or temperature_end <= 0:
            msg = f"Temperatures must be > 0, got {temperature_start} and {temperature_end}."
            raise ValueError(msg)
        super().__init__(module, lr=lr, weight_decay=weight_decay, eps=eps, loss_scale=loss_scale, **weights, **kwargs)
        self.schedule = schedule
        self.predictor_epochs, self.generator_epochs = predictor_epochs, generator_epochs
        self.predictor_steps = predictor_steps
        self.reinit_heads = reinit_heads
        self.temperature_start, self.temperature_end = temperature_start, temperature_end
        self._convergence = (
            ConvergencePhases(patience, max_phase_epochs, convergence_tol) if schedule == "converge" else None
        )
        self._n_steps = 0
        # the phase the module's sub-networks are frozen for: set_phase walks every parameter (0.09 ms a step at
        # 100 genes, ~3% of the step), so it runs when the phase changes; reset each epoch
        self._module_phase = None
        self._epoch_loss_sum, self._epoch_batches = 0.0, 0
        self._previous_epoch_phase: str | None = None
        self.subnet_lr = {
            "generator": lr,
            "classifier": lr_heads if lr_classifier is None else lr_classifier,
            "nb_head": lr_heads if lr_nb_head is None else lr_nb_head,
        }
        self.subnet_weight_decay = {
            "generator": weight_decay,
            "classifier": weight_decay_heads,
            "nb_head": weight_decay_heads,
        }

    @property
    def phase(self) -> str:
        """Phase of the current epoch (the epoch-level schedules); always the predictor's without Z.

        A model without Z (``n_latent=0``) has no generator to train, so each of its steps trains the heads: half
        the steps of an alternating schedule give the same head updates (the candidate without Z of
        ``n_latent="auto"`` on large data, where it is not fitted exactly).
        """
        if self.module.n_latent == 0:
            return "predictor"
        if self._convergence is not None:
            return self._convergence.phase
        return phase_for_epoch(self.current_epoch, self.predictor_epochs, self.generator_epochs, self.schedule)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One Adam optimizer per sub-network, in ``SUBNETS`` order."""
        groups = self.module.subnet_parameters()
        return [
            self.make_optimizer(groups[name], self.subnet_lr[name], self.subnet_weight_decay[name]) for name in SUBNETS
        ]

    def on_train_start(self) -> None:
        """Fit the DBPR baselines on the training cells when the reward is on and they are not fitted yet."""
        if self.loss_kwargs.get("dbpr_weight", 0) > 0 and not bool(self.module.baselines_fitted):
            self.fit_baselines(self.module, self.trainer.train_dataloader)

    @staticmethod
    @torch.no_grad()
    def fit_baselines(module: BaseModuleClass, loader) -> None:
        """Fit logistic D ~ [1, X] and per-gene NB Y ~ [1, X, D] by IRLS to convergence on ``loader``'s cells.

        The DBPR terms compare the heads against these baselines; they are stored in the module's buffers.
        """
        parts: dict[str, list] = {"y": [], "d": [], "x": [], "offset": []}
        for batch in loader:
            tensors = {key: value.cpu() for key, value in batch.items()}
            parts["y"].append(tensors[REGISTRY_KEYS.X_KEY].float())
            parts["d"].append(tensors[REGISTRY_KEYS.TREATMENT_KEY].squeeze(-1).float())
            parts["x"].append(module.design(tensors).cpu())
            log_library = module.log_library(tensors)
            if log_library is not None:
                parts["offset"].append(log_library.squeeze(-1))
        y, d, x = (torch.cat(parts[key]).numpy() for key in ("y", "d", "x"))
        offset = torch.cat(parts["offset"]).numpy() if parts["offset"] else None
        d_fit = fit_logistic_glm(d, design_matrix(x).matrix)
        nb_fit = fit_nb_glm(y, design_matrix(x, d).matrix, offset=offset)
        module.set_baselines(d_fit.coef[0], nb_fit.coef, np.asarray(nb_fit.dispersion))

    def on_train_epoch_start(self) -> None:
        """Anneal the Gumbel temperature; re-initialise the heads when a predictor phase starts (if asked)."""
        max_epochs = max((self.trainer.max_epochs or 1) - 1, 1)
        fraction = min(self.current_epoch / max_epochs, 1.0)
        self.module.temperature = self.temperature_start * (self.temperature_end / self.temperature_start) ** fraction
        phase = self.phase if self.predictor_steps is None else None
        if self.reinit_heads and phase == "predictor" and self._previous_epoch_phase == "generator":
            optimizers = self.optimizers()
            for name in PHASE_SUBNETS["predictor"]:
                getattr(self.module, name).linear.reset_parameters()
                optimizers[SUBNETS.index(name)].optimizer.state.clear()
        self._previous_epoch_phase = phase
        self._module_phase = None
        self._epoch_loss_sum, self._epoch_batches = 0.0, 0

    def on_train_epoch_end(self) -> None:
        """Log the epoch's metrics; advance the "until convergence" schedule with the epoch's mean loss."""
        self.log_accumulated("train")
        if self._convergence is not None and self._epoch_batches:
            self._convergence.update(self._epoch_loss_sum / self._epoch_batches)

    def on_train_end(self) -> None:
        """Leave every sub-network trainable again."""
        self.module.set_phase(None)

    def _check_finite(self, loss_output, phase: str) -> None:
        # the individual terms first, so that the message names the one that broke
        terms = {**loss_output.extra_metrics, "prior (KL)": loss_output.kl_local_sum, "total": loss_output.loss}
        self.check_finite(terms, phase)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """One forward and one backward; step only the optimizers of the active sub-networks."""
        by_step = self.predictor_steps is not None and self.module.n_latent > 0
        phase = phase_for_step(self._n_steps, self.predictor_steps) if by_step else self.phase
        self._n_steps += 1
        if phase != self._module_phase:
            self.module.set_phase(phase)
            self._module_phase = phase
        optimizers = self.optimizers()
        active = [optimizers[SUBNETS.index(name)] for name in PHASE_SUBNETS[phase]]
        loss_kwargs = {**self.loss_kwargs, "dbpr_active": phase != "predictor"}
        _, _, loss_output = self.forward(batch, loss_kwargs=loss_kwargs)
        self._check_finite(loss_output, phase)
        self.step(loss_output.loss, active)  # one backward through one graph: no retain_graph
        loss_value = float(loss_output.loss.detach())
        self._epoch_loss_sum += loss_value if math.isfinite(loss_value) else 0.0
        self._epoch_batches += 1
        self.accumulate(loss_output, train_loss=loss_output.loss, generator_phase=float(phase != "predictor"))
