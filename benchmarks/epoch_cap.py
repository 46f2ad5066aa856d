"""The default schedule's short epochs on large data: recovery against full passes, and the choice of Z.

Run: ``.venv/bin/python -m benchmarks.epoch_cap [--n-obs 40000] [--seeds 0]``; writes
``benchmarks/results/epoch_cap.{json,md}``. Above 20,480 cells the default trains 20 epochs of 160 minibatches
(:func:`zconf.model.default_epoch_batches`); before, 20 full passes. For each preset one fit with the true
latent (``n_init=3``) is trained both ways and its recovery compared (``one_fit`` rows); the default call
(``n_latent="auto"``) is run on the short epochs for the no-confounder and weak presets (``default_call`` rows; also
two binary confounders when ``--presets`` names ``two_binary``), where a spurious or a missed Z would show.
"""

from __future__ import annotations

import argparse
import time

import scvi

import zconf
from benchmarks._common import covariate_keys, quiet, write

#: preset -> the latent its truth needs
TRUE_LATENT = {"weak": ("bernoulli", 1), "two_binary": ("bernoulli", 2), "categorical": ("categorical", 4)}


def _fit(adata, seed: int, max_epochs: int | None, **model_kwargs) -> tuple:
    data = adata.copy()
    scvi.settings.seed = seed
    zconf.ZConf.setup_anndata(
        data, layer="counts", treatment_key="treatment", continuous_covariate_keys=covariate_keys(data)
    )
    model = zconf.ZConf(data, **model_kwargs)
    start = time.perf_counter()
    model.train(max_epochs=max_epochs, accelerator="cpu", enable_progress_bar=False)
    return model, time.perf_counter() - start


def _batches_per_epoch(n_obs: int, max_epochs: int | None) -> int:
    """Minibatches per epoch: all of them for full passes, the default's cap otherwise."""
    full = -(-n_obs // 128)
    return full if max_epochs else zconf.model.default_epoch_batches(n_obs, 128) or full


def _recovery(adata, model) -> float:
    if model.n_latent_ == 0:
        return float("nan")
    return float(zconf.metrics.latent_recovery(adata.obsm["z_true"], model.get_latent_representation())["abs_corr"])


def run(n_obs: int, seeds: list[int], presets: list[str], default_only: bool = False) -> list[dict]:
    rows = []
    for seed in seeds:
        for preset, (distribution, n_latent) in TRUE_LATENT.items():
            if preset not in presets or default_only:
                continue
            adata = zconf.data.simulate(preset, n_obs=n_obs, random_state=seed)
            for schedule, max_epochs in (("short epochs (default)", None), ("20 full passes (before)", 20)):
                model, seconds = _fit(adata, seed, max_epochs, n_latent=n_latent, latent_distribution=distribution)
                rows.append(
                    {
                        "benchmark": "one_fit",
                        "preset": preset,
                        "n_obs": n_obs,
                        "n_vars": adata.n_vars,
                        "seed": seed,
                        "schedule": schedule,
                        "latent": zconf.analysis.candidate_label((distribution, n_latent)),
                        "steps": len(model.history["train_loss"]) * _batches_per_epoch(n_obs, max_epochs),
                        "seconds": seconds,
                        "abs_corr": _recovery(adata, model),
                    }
                )
                print(rows[-1], flush=True)
        for preset in [p for p in ("no_confounder", "weak", "two_binary") if p in presets]:
            adata = zconf.data.simulate(preset, n_obs=n_obs, random_state=seed)
            model, seconds = _fit(adata, seed, None)
            rows.append(
                {
                    "benchmark": "default_call",
                    "preset": preset,
                    "n_obs": n_obs,
                    "n_vars": adata.n_vars,
                    "seed": seed,
                    "schedule": "short epochs (default)",
                    "latent": zconf.analysis.candidate_label((model.latent_distribution_, model.n_latent_)),
                    "seconds": seconds,
                    "abs_corr": _recovery(adata, model),
                }
            )
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-obs", type=int, default=40_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--presets", nargs="+", default=[*TRUE_LATENT, "no_confounder"])
    parser.add_argument("--suffix", default="", help="appended to the results' name (runs split over processes)")
    parser.add_argument("--default-only", action="store_true", help="only the default calls (n_latent='auto')")
    args = parser.parse_args(argv)
    quiet()
    rows = run(args.n_obs, args.seeds, args.presets, args.default_only)
    columns = ["benchmark", "preset", "n_obs", "n_vars", "seed", "schedule", "latent", "steps", "seconds", "abs_corr"]
    notes = (
        "one_fit: the true latent, n_init=3, trained for the default's 20 short epochs (160 minibatches) and for "
        "20 full passes (the default before); steps counts the longest start's epochs times minibatches. default_call: "
        "ZConf(adata) with n_latent='auto' on the short epochs; the no-confounder preset should get no Z "
        "(abs_corr nan). 1 torch thread."
    )
    write(
        f"epoch_cap{args.suffix}",
        rows,
        columns,
        f"Short default epochs on {args.n_obs:,} cells: recovery and choice",
        notes,
    )


if __name__ == "__main__":
    main()
