"""The observed-library offset on simulated data: does the new default harm the cases that worked before?

The simulators draw no depth of their own, so there the offset (each cell's log total count) only adds the
library's own noise and moves with Z and D. On the ``confounded`` and ``no_confounder`` presets (n=2000,
p=200, ``n_latent=1``, training defaults), each seed is fitted with and without
``use_observed_lib_size``; scored by the RMSE of ``treatment_effects()`` against the true effects, for ZConf,
the naive fit and the true-Z oracle, and the false-discovery proportion at BH 0.1. The real-data side is
``benchmarks/library_offset.py`` (glioblastoma).

Run: ``python -m benchmarks.library_default [--seeds 0 1] [--smoke]``; writes ``results/library_default.{json,md}``.
"""

from __future__ import annotations

import argparse

import numpy as np
import scvi

import zconf
from benchmarks._common import covariate_keys, quiet, write

PRESETS = ("confounded", "no_confounder")


def score(model, adata) -> dict:
    """RMSE against the true effects and FDP at BH 0.1 of ZConf, the naive fit and the true-Z oracle."""
    truth = adata.var["treatment_effect_true"].to_numpy()
    row = {}
    for name, options in (("zconf", {}), ("naive", {"adjust": False}), ("oracle", {"z": adata.obsm["z_true"]})):
        table = model.treatment_effects(**options)
        lfc = table["lfc"].to_numpy()
        tested = np.isfinite(lfc)
        row[f"rmse_{name}"] = float(np.sqrt(np.mean((lfc[tested] - truth[tested]) ** 2)))
        called = table["padj"].to_numpy() < 0.1
        row[f"fdp_{name}"] = float((called & (truth == 0)).sum() / max(called.sum(), 1))
    return row


def run(preset: str, seed: int, observed_library: bool, n_obs: int, n_vars: int) -> dict:
    adata = zconf.data.simulate(preset, n_obs=n_obs, n_vars=n_vars, random_state=seed)
    zconf.ZConf.setup_anndata(
        adata, layer="counts", treatment_key="treatment", continuous_covariate_keys=covariate_keys(adata)
    )
    scvi.settings.seed = seed
    model = zconf.ZConf(adata, n_latent=1, use_observed_lib_size=observed_library)
    model.train(accelerator="cpu", enable_progress_bar=False)
    z = model.get_latent_representation(soft=True)[:, 0]
    corr = abs(np.corrcoef(z, adata.obsm["z_true"][:, 0])[0, 1]) if z.std() > 0 else 0.0
    row = {"preset": preset, "seed": seed, "observed_library": observed_library, "corr_z": float(corr)}
    return {**row, **score(model, adata)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    quiet()
    n_obs, n_vars = (300, 30) if args.smoke else (2000, 200)
    rows = [
        run(preset, seed, observed, n_obs, n_vars)
        for preset in PRESETS
        for seed in args.seeds
        for observed in (True, False)
    ]
    columns = ["preset", "seed", "observed_library", "corr_z", "rmse_zconf", "rmse_naive", "rmse_oracle"]
    columns += ["fdp_zconf", "fdp_naive", "fdp_oracle"]
    name = "library_default_smoke" if args.smoke else "library_default"
    write(name, rows, columns, "Observed-library offset on simulated data", __doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()
