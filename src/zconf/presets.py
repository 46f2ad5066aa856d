"""Named configurations of :class:`~zconf.ZConf`, used as ``ZConf(adata, **P["model"]).train(**P["train"])``."""

from __future__ import annotations

from copy import deepcopy

#: The user's notebook as written: no intercepts, no library offset, the known dispersion
#: (``adata.var["dispersion_true"]``, written by :func:`zconf.data.simulate`), raw counts into the generator,
#: the hard straight-through loss without a prior, minibatches of 32, Adam at 1e-3 for all three
#: sub-networks, and 10 outer iterations of one epoch each (5 predictor and 5 generator phases), one
#: initialisation and no restarts.
NOTEBOOK: dict[str, dict] = {
    "model": {
        "n_latent": 1,
        "relaxation": "straight_through",
        "intercept": False,
        "use_observed_lib_size": False,
        "treatment_interactions": False,
        "dispersion_key": "dispersion_true",
        "y_transform": "counts",
    },
    "train": {
        "max_epochs": 10,
        "batch_size": 32,
        "n_init": 1,
        "max_restarts": 0,
        "plan_kwargs": {"lr": 1e-3, "lr_heads": 1e-3, "predictor_epochs": 1, "generator_epochs": 1},
    },
}

#: The defaults, spelled out (``ZConf(adata).train()`` is the same).
DEFAULT: dict[str, dict] = {"model": {}, "train": {}}


def get(name: str) -> dict[str, dict]:
    """A deep copy of the preset called ``name``.

    Parameters
    ----------
    name
        ``"notebook"`` (:data:`NOTEBOOK`) or ``"default"`` (:data:`DEFAULT`).

    Returns
    -------
    Dict with ``"model"`` (keywords of :class:`~zconf.ZConf`) and ``"train"`` (keywords of ``train``).

    Examples
    --------
    >>> import zconf
    >>> preset = zconf.presets.get("notebook")
    >>> preset["train"]["max_epochs"]
    10
    """
    presets = {"notebook": NOTEBOOK, "default": DEFAULT}
    if name not in presets:
        msg = f"Unknown preset {name!r}; choose one of {sorted(presets)}."
        raise ValueError(msg)
    return deepcopy(presets[name])
