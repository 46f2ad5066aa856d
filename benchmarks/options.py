"""Every training option of issue 3 on both presets and several seeds: recovery, leakage, AUROC, seconds.

Run: ``.venv/bin/python -m benchmarks.options`` (about 20 minutes on 2 CPU cores); ``--smoke`` for a tiny run.
Writes ``benchmarks/results/options.{json,md}``. The defaults are the best row that does not leak.
"""

from __future__ import annotations

import argparse

import zconf
from benchmarks._common import fit_and_score, quiet, summarise, write

SIZES = {"seed": (1000, 100), "confounded": (2000, 200)}

OPTIONS: dict[str, tuple[dict, dict]] = {
    "default (marginal ELBO, per-cell scale)": ({}, {}),
    "notebook preset": (zconf.presets.NOTEBOOK["model"], zconf.presets.NOTEBOOK["train"]),
    "relaxation=straight_through": ({"relaxation": "straight_through"}, {}),
    "relaxation=gumbel": ({"relaxation": "gumbel"}, {}),
    "relaxation=continuous": ({"relaxation": "continuous"}, {}),
    "loss_scale=element": ({}, {"plan_kwargs": {"loss_scale": "element"}}),
    "straight_through + loss_scale=element": (
        {"relaxation": "straight_through"},
        {"plan_kwargs": {"loss_scale": "element"}},
    ),
    "dbpr_weight=1": ({}, {"plan_kwargs": {"dbpr_weight": 1.0}}),
    "dbpr_weight=1, dbpr_treatment_weight=0": ({}, {"plan_kwargs": {"dbpr_weight": 1.0, "dbpr_treatment_weight": 0.0}}),
    "straight_through + dbpr_weight=50": ({"relaxation": "straight_through"}, {"plan_kwargs": {"dbpr_weight": 50.0}}),
    "predictor_steps=3 (K)": ({}, {"plan_kwargs": {"predictor_steps": 3}}),
    "predictor_epochs=2": ({}, {"plan_kwargs": {"predictor_epochs": 2}}),
    "schedule=converge": ({}, {"plan_kwargs": {"schedule": "converge"}}),
    "reinit_heads=True": ({}, {"plan_kwargs": {"reinit_heads": True}}),
    "weight_decay=1e-4": ({}, {"plan_kwargs": {"weight_decay": 1e-4, "weight_decay_heads": 1e-4}}),
    "schedule=joint": ({}, {"plan_kwargs": {"schedule": "joint"}}),
    "generator without D": ({"generator_inputs": ("covariates", "counts")}, {}),
    "y_transform=counts": ({"y_transform": "counts"}, {}),
    "y_transform=log1p_normalized": ({"y_transform": "log1p_normalized"}, {}),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", nargs="*", default=None, help="subset of option names")
    args = parser.parse_args(argv)
    quiet()
    rows = []
    for preset, (n_obs, n_vars) in SIZES.items():
        if args.smoke:
            n_obs, n_vars = 150, 20
        for seed in args.seeds:
            adata = zconf.data.simulate(preset, n_obs=n_obs, n_vars=n_vars, random_state=seed)
            for name, (model_kwargs, train_kwargs) in OPTIONS.items():
                if args.only and name not in args.only:
                    continue
                train_kwargs = dict(train_kwargs)
                if args.smoke:
                    train_kwargs["max_epochs"] = 2
                result = fit_and_score(adata, model_kwargs, train_kwargs, seed)
                rows.append({"preset": preset, "option": name, "seed": seed, **result})
                print(
                    f"{preset:10s} {name:42s} seed={seed} corr={result['abs_corr_hard']:.3f} "
                    f"pcorr={result['pcorr_hard']:.3f} {result['seconds']:.1f}s",
                    flush=True,
                )
    metrics = ["abs_corr_hard", "abs_corr_soft", "pcorr_hard", "auroc_d_x_zhat", "seconds"]
    summary = summarise(rows, ("preset", "option"), metrics)
    name = "options_smoke" if args.smoke else "options"
    columns = [
        "preset",
        "option",
        "n_seeds",
        "abs_corr_hard_mean",
        "abs_corr_hard_worst",
        "abs_corr_soft_mean",
        "pcorr_hard_mean",
        "pcorr_hard_worst",
        "auroc_d_x_zhat_mean",
        "seconds_mean",
    ]
    write(
        name,
        summary,
        columns,
        "Training options (mean and worst over seeds)",
        "abs_corr: |corr(Z-hat, Z)|; pcorr: leakage |partial corr(Z-hat, D given Z)| (noise level ~1/sqrt(n)); "
        "AUROC of D from [X, Z-hat]; seconds of train() on 2 CPU cores.",
    )
    write(name + "_per_seed", rows, ["preset", "option", "seed", *metrics], "Training options per seed")


if __name__ == "__main__":
    main()
