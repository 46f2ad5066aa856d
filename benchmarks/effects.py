"""Treatment effects: accuracy against the truth and the true-Z oracle, calibration, and speed.

Run: ``.venv/bin/python -m benchmarks.effects`` (about 3 minutes on 2 CPU cores); ``--smoke`` for a tiny run.
Writes ``benchmarks/results/effects.{json,md}``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scvi
from scipy import stats

import zconf
from benchmarks._common import covariate_keys, quiet, write
from zconf.glm import fit_nb_glm
from zconf.model._effects import benjamini_hochberg


def _fit(adata, seed, max_epochs=None):
    scvi.settings.seed = seed
    zconf.ZConf.setup_anndata(
        adata, layer="counts", treatment_key="treatment", continuous_covariate_keys=covariate_keys(adata)
    )
    model = zconf.ZConf(adata)
    model.train(max_epochs=max_epochs, accelerator="cpu", enable_progress_bar=False)
    return model


def _oracle(adata):
    x = adata.obs[covariate_keys(adata)].to_numpy(dtype=float)
    design = np.column_stack([np.ones(adata.n_obs), x, adata.obs["treatment"].to_numpy(), adata.obsm["z_true"]])
    fit = fit_nb_glm(adata.layers["counts"], design)
    return fit.coef[:, x.shape[1] + 1]


def accuracy_rows(seeds, n_obs, n_vars, smoke):
    rows = []
    for seed in seeds:
        adata = zconf.data.simulate("confounded", n_obs=n_obs, n_vars=n_vars, random_state=seed)
        model = _fit(adata, seed, max_epochs=2 if smoke else None)
        truth = adata.var["treatment_effect_true"].to_numpy()
        null = truth == 0
        rmse_oracle = float(np.sqrt(np.mean((_oracle(adata) - truth) ** 2)))
        naive = model.treatment_effects(adjust=False)
        rmse_naive = float(np.sqrt(np.nanmean((naive["lfc"] - truth) ** 2)))
        for z in ("soft", "hard"):
            table = model.treatment_effects(z=z)
            rmse = float(np.sqrt(np.nanmean((table["lfc"] - truth) ** 2)))
            disc = table["padj"].to_numpy() < 0.1
            rows.append(
                {
                    "seed": seed,
                    "z": z,
                    "rmse": rmse,
                    "rmse_true_z": rmse_oracle,
                    "rmse_naive": rmse_naive,
                    "ratio_to_true_z": rmse / rmse_oracle,
                    "ratio_to_naive": rmse / rmse_naive,
                    "fdp_bh_0.1": float((disc & null).sum() / max(disc.sum(), 1)),
                    "n_discoveries": int(disc.sum()),
                    "coverage_95": float(np.nanmean((table["ci_low"] <= truth) & (truth <= table["ci_high"]))),
                    "naive_coverage_95": float(np.nanmean((naive["ci_low"] <= truth) & (truth <= naive["ci_high"]))),
                }
            )
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    return rows


def null_rows(seeds, n_obs, n_vars, smoke):
    rows = []
    for seed in seeds:
        adata = zconf.data.simulate(
            "confounded", n_obs=n_obs, n_vars=n_vars, random_state=100 + seed, treatment_effect_scale=0.0
        )
        model = _fit(adata, seed, max_epochs=2 if smoke else None)
        p = model.treatment_effects()["pvalue"].dropna().to_numpy()
        rows.append(
            {
                "seed": seed,
                "ks_pvalue": float(stats.kstest(p, "uniform").pvalue),
                "frac_p_below_0.05": float(np.mean(p < 0.05)),
                "n_bh_discoveries_0.1": int((benjamini_hochberg(p) < 0.1).sum()),
            }
        )
        print(rows[-1], flush=True)
    return rows


def speed_row(n_obs, n_vars, smoke):
    adata = zconf.data.simulate("confounded", n_obs=n_obs, n_vars=n_vars, random_state=0)
    model = _fit(adata, 0, max_epochs=2)  # effect speed does not depend on training length
    start = time.perf_counter()
    model.treatment_effects()
    seconds = time.perf_counter() - start
    print(f"treatment_effects on {n_obs} x {n_vars}: {seconds:.1f} s", flush=True)
    return {"n_obs": n_obs, "n_vars": n_vars, "seconds": seconds}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    quiet()
    n_obs, n_vars = (200, 30) if args.smoke else (2000, 200)
    rows = accuracy_rows(args.seeds, n_obs, n_vars, args.smoke)
    nulls = null_rows(args.seeds, n_obs, n_vars, args.smoke)
    speed = speed_row(*((300, 50) if args.smoke else (10_000, 2_000)), args.smoke)
    suffix = "_smoke" if args.smoke else ""
    summary = []
    for z in ("soft", "hard"):
        part = [r for r in rows if r["z"] == z]
        summary.append(
            {
                "z": z,
                **{
                    f"{k}_mean": float(np.mean([r[k] for r in part]))
                    for k in ("ratio_to_true_z", "ratio_to_naive", "fdp_bh_0.1", "coverage_95")
                },
                "ratio_to_true_z_worst": float(np.max([r["ratio_to_true_z"] for r in part])),
                "coverage_95_worst": float(np.min([r["coverage_95"] for r in part])),
            }
        )
    write(
        f"effects{suffix}",
        summary,
        [
            "z",
            "ratio_to_true_z_mean",
            "ratio_to_true_z_worst",
            "ratio_to_naive_mean",
            "fdp_bh_0.1_mean",
            "coverage_95_mean",
            "coverage_95_worst",
        ],
        "Treatment effects on the 'confounded' preset (mean / worst over seeds)",
        f"Null simulations (no treatment effect): {nulls}. Speed: {speed}.",
    )
    write(f"effects_per_seed{suffix}", rows, list(rows[0]), "Treatment effects per seed")
    write(f"effects_null{suffix}", nulls, list(nulls[0]), "p-values with no treatment effect")
    write(f"effects_speed{suffix}", [speed], list(speed), "Speed of treatment_effects (2 CPU cores)")


if __name__ == "__main__":
    main()
