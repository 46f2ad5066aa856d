"""Treatment effects: accuracy against the truth and the true-Z oracle, calibration, Z-hat uncertainty, speed.

Run: ``.venv/bin/python -m benchmarks.effects`` (about 15 minutes on 2 CPU cores); ``--smoke`` for a tiny run.
Writes ``benchmarks/results/effects*.{json,md}``.

Why 60 seeds for calibration: with 200 genes (160 null) and ~40 discoveries per data set, one seed's
false-discovery proportion at BH(0.1) has a standard deviation of about 0.05, so the mean over 3 seeds is
known only to ±0.03 (measured: the true-Z oracle averages 0.123 over seeds 0-19 and 0.079 over seeds
200-299). The true-Z oracle is scored on the same seeds, as the reference any Z-hat can reach, and the
oracle with the true dispersions too is scored over 200 more seeds (no training needed: seconds each).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scvi
from scipy import stats

import zconf
from benchmarks._common import covariate_keys, quiet, summarise, write
from zconf.analysis import benjamini_hochberg
from zconf.glm import design_matrix, fit_nb_glm

#: Z sources on the 'confounded' preset; "true_z" is the same estimator given the true Z (the oracle).
Z_SOURCES = ("soft", "hard", "true_z")
#: Confounder strengths (gamma2_scale) where Z-hat is uncertain: the Bayes limit of |corr| is ~0.99 at 0.5
#: and ~0.88 at 0.3 (benchmarks/results/strength_sweep.md).
UNCERTAIN_SCALES = (0.5, 0.3)


def _fit(adata, seed, max_epochs=None):
    scvi.settings.seed = seed
    zconf.ZConf.setup_anndata(
        adata, layer="counts", treatment_key="treatment", continuous_covariate_keys=covariate_keys(adata)
    )
    # this benchmark measures the effects given one binary confounder's Z-hat (the choice of n_latent is measured
    # in benchmarks/selection.py), with the training defaults
    model = zconf.ZConf(adata, n_latent=1)
    model.train(max_epochs=max_epochs, accelerator="cpu", enable_progress_bar=False)
    return model


def _scores(table, truth) -> dict:
    """RMSE, BH(0.1) false-discovery proportion among truly null genes, and 95% interval coverage."""
    null = truth == 0
    disc = table["padj"].to_numpy() < 0.1
    return {
        "rmse": float(np.sqrt(np.nanmean((table["lfc"] - truth) ** 2))),
        "fdp_bh_0.1": float((disc & null).sum() / max(disc.sum(), 1)),
        "n_discoveries": int(disc.sum()),
        "coverage_95": float(np.nanmean((table["ci_low"] <= truth) & (truth <= table["ci_high"]))),
    }


def accuracy_rows(seeds, n_obs, n_vars, smoke):
    rows = []
    for seed in seeds:
        adata = zconf.data.simulate("confounded", n_obs=n_obs, n_vars=n_vars, random_state=seed)
        model = _fit(adata, seed, max_epochs=2 if smoke else None)
        truth = adata.var["treatment_effect_true"].to_numpy()
        naive = _scores(model.treatment_effects(adjust=False), truth)
        oracle = _scores(model.treatment_effects(z=adata.obsm["z_true"]), truth)
        for source in Z_SOURCES:
            scores = oracle if source == "true_z" else _scores(model.treatment_effects(z=source), truth)
            rows.append(
                {
                    "seed": seed,
                    "z": source,
                    **scores,
                    "ratio_to_true_z": scores["rmse"] / oracle["rmse"],
                    "ratio_to_naive": scores["rmse"] / naive["rmse"],
                    "rmse_naive": naive["rmse"],
                    "naive_fdp_bh_0.1": naive["fdp_bh_0.1"],
                    "naive_coverage_95": naive["coverage_95"],
                }
            )
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    return rows


def uncertainty_rows(seeds, scales, n_obs, n_vars, smoke):
    """Soft, hard and cross-fitted Z-hat where Z-hat is uncertain, against the true-Z oracle."""
    rows = []
    for scale in scales:
        for seed in seeds:
            adata = zconf.data.simulate("confounded", n_obs=n_obs, n_vars=n_vars, random_state=seed, gamma2_scale=scale)
            model = _fit(adata, seed, max_epochs=2 if smoke else None)
            truth = adata.var["treatment_effect_true"].to_numpy()
            z_true = adata.obsm["z_true"]
            start = time.perf_counter()
            crossed = model.get_cross_fitted_latent(n_folds=2)
            crossfit_s = time.perf_counter() - start
            sources = {
                "soft": ("soft", model.get_latent_representation(soft=True)),
                "hard": ("hard", model.get_latent_representation()),
                "crossfit (2 folds, soft)": (crossed, crossed),
                "true_z": (z_true, z_true),
            }
            for name, (z, values) in sources.items():
                scores = _scores(model.treatment_effects(z=z), truth)
                rows.append(
                    {
                        "gamma2_scale": scale,
                        "seed": seed,
                        "z": name,
                        "abs_corr": float(abs(np.corrcoef(values[:, 0], z_true[:, 0])[0, 1])),
                        **scores,
                        "extra_s": crossfit_s if name.startswith("crossfit") else 0.0,
                    }
                )
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    return rows


def oracle_calibration(seeds, n_obs, n_vars) -> dict:
    """The NB Wald test itself, given the true Z and the true dispersions: null p-value tail rates and FDP."""
    null_p, fdp = [], []
    for seed in seeds:
        adata = zconf.data.simulate("confounded", n_obs=n_obs, n_vars=n_vars, random_state=seed)
        x = adata.obs[covariate_keys(adata)].to_numpy(dtype=float)
        design = design_matrix(x, adata.obs["treatment"].to_numpy(dtype=float), adata.obsm["z_true"])
        fit = fit_nb_glm(adata.layers["counts"], design.matrix, dispersion=adata.var["dispersion_true"].to_numpy())
        d_index = design.treatment_index
        p = 2 * stats.norm.sf(np.abs(fit.coef[:, d_index] / fit.se[:, d_index]))
        null = adata.var["treatment_effect_true"].to_numpy() == 0
        disc = benjamini_hochberg(p) < 0.1
        null_p.append(p[null])
        fdp.append((disc & null).sum() / max(disc.sum(), 1))
    p = np.concatenate(null_p)
    row = {
        "seeds": f"{seeds[0]}-{seeds[-1]}",
        "n_null_tests": len(p),
        **{f"frac_null_p_below_{t}": float(np.mean(p < t)) for t in (0.05, 0.01, 0.001)},
        "fdp_bh_0.1_mean": float(np.mean(fdp)),
        "fdp_bh_0.1_se": float(np.std(fdp, ddof=1) / np.sqrt(len(fdp))) if len(fdp) > 1 else 0.0,
    }
    print(row, flush=True)
    return row


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


def speed_row(n_obs, n_vars):
    adata = zconf.data.simulate("confounded", n_obs=n_obs, n_vars=n_vars, random_state=0)
    model = _fit(adata, 0, max_epochs=2)  # effect speed does not depend on training length
    start = time.perf_counter()
    model.treatment_effects()
    seconds = time.perf_counter() - start
    print(f"treatment_effects on {n_obs} x {n_vars}: {seconds:.1f} s", flush=True)
    return {"n_obs": n_obs, "n_vars": n_vars, "seconds": seconds}


#: Per-seed metrics summarised over seeds (mean, worst, standard error).
METRICS = ("rmse", "ratio_to_true_z", "ratio_to_naive", "abs_corr", "fdp_bh_0.1", "coverage_95")


def write_accuracy(rows: list[dict], suffix: str = "") -> None:
    """The summary table of the accuracy part (also re-renders it from ``effects_per_seed.json``)."""
    write(
        f"effects{suffix}",
        summarise(rows, ("z",), [m for m in METRICS if m in rows[0]]),
        [
            "z",
            "n_seeds",
            "ratio_to_true_z_mean",
            "ratio_to_true_z_worst",
            "ratio_to_naive_mean",
            "fdp_bh_0.1_mean",
            "fdp_bh_0.1_se",
            "coverage_95_mean",
            "coverage_95_worst",
        ],
        "Treatment effects on the 'confounded' preset (mean / worst / standard error over seeds)",
        "`true_z` is the same estimator given the true Z (the oracle). BH at 0.1 with 80% null genes and "
        "uniform null p-values gives an expected false-discovery proportion of 0.08. Per seed: "
        "`effects_per_seed.md`; no treatment effect: `effects_null.md`; speed: `effects_speed.md`.",
    )


def write_uncertainty(rows: list[dict], suffix: str = "") -> None:
    """The summary table of the Z-hat uncertainty part."""
    write(
        f"effects_uncertainty{suffix}",
        summarise(rows, ("gamma2_scale", "z"), [m for m in METRICS if m in rows[0]]),
        [
            "gamma2_scale",
            "z",
            "n_seeds",
            "abs_corr_mean",
            "rmse_mean",
            "fdp_bh_0.1_mean",
            "coverage_95_mean",
            "coverage_95_worst",
        ],
        "Z-hat uncertainty: soft, hard and cross-fitted Z-hat on weaker confounders ('confounded' preset, "
        "gamma2_scale < 1)",
        "Cross-fitting: each cell's Z-hat from a model trained on the other fold (`get_cross_fitted_latent`).",
    )


PARTS = ("accuracy", "uncertainty", "null", "oracle", "speed")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=list(range(60)))
    parser.add_argument("--uncertainty-seeds", type=int, nargs="*", default=list(range(5)))
    parser.add_argument("--parts", nargs="*", choices=PARTS, default=list(PARTS), help="run only these parts")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    quiet()
    n_obs, n_vars = (200, 30) if args.smoke else (2000, 200)
    suffix = "_smoke" if args.smoke else ""
    if "accuracy" in args.parts:
        rows = accuracy_rows(args.seeds, n_obs, n_vars, args.smoke)
        write_accuracy(rows, suffix)
        write(f"effects_per_seed{suffix}", rows, list(rows[0]), "Treatment effects per seed")
    if "uncertainty" in args.parts:
        uncertain = uncertainty_rows(
            args.uncertainty_seeds[:1] if args.smoke else args.uncertainty_seeds,
            UNCERTAIN_SCALES[:1] if args.smoke else UNCERTAIN_SCALES,
            n_obs,
            n_vars,
            args.smoke,
        )
        write_uncertainty(uncertain, suffix)
        write(f"effects_uncertainty_per_seed{suffix}", uncertain, list(uncertain[0]), "Z-hat uncertainty per seed")
    if "null" in args.parts:
        nulls = null_rows(args.seeds[:5], n_obs, n_vars, args.smoke)
        write(f"effects_null{suffix}", nulls, list(nulls[0]), "p-values with no treatment effect")
    if "oracle" in args.parts:
        reference = oracle_calibration(list(range(100, 102 if args.smoke else 300)), n_obs, n_vars)
        write(
            f"effects_oracle_calibration{suffix}",
            [reference],
            list(reference),
            "The NB Wald test given the true Z and true dispersions (no Z-hat): the calibration any Z-hat can reach",
            "Expected under uniform null p-values: tail rates equal to the threshold; FDP 0.8 x 0.1 = 0.08.",
        )
    if "speed" in args.parts:
        speed = speed_row(*((300, 50) if args.smoke else (10_000, 2_000)))
        write(f"effects_speed{suffix}", [speed], list(speed), "Speed of treatment_effects (2 CPU cores)")


if __name__ == "__main__":
    main()
