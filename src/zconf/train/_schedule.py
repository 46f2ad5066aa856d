"""The alternating schedule as a pure function of the epoch (no Lightning)."""

from __future__ import annotations

SCHEDULES: tuple[str, ...] = ("alternating", "joint")


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
    return "predictor" if epoch % (predictor_epochs + generator_epochs) < predictor_epochs else "generator"
