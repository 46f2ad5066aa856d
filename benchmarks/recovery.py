"""Recovery of Z with the default ZConf, the notebook preset and the Bayes limit, on both presets.

Run: ``.venv/bin/python benchmarks/recovery.py`` (about 2 minutes on 2 CPU cores); ``--smoke`` for a tiny run.
Writes ``benchmarks/results/recovery.{json,md}``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import zconf
from benchmarks._common import covariate_keys, fit_and_score, quiet, score, summarise, write

SIZES = {"seed": (1000, 100), "confounded": (2000, 200)}


def residual_pca(adata) -> np.ndarray:
    """RUV-style baseline: first principal component of the OLS residuals of log1p(Y) on [1, X, D]."""
    x = adata.obs[covariate_keys(adata)].to_numpy(dtype=float)
    design = np.column_stack([np.ones(adata.n_obs), x, adata.obs["treatment"].to_numpy(dtype=float)])
    logy = np.log1p(np.asarray(adata.layers["counts"], dtype=float))
    coef, *_ = np.linalg.lstsq(design, logy, rcond=None)
    resid = logy - design @ coef
    u, s, _ = np.linalg.svd(resid - resid.mean(0), full_matrices=False)
    return (u[:, :1] * s[:1]).astype(float)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and epochs, to check the script runs")
    args = parser.parse_args(argv)
    quiet()
    rows = []
    for preset, (n_obs, n_vars) in SIZES.items():
        if args.smoke:
            n_obs, n_vars = 200, 30
        for seed in args.seeds:
            adata = zconf.data.simulate(preset, n_obs=n_obs, n_vars=n_vars, random_state=seed)
            bayes = zconf.data.bayes_posterior(adata)
            rows.append(
                {
                    "preset": preset,
                    "method": "bayes_posterior",
                    "seed": seed,
                    **score(adata, (bayes > 0.5).astype(float), bayes),
                    "seconds": 0.0,
                }
            )
            start = time.perf_counter()
            pc1 = residual_pca(adata)
            seconds = time.perf_counter() - start
            # PC1 is the soft score; the hard Z-hat splits it at the median
            split = (pc1 > np.median(pc1)).astype(float)
            rows.append(
                {
                    "preset": preset,
                    "method": "residual_pca (RUV-style)",
                    "seed": seed,
                    **score(adata, split, pc1),
                    "seconds": seconds,
                }
            )
            configs = {
                "zconf_default": ({}, {}),
                "zconf_notebook": (zconf.presets.NOTEBOOK["model"], zconf.presets.NOTEBOOK["train"]),
            }
            for method, (model_kwargs, train_kwargs) in configs.items():
                train_kwargs = dict(train_kwargs)
                if args.smoke:
                    train_kwargs["max_epochs"] = 2
                result = fit_and_score(adata, model_kwargs, train_kwargs, seed)
                rows.append({"preset": preset, "method": method, "seed": seed, **result})
                print(
                    f"{preset:10s} {method:15s} seed={seed} corr={result['abs_corr_hard']:.4f}/"
                    f"{result['abs_corr_soft']:.4f} pcorr={result['pcorr_hard']:.4f} {result['seconds']:.1f}s",
                    flush=True,
                )
    metrics = ["abs_corr_hard", "abs_corr_soft", "pcorr_hard", "pcorr_soft", "auroc_d_x_zhat", "seconds"]
    summary = summarise(rows, ("preset", "method"), metrics)
    name = "recovery_smoke" if args.smoke else "recovery"
    columns = ["preset", "method", "n_seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "worst")]
    path = write(
        name,
        summary,
        columns,
        "Recovery of Z (mean and worst over seeds)",
        "abs_corr: |corr(Z-hat, Z)|; pcorr: |partial corr(Z-hat, D given Z)| (noise level ~1/sqrt(n)); "
        "AUROC of D from [X, Z-hat]; seconds of train().",
    )
    write(name + "_per_seed", rows, ["preset", "method", "seed", *metrics], "Recovery of Z per seed")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
