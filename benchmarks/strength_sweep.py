"""Recovery against the Bayes limit as the confounder weakens (γ2 scale 0.3 → 2), where the limit falls below 1.

Run: ``.venv/bin/python -m benchmarks.strength_sweep`` (about 5 minutes on 2 CPU cores); ``--smoke`` for a tiny
run. Writes ``benchmarks/results/strength_sweep.{json,md}``.
"""

from __future__ import annotations

import argparse

import zconf
from benchmarks._common import fit_and_score, quiet, score, summarise, write

SCALES = (0.3, 0.5, 1.0, 2.0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    quiet()
    n_obs, n_vars = (150, 20) if args.smoke else (2000, 200)
    rows = []
    for scale in SCALES:
        for seed in args.seeds:
            adata = zconf.data.simulate("confounded", n_obs=n_obs, n_vars=n_vars, random_state=seed, gamma2_scale=scale)
            bayes = zconf.data.bayes_posterior(adata)
            rows.append(
                {
                    "gamma2_scale": scale,
                    "method": "bayes_posterior",
                    "seed": seed,
                    **score(adata, (bayes > 0.5).astype(float), bayes),
                    "seconds": 0.0,
                }
            )
            result = fit_and_score(adata, {}, {"max_epochs": 2} if args.smoke else {}, seed)
            rows.append({"gamma2_scale": scale, "method": "zconf_default", "seed": seed, **result})
            print(
                f"scale={scale} seed={seed} zconf={result['abs_corr_soft']:.3f} bayes={rows[-2]['abs_corr_soft']:.3f}",
                flush=True,
            )
    metrics = ["abs_corr_hard", "abs_corr_soft", "pcorr_hard", "seconds"]
    summary = summarise(rows, ("gamma2_scale", "method"), metrics)
    name = "strength_sweep_smoke" if args.smoke else "strength_sweep"
    columns = [
        "gamma2_scale",
        "method",
        "n_seeds",
        "abs_corr_soft_mean",
        "abs_corr_soft_worst",
        "abs_corr_hard_mean",
        "pcorr_hard_mean",
        "seconds_mean",
    ]
    write(
        name,
        summary,
        columns,
        "Recovery as the confounder weakens ('confounded' preset, 2000 x 200)",
        "gamma2_scale multiplies the confounder's effects on the genes; the Bayes posterior uses the true "
        "parameters and is the limit any Z-hat can reach.",
    )


if __name__ == "__main__":
    main()
