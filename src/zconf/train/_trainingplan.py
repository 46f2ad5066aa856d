"""ZConfTrainingPlan: alternating predictor and generator phases with one optimizer per sub-network."""

from __future__ import annotations

import torch
from scvi.module.base import BaseModuleClass
from scvi.train import TrainingPlan

from zconf._constants import PHASE_SUBNETS, SUBNETS

from ._schedule import phase_for_epoch


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss stops being finite; the message names the phase, term and epoch."""


class ZConfTrainingPlan(TrainingPlan):
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
    predictor_epochs
        Epochs per predictor phase (generator frozen; classifier and NB head minimise their own losses).
    generator_epochs
        Epochs per generator phase (heads frozen; the generator minimises the combined loss through them).
    schedule
        ``"alternating"`` (the user's design) or ``"joint"`` (all three updated from one loss, for comparison).
    bce_weight, nb_weight, kl_weight
        Weights of the classifier's BCE, the NB negative log-likelihood and the prior (KL) term.
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
        predictor_epochs: int = 1,
        generator_epochs: int = 1,
        schedule: str = "alternating",
        bce_weight: float = 1.0,
        nb_weight: float = 1.0,
        kl_weight: float = 1.0,
        **kwargs,
    ):
        phase_for_epoch(0, predictor_epochs, generator_epochs, schedule)  # validates
        rates = {"lr": lr, "lr_heads": lr_heads, "lr_classifier": lr_classifier, "lr_nb_head": lr_nb_head}
        for name, value in {
            **rates,
            "weight_decay": weight_decay,
            "weight_decay_heads": weight_decay_heads,
        }.items():
            if value is not None and value < 0:
                msg = f"`{name}` must be >= 0, got {value}."
                raise ValueError(msg)
        for name, value in {"bce_weight": bce_weight, "nb_weight": nb_weight, "kl_weight": kl_weight}.items():
            if value < 0:
                msg = f"`{name}` must be >= 0, got {value}."
                raise ValueError(msg)
        kwargs.setdefault("n_epochs_kl_warmup", None)
        super().__init__(
            module,
            lr=lr,
            weight_decay=weight_decay,
            eps=eps,
            bce_weight=bce_weight,
            nb_weight=nb_weight,
            **kwargs,
        )
        # The prior term has its own fixed weight: TrainingPlan's KL warm-up does not apply here.
        self.loss_kwargs["kl_weight"] = kl_weight
        self.automatic_optimization = False
        self.predictor_epochs = predictor_epochs
        self.generator_epochs = generator_epochs
        self.schedule = schedule
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
    def kl_weight(self) -> float:
        """Fixed weight of the prior term (no warm-up)."""
        return self.loss_kwargs.get("kl_weight", 1.0) if hasattr(self, "loss_kwargs") else 1.0

    @property
    def phase(self) -> str:
        """Phase of the current epoch."""
        return phase_for_epoch(self.current_epoch, self.predictor_epochs, self.generator_epochs, self.schedule)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One Adam optimizer per sub-network, in ``SUBNETS`` order."""
        groups = self.module.subnet_parameters()
        return [
            torch.optim.Adam(
                groups[name],
                lr=self.subnet_lr[name],
                eps=self.eps,
                weight_decay=self.subnet_weight_decay[name],
            )
            for name in SUBNETS
        ]

    def on_train_epoch_start(self) -> None:
        """Freeze the sub-networks the epoch's phase does not train."""
        self.module.set_phase(self.phase)

    def on_train_end(self) -> None:
        """Leave every sub-network trainable again."""
        self.module.set_phase(None)

    def _check_finite(self, loss_output) -> None:
        terms = {
            "total": loss_output.loss,
            **loss_output.extra_metrics,
            "prior (KL)": loss_output.kl_local_sum,
        }
        for name, value in terms.items():
            if not torch.isfinite(value).all():
                msg = (
                    f"Non-finite {name} loss in the {self.phase} phase at epoch {self.current_epoch}. "
                    "Check the counts for extreme values, or lower the learning rates (plan_kwargs)."
                )
                raise NonFiniteLossError(msg)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """One forward and one backward; step only the optimizers of the active sub-networks."""
        phase = self.phase
        optimizers = self.optimizers()
        active = [optimizers[SUBNETS.index(name)] for name in PHASE_SUBNETS[phase]]
        _, _, loss_output = self.forward(batch, loss_kwargs=self.loss_kwargs)
        self._check_finite(loss_output)
        for opt in active:
            opt.zero_grad()
        self.manual_backward(loss_output.loss)  # one backward through one graph: no retain_graph
        for opt in active:
            opt.step()
        self.log("train_loss", loss_output.loss, on_epoch=True, on_step=False, prog_bar=True)
        self.log("generator_phase", float(phase != "predictor"), on_epoch=True, on_step=False)
        self.compute_and_log_metrics(loss_output, self.train_metrics, "train")
