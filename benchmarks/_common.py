"""Shared helpers of the benchmark scripts: fit a configuration on a simulation and score it."""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import scvi

import zconf

RESULTS = Path(__file__).parent / "results"


def quiet() -> None:
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)


def covariate_keys(adata) -> list[str]:
    return [c for c in adata.obs if c.startswith("x") and c[1:].isdigit()]


def fit_and_score(adata, model_kwargs: dict, train_kwargs: dict, seed: int) -> dict:
    """Fit ZConf with the given keywords and return recovery, leakage, AUROC and seconds."""
    adata = adata.copy()
    scvi.settings.seed = seed
    zconf.ZConf.setup_anndata(
        adata, layer="counts", treatment_key="treatment", continuous_covariate_keys=covariate_keys(adata)
    )
    # recovery of one binary confounder: n_latent=1 unless a configuration says otherwise (the automatic
    # choice of n_latent is measured in benchmarks/selection.py)
    model = zconf.ZConf(adata, **{"n_latent": 1, **model_kwargs})
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False, **train_kwargs)
    seconds = time.perf_counter() - start
    return {
        **score(adata, model.get_latent_representation(), model.get_latent_representation(soft=True)),
        "seconds": seconds,
        "model": model,
    }


def score(adata, z_hat: np.ndarray, z_prob: np.ndarray | None = None) -> dict:
    z_true = adata.obsm["z_true"]
    d = adata.obs["treatment"].to_numpy()
    x = adata.obs[covariate_keys(adata)].to_numpy(dtype=float)
    out = {
        "abs_corr_hard": zconf.metrics.latent_recovery(z_true, z_hat)["abs_corr"],
        "pcorr_hard": zconf.metrics.leakage(z_hat, d, z_true)["pcorr_d_given_z"],
        "auroc_d_x_zhat": zconf.metrics.treatment_auroc_from_arrays(x, d, z_hat)["auroc_x_zhat"],
    }
    if z_prob is not None:
        out["abs_corr_soft"] = zconf.metrics.latent_recovery(z_true, z_prob)["abs_corr"]
        out["pcorr_soft"] = zconf.metrics.leakage(z_prob, d, z_true)["pcorr_d_given_z"]
    return out


def effect_rmse(adata, z: np.ndarray | None) -> float:
    """RMSE of the D coefficient of the per-gene NB GLM Y ~ [1, X, D, z] against the true effects.

    The estimator of ``ZConf.treatment_effects`` (Pearson dispersion, no offset) with any method's Z-hat as
    the regressor; ``z=None`` is the naive GLM. Genes whose fit did not converge are left out.
    """
    from zconf.glm import design_matrix, fit_nb_glm

    x = adata.obs[covariate_keys(adata)].to_numpy(dtype=float)
    design = design_matrix(x, adata.obs["treatment"].to_numpy(dtype=float), z)
    fit = fit_nb_glm(adata.layers["counts"], design.matrix)
    error = fit.coef[:, design.treatment_index] - adata.var["treatment_effect_true"].to_numpy()
    return float(np.sqrt(np.mean(error[fit.converged] ** 2)))


def write(name: str, rows: list[dict], columns: list[str], title: str, notes: str = "") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    clean = [{k: v for k, v in row.items() if k != "model"} for row in rows]
    (RESULTS / f"{name}.json").write_text(json.dumps(clean, indent=2, default=float))
    lines = [f"# {title}", "", notes, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in clean:
        cells = []
        for c in columns:
            v = row.get(c, "")
            cells.append(f"{v:.4f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def summarise(rows: list[dict], group: tuple[str, ...], metrics: list[str]) -> list[dict]:
    """Mean, worst and standard error over seeds per group.

    Worst is the max for metrics where lower is better (leakage, RMSE and RMSE ratios, false-discovery
    proportions, seconds) and the min otherwise (correlations, AUROC, coverage).
    """
    out = []
    keys = sorted({tuple(r[g] for g in group) for r in rows}, key=str)
    for key in keys:
        part = [r for r in rows if tuple(r[g] for g in group) == key]
        summary = dict(zip(group, key, strict=True))
        summary["n_seeds"] = len(part)
        for m in metrics:
            values = np.array([r[m] for r in part if m in r], dtype=float)
            if len(values) == 0:
                continue
            if m.startswith("abs_corr"):
                values = np.nan_to_num(values, nan=0.0)  # a constant (collapsed) Z-hat recovers nothing
            lower_is_better = any(part in m for part in ("pcorr", "rmse", "ratio_to", "fdp")) or m == "seconds"
            summary[f"{m}_mean"] = float(values.mean())
            summary[f"{m}_worst"] = float(values.max() if lower_is_better else values.min())
            summary[f"{m}_se"] = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
        out.append(summary)
    return out
