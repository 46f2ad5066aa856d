"""PairedVAE on Kang IFN-β PBMCs: stim and ctrl as the two datasets, both adversarial strategies, 3 seeds.

Run: ``.venv/bin/python -m benchmarks.paired_vae`` (about 20 minutes on 2 CPU cores); ``--smoke`` for a tiny
run on simulated data. Needs ``../shared/data/kang_muscat_2donor.h5ad`` (or ``--data``) for the full run.
Writes ``benchmarks/results/paired_vae.{json,md}``.

Metrics (``zconf.metrics``): condition mixing = 5-fold balanced accuracy of a logistic classifier of the
condition from the latent space (target ≤ 0.70; 0.5 is perfect mixing); structure = 5-fold accuracy of a
15-nearest-neighbour classifier of the cell type (target ≥ 0.88). References in the same run: PCA of the
log-normalised counts (10 components) and scvi-tools' ``SCVI`` with ``batch_key="condition"``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc
import scvi

import zconf
from benchmarks._common import quiet, summarise, write

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kang_muscat_2donor.h5ad"
METRICS = ["mixing_balanced_accuracy", "celltype_knn15_accuracy", "seconds", "final_discriminator_accuracy"]


def _scores(latent, adata, dataset_key, label_key) -> dict:
    return {
        "mixing_balanced_accuracy": zconf.metrics.dataset_mixing(latent, adata.obs[dataset_key]),
        "celltype_knn15_accuracy": zconf.metrics.knn_label_accuracy(latent, adata.obs[label_key]),
    }


def _paired(adata, strategy, seed, max_epochs, dataset_key, label_key, n_latent=10) -> dict:
    scvi.settings.seed = seed
    zconf.PairedVAE.setup_anndata(adata, dataset_key=dataset_key)
    model = zconf.PairedVAE(adata, n_latent=n_latent)
    start = time.perf_counter()
    model.train(max_epochs=max_epochs, adversarial=strategy, accelerator="cpu", enable_progress_bar=False)
    seconds = time.perf_counter() - start
    history = model.history["discriminator_accuracy"].to_numpy(dtype=float).ravel()
    return {
        "method": f"PairedVAE ({strategy}, n_latent={n_latent})",
        "seed": seed,
        **_scores(model.get_latent_representation(), adata, dataset_key, label_key),
        "seconds": seconds,
        "final_discriminator_accuracy": float(history[-1]),
        "min_discriminator_accuracy": float(history.min()),
    }


def _scvi(adata, seed, max_epochs, dataset_key, label_key) -> dict:
    scvi.settings.seed = seed
    scvi.model.SCVI.setup_anndata(adata, batch_key=dataset_key)
    model = scvi.model.SCVI(adata)
    start = time.perf_counter()
    model.train(max_epochs=max_epochs, accelerator="cpu", enable_progress_bar=False)
    seconds = time.perf_counter() - start
    scores = _scores(model.get_latent_representation(), adata, dataset_key, label_key)
    return {"method": "SCVI (batch_key=condition)", "seed": seed, **scores, "seconds": seconds}


def _pca(adata, dataset_key, label_key) -> dict:
    normalised = adata.copy()
    sc.pp.normalize_total(normalised)
    sc.pp.log1p(normalised)
    sc.pp.pca(normalised, n_comps=10, random_state=0)
    return {
        "method": "PCA (10 components)",
        "seed": 0,
        **_scores(normalised.obsm["X_pca"], adata, dataset_key, label_key),
    }


def _smoke_data():
    adata = zconf.data.simulate("confounded", n_obs=300, n_vars=40, random_state=0)
    adata.X = adata.layers["counts"]
    adata.obs["condition"] = np.where(adata.obs["treatment"] == 1, "stim", "ctrl")
    adata.obs["cell_type"] = np.where(adata.obs["x0"] > 0.5, "a", "b")
    return adata


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--n-latent", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    quiet()
    if args.smoke:
        adata, max_epochs = _smoke_data(), 2
    else:
        if not args.data.exists():
            print(f"skipped: {args.data} not found (pass --data)")
            return
        adata, max_epochs = ad.read_h5ad(args.data), args.max_epochs
    rows = [_pca(adata, "condition", "cell_type")]
    for seed in args.seeds:
        for strategy in ("grl", "alternate"):
            for n_latent in args.n_latent:
                rows.append(_paired(adata.copy(), strategy, seed, max_epochs, "condition", "cell_type", n_latent))
                print({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
        rows.append(_scvi(adata.copy(), seed, max_epochs, "condition", "cell_type"))
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    summary = summarise(rows, ("method",), METRICS)
    name = "paired_vae_smoke" if args.smoke else "paired_vae"
    columns = ["method", "n_seeds"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "worst")]
    notes = (
        "Kang IFN-β PBMCs (muscat subset, 1,556 cells × 1,267 genes), stim vs ctrl as the two datasets. "
        "mixing: 5-fold balanced accuracy of a logistic classifier of the condition (≤ 0.70 wanted, 0.5 = "
        "perfect); structure: 5-fold 15-NN cell-type accuracy (≥ 0.88 wanted). 'worst' is the max for mixing and "
        "seconds, the min otherwise. Per-seed rows in the JSON."
    )
    for row in summary:  # mixing: higher is worse
        values = [r["mixing_balanced_accuracy"] for r in rows if r["method"] == row["method"]]
        row["mixing_balanced_accuracy_worst"] = float(max(values))
    write(name + "_runs", rows, ["method", "seed", *METRICS, "min_discriminator_accuracy"], "PairedVAE runs", notes)
    write(name, summary, columns, "PairedVAE on Kang stim/ctrl: mixing and cell-type structure", notes)


if __name__ == "__main__":
    main()
