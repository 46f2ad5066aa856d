"""The alternating schedule as a pure function of the epoch (no Lightning)."""

from __future__ import annotations

from collections.abc import Sequence

SCHEDULES: tuple[str, ...] = ("alternating", "joint", "converge")


def phase_for_epoch(
    epoch: int, predictor_epochs: int = 1, generator_epochs: int = 1, schedule: str = "alternating"
) -> str:
    """Training phase of a (0-based) epoch.

    The alternating schedule repeats ``predictor_epochs`` predictor epochs (generator frozen, the
    classifier and NB head fit) followed by ``generator_epochs`` generator epochs (heads frozen). The
    ``"joint"`` schedule updates all three sub-networks from one summed loss every epoch.

    Parameters
    ----------
    epoch
        Current epoch, starting at 0.
    predictor_epochs
        Length of each predictor phase, in epochs (>= 1).
    generator_epochs
        Length of each generator phase, in epochs (>= 1).
    schedule
        ``"alternating"`` or ``"joint"``.

    Returns
    -------
    ``"predictor"``, ``"generator"`` or ``"joint"``.

    Examples
    --------
    >>> [phase_for_epoch(e, 2, 1) for e in range(4)]
    ['predictor', 'predictor', 'generator', 'predictor']
    """
    if schedule not in SCHEDULES:
        msg = f"`schedule` must be one of {list(SCHEDULES)}, got {schedule!r}."
        raise ValueError(msg)
    if predictor_epochs < 1 or generator_epochs < 1:
        msg = (
            f"Phase lengths must be >= 1 epoch, got predictor_epochs={predictor_epochs}, "
            f"generator_epochs={generator_epochs}."
        )
        raise ValueError(msg)
    if epoch < 0:
        msg = f"`epoch` must be >= 0, got {epoch}."
        raise ValueError(msg)
    if schedule == "joint":
        return "joint"
    if schedule == "converge":
        msg = "The 'converge' schedule depends on the losses, not the epoch; use ConvergencePhases."
        raise ValueError(msg)
    return "predictor" if epoch % (predictor_epochs + generator_epochs) < predictor_epochs else "generator"


def phase_for_step(step: int, predictor_steps: int) -> str:
    """Phase of a (0-based) minibatch step when alternating at step level: K predictor steps, then one generator step.

    Examples
    --------
    >>> [phase_for_step(s, 2) for s in range(6)]
    ['predictor', 'predictor', 'generator', 'predictor', 'predictor', 'generator']
    """
    if predictor_steps < 1:
        msg = f"`predictor_steps` (K) must be >= 1, got {predictor_steps}."
        raise ValueError(msg)
    return "predictor" if step % (predictor_steps + 1) < predictor_steps else "generator"


class ConvergencePhases:
    """Phases that last until their loss stops improving ("until convergence"), with a cap.

    Each epoch's mean loss updates an exponential moving average; a phase ends when the average has not
    improved by a relative ``tol`` for ``patience`` epochs, or after ``max_phase_epochs`` epochs.

    Parameters
    ----------
    patience
        Epochs without improvement that end a phase.
    max_phase_epochs
        Cap on a phase's length.
    tol
        Relative improvement that counts.
    smoothing
        Weight of the newest epoch in the moving average.
    """

    def __init__(self, patience: int = 2, max_phase_epochs: int = 10, tol: float = 1e-3, smoothing: float = 0.5):
        if patience < 1 or max_phase_epochs < 1 or tol < 0 or not 0 < smoothing <= 1:
            msg = (
                f"Need patience >= 1, max_phase_epochs >= 1, tol >= 0 and 0 < smoothing <= 1; got "
                f"{patience}, {max_phase_epochs}, {tol}, {smoothing}."
            )
            raise ValueError(msg)
        self.patience, self.max_phase_epochs, self.tol, self.smoothing = patience, max_phase_epochs, tol, smoothing
        self.phase = "predictor"
        self._reset()

    def _reset(self) -> None:
        self.epochs_in_phase, self.stall, self.ema, self.best = 0, 0, None, None

    def update(self, epoch_loss: float) -> str:
        """Record an epoch's loss; return the phase of the next epoch."""
        self.epochs_in_phase += 1
        self.ema = epoch_loss if self.ema is None else self.smoothing * epoch_loss + (1 - self.smoothing) * self.ema
        if self.best is None or self.ema < self.best - self.tol * abs(self.best):
            self.best, self.stall = self.ema, 0
        else:
            self.stall += 1
        if self.stall >= self.patience or self.epochs_in_phase >= self.max_phase_epochs:
            self.phase = "generator" if self.phase == "predictor" else "predictor"
            self._reset()
        return self.phase


def phase_in_cycle(step: int, phases: Sequence[tuple[str, int]]) -> str:
    """Phase of a (0-based) step in a repeating cycle of named phases with their lengths in steps.

    Examples
    --------
    >>> [phase_in_cycle(s, [("discriminator", 2), ("encoder", 1)]) for s in range(4)]
    ['discriminator', 'discriminator', 'encoder', 'discriminator']
    """
    if step < 0:
        msg = f"`step` must be >= 0, got {step}."
        raise ValueError(msg)
    if not phases or any(length < 1 for _, length in phases):
        msg = f"Every phase needs a length >= 1 step, got {list(phases)}."
        raise ValueError(msg)
    position = step % sum(length for _, length in phases)
    for name, length in phases:
        if position < length:
            return name
        position -= length
    raise AssertionError  # pragma: no cover - unreachable


def linear_warmup(epoch: int, warmup_epochs: int) -> float:
    """Weight ramped linearly from 0 at epoch 0 to 1 at ``warmup_epochs`` (1 throughout when it is 0).

    Examples
    --------
    >>> [linear_warmup(e, 4) for e in range(6)]
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    if warmup_epochs < 0:
        msg = f"`warmup_epochs` must be >= 0, got {warmup_epochs}."
        raise ValueError(msg)
    return 1.0 if warmup_epochs == 0 else min(1.0, epoch / warmup_epochs)
