"""PairedAdversarialPlan: two VAEs and a domain discriminator, by gradient reversal or by freezing and alternating."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scvi.module.base import BaseModuleClass

from zconf._constants import ADVERSARIAL_STRATEGIES, PAIRED_KEYS
from zconf.module import PAIRED_SUBNETS, grad_reverse

from ._manual import ManualOptimizationPlan, check_nonnegative
from ._schedule import linear_warmup, phase_in_cycle

#: Weight of the KL term of the ELBO (scvi-tools' ``max_kl_weight``). Measured with the encoder-agreement loss
#: on, seeds 0-2: on kang_distinct_3donor (9,517 cells, 100 genes) the weight 1 left the conditions apart
#: (mixing: GRL 0.81, alternate 0.86) and 0.5 mixed them (0.55, 0.59), with the 15-NN cell-type accuracy at
#: 0.667 for both (1: 0.664, 0.643); on kang_muscat_2donor (1,556 cells) 0.5 gave mixing 0.536 and 0.557 and
#: 15-NN 0.909 and 0.912 (SCVI: 0.927). Without the agreement loss, 0.5 mixed as well but kept less structure
#: (kang_distinct_3donor 15-NN: GRL 0.599, alternate 0.627).
DEFAULT_KL_WEIGHT = 0.5
#: Weight of :meth:`~zconf.module.PairedVAEModule.agreement_loss`. Measured on kang_distinct_3donor, seeds 0-2,
#: KL weight 0.5: 0 let the encoders swap cell types between the conditions on some seeds (15-NN label
#: transfer from one condition to the other 0.29-0.61; 15-NN GRL 0.599, alternate 0.627); 1 aligned them on
#: every seed (transfer 0.64-0.66; 15-NN 0.667 and 0.667); 0.3 a little less (15-NN 0.654, 0.660); 3 mixed
#: less (GRL 0.69, alternate 0.78); 10 (KL 1) collapsed the latent space to 1-2 active dimensions.
DEFAULT_AGREEMENT_WEIGHT = 1.0


def discriminator_gate(accuracy: float, target: float | None) -> float:
    """Fraction of the adversarial weight to apply when the discriminator's balanced accuracy is ``accuracy``.

    0 at or below chance (0.5), rising linearly to 1 at ``target`` and 1 above it; ``None`` disables the
    gate (always 1). The encoders push only while the discriminator still tells the datasets apart, so
    the latent space is held near chance instead of being pushed past it into a reversed separation.

    Parameters
    ----------
    accuracy
        The discriminator's (smoothed) balanced accuracy.
    target
        Balanced accuracy, in (0.5, 1], at which the full weight applies.

    Examples
    --------
    >>> [round(discriminator_gate(a, 0.6), 6) for a in (0.4, 0.5, 0.55, 0.6, 0.9)]
    [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    if target is None:
        return 1.0
    return float(min(max((accuracy - 0.5) / (target - 0.5), 0.0), 1.0))


class PairedAdversarialPlan(ManualOptimizationPlan):
    """Train a :class:`~zconf.module.PairedVAEModule` so that its latent space hides the dataset.

    The VAEs minimise the negative ELBO (KL weight ``max_kl_weight``, 0.5 by default), plus ``cycle_weight`` ×
    the latent cycle-consistency loss and ``agreement_weight`` × the encoder-agreement loss, and
    an adversarial term weighted by ``adversarial_weight`` × a linear warm-up ramp × the discriminator
    gate; the discriminator minimises its cross-entropy.

    The gate (:func:`discriminator_gate`) ties the adversarial weight to the discriminator: it follows an
    exponential moving average of the discriminator's balanced accuracy on the minibatches, is 0 at chance
    and 1 from ``discriminator_target`` up. The encoders stop pushing once the datasets cannot be told apart,
    so longer training does not keep removing structure, and no strategy is rewarded for reversing the
    separation.

    ``adversarial="grl"``: one forward and one backward per step. The discriminator sees the posterior means
    through a gradient-reversal layer, so its own parameters descend the cross-entropy while the encoders
    receive ``-grl_lambda × weight`` times its gradient; both optimizers step.

    ``adversarial="alternate"``: a repeating cycle of ``d_steps`` D-steps (encoders frozen, the posterior
    means computed without a graph, only the discriminator's optimizer steps) and ``e_steps`` E-steps (the
    discriminator frozen). In an E-step the VAEs minimise ``ELBO + weight × confusion``, the cross-entropy of
    the discriminator against the uniform target 1/2 (domain confusion, Tzeng et al. 2015), which is
    smallest at chance; ``alternate_objective="negated"`` uses ``ELBO − weight × cross-entropy`` instead,
    which keeps rewarding the encoders past chance.

    Parameters
    ----------
    module
        A :class:`~zconf.module.PairedVAEModule`.
    adversarial
        ``"grl"`` or ``"alternate"``.
    adversarial_weight
        Weight of the adversarial term in the VAEs' objective, after the warm-up, with the gate open.
    grl_lambda
        Scale of the reversed gradient (``"grl"`` only; multiplies the weight).
    d_steps, e_steps
        Lengths of the D- and E-phases in minibatch steps (``"alternate"`` only).
    warmup_epochs
        Epochs over which the adversarial weight ramps linearly from 0 to its value (0: no warm-up).
    discriminator_target
        Balanced accuracy of the discriminator at which the gate is fully open; ``None``: no gate.
    gate_smoothing
        Weight of the newest minibatch in the moving average of the discriminator's accuracy.
    cycle_weight
        Weight of :meth:`~zconf.module.PairedVAEModule.cycle_loss` in the VAEs' objective (0: off).
    agreement_weight
        Weight of :meth:`~zconf.module.PairedVAEModule.agreement_loss` in the VAEs' objective (0: off;
        ``DEFAULT_AGREEMENT_WEIGHT``).
    alternate_objective
        ``"confusion"`` or ``"negated"``: the adversarial term of an E-step (``"alternate"`` only).
    class_weights
        Weight of each dataset's cells in the discriminator's loss, ``n / (2 n_k)`` to balance sizes.
    lr, lr_discriminator
        Learning rates of the VAEs and of the discriminator.
    weight_decay
        Weight decay of both optimizers.
    **kwargs
        Passed to :class:`scvi.train.TrainingPlan`, including ``max_kl_weight`` (the KL weight;
        ``DEFAULT_KL_WEIGHT`` here) and the KL warm-up of the ELBO, ``n_epochs_kl_warmup``. zconf turns the
        warm-up off by default (``None``): on Kang stim/ctrl, 200 epochs, it lowered the 15-NN cell-type accuracy
        from 0.869 to 0.835 (seed 0, ``"alternate"``).
    """

    def __init__(
        self,
        module: BaseModuleClass,
        *,
        adversarial: str = "grl",
        adversarial_weight: float = 1.0,
        grl_lambda: float = 1.0,
        d_steps: int = 1,
        e_steps: int = 1,
        warmup_epochs: int = 0,
        discriminator_target: float | None = 0.6,
        gate_smoothing: float = 0.1,
        cycle_weight: float = 0.0,
        agreement_weight: float = DEFAULT_AGREEMENT_WEIGHT,
        alternate_objective: str = "confusion",
        class_weights: tuple[float, float] = (1.0, 1.0),
        lr: float = 1e-3,
        lr_discriminator: float = 1e-3,
        weight_decay: float = 1e-6,
        **kwargs,
    ):
        if adversarial not in ADVERSARIAL_STRATEGIES:
            msg = f"`adversarial` must be one of {list(ADVERSARIAL_STRATEGIES)}, got {adversarial!r}."
            raise ValueError(msg)
        if alternate_objective not in ("confusion", "negated"):
            msg = f"`alternate_objective` must be 'confusion' or 'negated', got {alternate_objective!r}."
            raise ValueError(msg)
        if discriminator_target is not None and not 0.5 < discriminator_target <= 1.0:
            msg = f"`discriminator_target` must lie in (0.5, 1] or be None, got {discriminator_target}."
            raise ValueError(msg)
        if not 0.0 < gate_smoothing <= 1.0:
            msg = f"`gate_smoothing` must lie in (0, 1], got {gate_smoothing}."
            raise ValueError(msg)
        check_nonnegative(
            adversarial_weight=adversarial_weight,
            grl_lambda=grl_lambda,
            warmup_epochs=warmup_epochs,
            cycle_weight=cycle_weight,
            agreement_weight=agreement_weight,
            lr=lr,
            lr_discriminator=lr_discriminator,
            weight_decay=weight_decay,
        )
        phase_in_cycle(0, [("discriminator", d_steps), ("encoder", e_steps)])  # validates the step counts
        kwargs.setdefault("n_epochs_kl_warmup", None)
        kwargs.setdefault("max_kl_weight", DEFAULT_KL_WEIGHT)
        super().__init__(module, lr=lr, weight_decay=weight_decay, **kwargs)
        self.adversarial = adversarial
        self.adversarial_weight, self.grl_lambda = adversarial_weight, grl_lambda
        self.cycle = [("discriminator", d_steps), ("encoder", e_steps)]
        self.warmup_epochs = warmup_epochs
        self.discriminator_target, self.gate_smoothing = discriminator_target, gate_smoothing
        self.cycle_weight, self.alternate_objective = cycle_weight, alternate_objective
        self.agreement_weight = agreement_weight
        self.lr_discriminator = lr_discriminator
        self.register_buffer("class_weights", torch.as_tensor(class_weights, dtype=torch.float32), persistent=False)
        self._n_steps = 0
        self._accuracy_ema = 1.0  # the gate starts open: a fresh discriminator has not been beaten yet

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One Adam optimizer per sub-network, in ``PAIRED_SUBNETS`` order (VAEs, discriminator)."""
        groups = self.module.subnet_parameters()
        lrs = {"vae": self.lr, "discriminator": self.lr_discriminator}
        return [self.make_optimizer(groups[name], lrs[name], self.weight_decay) for name in PAIRED_SUBNETS]

    @property
    def current_adversarial_weight(self) -> float:
        """``adversarial_weight`` times the warm-up ramp of the current epoch (before the gate)."""
        return self.adversarial_weight * linear_warmup(self.current_epoch, self.warmup_epochs)

    @property
    def current_gate(self) -> float:
        """The discriminator gate at the current moving average of its balanced accuracy."""
        return discriminator_gate(self._accuracy_ema, self.discriminator_target)

    def _update_gate(self, accuracy: torch.Tensor) -> None:
        self._accuracy_ema += self.gate_smoothing * (float(accuracy) - self._accuracy_ema)

    def _vae_loss(self, batch):
        """The VAEs' loss before the adversarial term: negative ELBO, weighted cycle and agreement losses.

        Returns the inference outputs, the ELBO's ``LossOutput``, that loss and the auxiliary losses by name.
        """
        inference_outputs, _, loss_output = self.forward(batch, loss_kwargs=self.loss_kwargs)
        vae_loss = loss_output.loss
        auxiliary = {}
        if self.cycle_weight > 0:
            auxiliary["cycle_loss"] = self.module.cycle_loss(inference_outputs)
            vae_loss = vae_loss + self.cycle_weight * auxiliary["cycle_loss"]
        if self.agreement_weight > 0:
            auxiliary["agreement_loss"] = self.module.agreement_loss(batch[PAIRED_KEYS.X_KEY], inference_outputs)
            vae_loss = vae_loss + self.agreement_weight * auxiliary["agreement_loss"]
        return inference_outputs, loss_output, vae_loss, auxiliary

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """One step of the chosen strategy; logs the ELBO, the discriminator's loss and accuracy, the gate."""
        vae_opt, disc_opt = self.optimizers()
        gate = self.current_gate
        weight = self.current_adversarial_weight * gate
        self.loss_kwargs["kl_weight"] = self.kl_weight  # TrainingPlan's KL warm-up of the ELBO
        loss_output, auxiliary = None, {}
        phase = "grl" if self.adversarial == "grl" else phase_in_cycle(self._n_steps, self.cycle)
        self.module.set_phase(phase)
        if phase == "grl":
            inference_outputs, loss_output, vae_loss, auxiliary = self._vae_loss(batch)
            reversed_means = grad_reverse(inference_outputs["qz_m"], self.grl_lambda * weight)
            disc_loss, accuracy = self.module.discriminator_loss(
                reversed_means, inference_outputs["dataset"], self.class_weights
            )
            self.check_finite({"ELBO": loss_output.loss, "discriminator": disc_loss}, phase)
            self.step(vae_loss + disc_loss, [vae_opt, disc_opt])  # one backward: no retain_graph
        elif phase == "discriminator":
            with torch.no_grad():  # encoders frozen: the means carry no graph into them
                inference_outputs = self.module.inference(**self.module._get_inference_input(batch))
            disc_loss, accuracy = self.module.discriminator_loss(
                inference_outputs["qz_m"], inference_outputs["dataset"], self.class_weights
            )
            self.check_finite({"discriminator": disc_loss}, phase)
            self.step(disc_loss, [disc_opt])
        else:
            inference_outputs, loss_output, vae_loss, auxiliary = self._vae_loss(batch)
            disc_loss, accuracy = self.module.discriminator_loss(
                inference_outputs["qz_m"], inference_outputs["dataset"], self.class_weights
            )
            if self.alternate_objective == "confusion":
                logits = self.module.discriminate(inference_outputs["qz_m"])
                adversarial = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.5))
            else:
                adversarial = -disc_loss
            self.check_finite({"ELBO": loss_output.loss, "discriminator": disc_loss}, phase)
            self.step(vae_loss + weight * adversarial, [vae_opt])
        self._update_gate(accuracy)
        self._n_steps += 1
        self.accumulate(
            None,
            discriminator_loss=disc_loss,
            discriminator_accuracy=accuracy,
            adversarial_weight=weight,
            discriminator_gate=gate,
            **auxiliary,
        )
        if loss_output is not None:
            self.accumulate(loss_output, train_loss=loss_output.loss)

    def on_train_epoch_end(self) -> None:
        """Log the epoch means of the losses and the discriminator's accuracy."""
        self.log_accumulated("train", prog_bar=("train_loss", "discriminator_loss"))

    def on_train_end(self) -> None:
        """Leave every sub-network trainable again."""
        self.module.set_phase(None)
