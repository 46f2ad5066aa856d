"""Library size on real counts: nothing, a covariate, or an offset (issue 15, item 5).

Real libraries vary about 10-fold between cells; the simulators' do not. On the glioblastoma design of
``benchmarks/real_confounded.py`` (the patient hidden and made a confounder, effects compared with the
patient-adjusted reference of the balanced data), ZConf with defaults is fitted three ways:

- ``none``: no library information (``use_observed_lib_size=False``; the default before it was on);
- ``covariate``: the log library size as a continuous covariate (``continuous_covariate_keys``), as the reference;
- ``offset``: the library size as ``size_factor_key``, an offset of the NB head and of the effects' GLM (scVI's
  observed library).

Each is scored by the RMSE of its ``treatment_effects()`` against the reference, next to the naive GLM with the
same library term, and by the choice of Z and the share of Z-hat explained by the library (R² of log library on
Z-hat's columns). Results: ``results/library_offset.{json,md}``.

Run: ``python -m benchmarks.library_offset [--seeds 0 1 2]``; skips without ``../shared/data``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score

import zconf
from benchmarks._common import quiet, summarise, write
from benchmarks.real_confounded import DATA, _rmse, confounded_subsample, glm_effects, hidden, load, patient_one_hot
from zconf.glm import design_matrix, fit_nb_glm

VARIANTS = ("none", "covariate", "offset")


def naive_effects(adata, variant: str) -> np.ndarray:
    """D coefficient of the per-gene NB GLM without Z, with the variant's library term."""
    covariates = adata.obs[["log_library"]].to_numpy(float) if variant == "covariate" else np.zeros((adata.n_obs, 0))
    offset = adata.obs["log_library"].to_numpy(float) if variant == "offset" else None
    design = design_matrix(covariates, adata.obs["treatment"].to_numpy(float))
    fit = fit_nb_glm(adata.layers["counts"], design.matrix, offset=offset)
    return np.where(fit.converged, fit.coef[:, design.treatment_index], np.nan)


def fit_variant(adata, variant: str, seed: int):
    user = hidden(adata)
    user.obs["library"] = np.exp(user.obs["log_library"])
    setup = {"layer": "counts", "treatment_key": "treatment"}
    if variant == "covariate":
        setup["continuous_covariate_keys"] = ["log_library"]
    elif variant == "offset":
        setup["size_factor_key"] = "library"
    zconf.ZConf.setup_anndata(user, **setup)
    # "none" and "covariate" turn off the observed-library offset that is now the default (the offset variant's
    # size factor takes precedence over it anyway)
    model = zconf.ZConf(user, use_observed_lib_size=False)
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False, random_state=seed)
    return model, time.perf_counter() - start


def _library_r2(model, log_library: np.ndarray) -> float:
    """R² of the log library size on the soft Z-hat (OLS with intercept); 0 without Z."""
    z = model.get_latent_representation(soft=True)
    return float(zconf.metrics.covariate_r2(log_library, z)[0]) if z.shape[1] else 0.0


def run_seed(full, reference, seed: int) -> list[dict]:
    sub = confounded_subsample(full, seed)
    rows = []
    for variant in VARIANTS:
        naive = _rmse(naive_effects(sub, variant), reference)
        model, seconds = fit_variant(sub, variant, seed)
        z_hat = model.get_latent_representation()
        code = z_hat @ (2 ** np.arange(z_hat.shape[1])) if z_hat.shape[1] else np.zeros(len(z_hat))
        rmse = _rmse(model.treatment_effects()["lfc"].to_numpy(), reference)
        rows.append(
            {
                "variant": variant,
                "seed": seed,
                "rmse_naive": naive,
                "rmse_zconf": rmse,
                "rmse_ratio_to_naive": rmse / naive,
                "latent": zconf.analysis.candidate_label((model.latent_distribution_, model.n_latent_)),
                "ami_patient": float(adjusted_mutual_info_score(sub.obs["donor"], code)),
                "zhat_library_r2": _library_r2(model, sub.obs["log_library"].to_numpy(float)),
                "seconds": seconds,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"skipped: {DATA} not found")
        return []
    quiet()
    full = load()
    reference = glm_effects(full, patient_one_hot(full))  # the reference of real_confounded.py
    rows = [row for seed in args.seeds for row in run_seed(full, reference, seed)]
    columns = ["variant", "seed", "rmse_naive", "rmse_zconf", "rmse_ratio_to_naive", "latent", "ami_patient"]
    columns += ["zhat_library_r2", "seconds"]
    title = "Library size: none, covariate or offset (glioblastoma)"
    write("library_offset", rows, columns, title, __doc__.split("\n\n")[1])
    metrics = ["rmse_naive", "rmse_zconf", "rmse_ratio_to_naive", "ami_patient", "zhat_library_r2"]
    summary = summarise(rows, ("variant",), metrics)
    write("library_offset_summary", summary, ["variant", "n_seeds"] + [f"{m}_mean" for m in metrics], "Summary")
    return rows


if __name__ == "__main__":
    main()
