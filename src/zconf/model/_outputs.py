"""What a trained ZConf module gives per cell, collected over a data loader, and written into an AnnData."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from zconf._constants import MODULE_KEYS, OUTPUT_KEYS, REGISTRY_KEYS

#: Module keys that need only the generator (no head evaluation).
LATENT_KEYS = frozenset({MODULE_KEYS.Z_KEY, MODULE_KEYS.Z_PROB_KEY})


@torch.inference_mode()
def collect_predictions(module, loader: Iterable, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Z-hat, its probabilities and the heads' outputs at Z-hat for every cell of ``loader``, in its order."""
    need_heads = keys is None or not set(keys) <= LATENT_KEYS
    module.eval()
    out: dict[str, list[torch.Tensor]] = {"z_hat": [], "z_prob": [], "d_logit": [], "log_mean": []}
    for tensors in loader:
        inference_outputs = module.inference(**module._get_inference_input(tensors))
        out["z_hat"].append(inference_outputs[MODULE_KEYS.Z_KEY].cpu())
        out["z_prob"].append(inference_outputs[MODULE_KEYS.Z_PROB_KEY].cpu())
        if need_heads:
            generative_inputs = module._get_generative_input(tensors, inference_outputs)
            generative_outputs = module.generative(**generative_inputs, states=False)
            out["d_logit"].append(generative_outputs[MODULE_KEYS.D_LOGIT_KEY][:, 0].cpu())
            out["log_mean"].append(generative_outputs[MODULE_KEYS.LOG_MEAN_KEY][:, 0].cpu())
    result = {key: torch.cat(values).numpy() for key, values in out.items() if values}
    if need_heads:
        result["d_prob"] = 1.0 / (1.0 + np.exp(-result["d_logit"]))
        result["mean"] = np.exp(result["log_mean"])
        result["dispersion"] = torch.exp(-module.nb_head.clamped_log_theta()).detach().cpu().numpy()
    return result


@torch.inference_mode()
def collect_per_cell(module, per_cell: Callable, loader: Iterable) -> np.ndarray:
    """``per_cell(tensors)`` of every cell of ``loader``, one value per cell.

    ``per_cell`` is a method of ``module``: :meth:`ZConfModule.marginal_log_likelihood` (the exact log p(D, Y | X))
    or :meth:`ZConfModule.confounding_gain` (what Z's link to the treatment adds to it).
    """
    module.eval()
    return torch.cat([per_cell(tensors).cpu() for tensors in loader]).numpy().astype(float)


@torch.inference_mode()
def collect_state_weights(module, loader: Iterable) -> np.ndarray:
    """The posterior weight q(state | X, D, Y) of each state of Z (``module.states``) for every cell of ``loader``."""
    module.eval()
    weights = []
    for tensors in loader:
        z_logits = module.inference(**module._get_inference_input(tensors))[MODULE_KEYS.Z_LOGITS_KEY]
        weights.append(module.latent.log_weights(z_logits, module.states.to(z_logits.device)).exp().cpu())
    return torch.cat(weights).numpy().astype(float)


@torch.inference_mode()
def collect_design(module, loader: Iterable, reference_coding: bool | None) -> tuple[np.ndarray, np.ndarray]:
    """Covariate design and treatment of every cell of ``loader``."""
    covariates, treatment = [], []
    for tensors in loader:
        covariates.append(module.design(tensors, reference_coding=reference_coding).cpu())
        treatment.append(tensors[REGISTRY_KEYS.TREATMENT_KEY].squeeze(-1).float().cpu())
    return torch.cat(covariates).numpy(), torch.cat(treatment).numpy()


def h5ad_safe(value):
    """Make a value writable to ``uns`` by h5py: tuples become lists, ``None`` entries are dropped."""
    if isinstance(value, dict):
        return {str(k): h5ad_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, tuple | list):
        return [h5ad_safe(v) for v in value]
    return value


def write_outputs(
    adata: AnnData, predictions: dict[str, np.ndarray], params: dict, key_added: str, categorical: bool = False
) -> None:
    """Write Z-hat, its probabilities, P(D | X, Z-hat), the means and the parameters under ``key_added``.

    For a ``categorical`` Z, also the most likely level as a categorical ``obs`` column.
    """
    adata.obsm[OUTPUT_KEYS.LATENT.format(key=key_added)] = predictions["z_hat"].astype(np.float32)
    for j in range(predictions["z_prob"].shape[1]):
        adata.obs[OUTPUT_KEYS.LATENT_PROB_COLUMN.format(key=key_added, j=j)] = predictions["z_prob"][:, j]
    if categorical:  # the most likely level, for sc.pl.umap(color="zconf_level")
        levels = np.arange(predictions["z_prob"].shape[1])
        level = pd.Categorical(predictions["z_prob"].argmax(1), categories=levels)
        adata.obs[OUTPUT_KEYS.LEVEL_COLUMN.format(key=key_added)] = level.rename_categories([str(j) for j in levels])
    adata.obs[OUTPUT_KEYS.D_PROB_COLUMN.format(key=key_added)] = predictions["d_prob"]
    adata.layers[OUTPUT_KEYS.MEAN_LAYER.format(key=key_added)] = predictions["mean"].astype(np.float32)
    adata.uns[OUTPUT_KEYS.UNS.format(key=key_added)] = {"params": h5ad_safe(params)}
