"""Scale: one epoch on a large sparse AnnData (peak memory), time to accuracy, and where the time goes.

Run: ``.venv/bin/python -m benchmarks.scale`` (about 5 minutes on 2 CPU cores); ``--smoke`` for a tiny run.
Writes ``benchmarks/results/scale.{json,md}`` and ``benchmarks/results/profile.md``.

* ``large_sparse``: a 200,000 × 2,000 CSR AnnData (about 31% non-zero, denser than typical scRNA-seq), built
  block-wise so the full dense matrix never exists and written to .h5ad; a fresh process reads it, sets it up
  and trains one epoch; peak RSS of that process from ``getrusage`` (Python, torch, the data and training).
  Target ≤ 3 GB.
* ``time_to_accuracy``: ``ZConf(adata).train()`` with defaults on the ``"confounded"`` preset at
  10,000 × 1,000; wall seconds and abs corr(Z-hat, Z). Target: ≥ 0.98 within 60 s.
* ``--atlas``: only the default call and one fit at 100,000 × 2,000 (seed 0), the size issue 16 names (target:
  the default call ≤ 120 s); writes ``benchmarks/results/scale_atlas.{json,md}``.
* ``profile``: Lightning's ``SimpleProfiler`` over two epochs of ZConf and of SCVI at 10,000 × 1,000, the
  hooks ranked by total time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scvi
import torch
from lightning.pytorch.profilers import SimpleProfiler
from scipy import sparse

import zconf
from benchmarks import _common
from benchmarks._common import covariate_keys, quiet, write
from benchmarks.speed import sparse_counts

BUILD = """
import sys
from benchmarks.speed import sparse_counts

sparse_counts(int(sys.argv[1]), int(sys.argv[2])).write_h5ad(sys.argv[3])
"""

TRAIN = """
import json, resource, sys, time
import anndata as ad
import zconf
from benchmarks._common import quiet

quiet()
adata = ad.read_h5ad(sys.argv[1])
rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
zconf.ZConf.setup_anndata(adata, treatment_key="treatment", continuous_covariate_keys=["x0", "x1", "x2", "x3"])
model = zconf.ZConf(adata, n_latent=1)  # one fit: the automatic choice trains candidates on copies of subsets
start = time.perf_counter()
model.train(max_epochs=1, accelerator="cpu", enable_progress_bar=False, n_init=1, max_restarts=0)
train_s = time.perf_counter() - start
n_obs, n_vars = adata.shape
print(json.dumps({
    "n_obs": n_obs, "n_vars": n_vars, "nnz": int(adata.X.nnz), "density": adata.X.nnz / (n_obs * n_vars),
    "x_is_sparse": bool(hasattr(adata.X, "tocsr")), "train_one_epoch_s": train_s,
    "peak_rss_gb_after_read": rss_data, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    "csr_gb": (adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes) / 1e9,
    "dense_float32_gb_if_densified": n_obs * n_vars * 4 / 1e9,
}))
"""


def large_sparse(n_obs: int, n_vars: int) -> dict:
    """Build the data and write it as .h5ad in one process; read it and train one epoch in a fresh one.

    The training process starts like a user's session (``read_h5ad``), so its peak RSS is that of reading the
    sparse matrix and training, not of generating the data.
    """
    root = Path(__file__).resolve().parents[1]  # the repository root, so that `benchmarks` imports
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "large.h5ad")
        subprocess.run([sys.executable, "-c", BUILD, str(n_obs), str(n_vars), path], check=True, cwd=root)
        result = subprocess.run(
            [sys.executable, "-c", TRAIN, path], capture_output=True, text=True, check=True, cwd=root
        )
    return {"benchmark": "large_sparse", **json.loads(result.stdout.strip().splitlines()[-1])}


def time_to_accuracy(
    n_obs: int, n_vars: int, seed: int, max_epochs: int | None, one_fit: bool = False, csr: bool = False
) -> dict:
    """Seconds of ``train()`` and the recovery: the default call, or (``one_fit``) ``n_latent=1``, one start.

    ``csr``: the counts layer as CSR (the issue's atlas target names sparse counts); else dense.
    """
    adata = zconf.data.simulate("confounded", n_obs=n_obs, n_vars=n_vars, random_state=seed)
    if csr:
        adata.layers["counts"] = sparse.csr_matrix(adata.layers["counts"])
    scvi.settings.seed = seed
    zconf.ZConf.setup_anndata(
        adata, layer="counts", treatment_key="treatment", continuous_covariate_keys=covariate_keys(adata)
    )
    model = zconf.ZConf(adata, n_latent=1) if one_fit else zconf.ZConf(adata)
    start = time.perf_counter()
    extra = {"n_init": 1, "max_restarts": 0} if one_fit else {}
    model.train(max_epochs=max_epochs, accelerator="cpu", enable_progress_bar=False, **extra)
    seconds = time.perf_counter() - start
    corr = zconf.metrics.latent_recovery(adata.obsm["z_true"], model.get_latent_representation())["abs_corr"]
    return {
        "benchmark": "time_to_accuracy_one_fit" if one_fit else "time_to_accuracy",
        "latent": zconf.analysis.candidate_label((model.latent_distribution_, model.n_latent_)),
        "n_obs": n_obs,
        "n_vars": n_vars,
        "seed": seed,
        "epochs": len(model.history["train_loss"]),
        "train_s": seconds,
        "abs_corr": corr,
    }


def _profile_report(profiler: SimpleProfiler, top: int) -> list[tuple[str, float, int]]:
    rows = [(name, float(np.sum(d)), len(d)) for name, d in profiler.recorded_durations.items()]
    return sorted(rows, key=lambda r: -r[1])[:top]


def profile(n_obs: int, n_vars: int, epochs: int, top: int = 12) -> str:
    adata = sparse_counts(n_obs, n_vars)
    lines = [
        "# Where the time goes: Lightning SimpleProfiler",
        "",
        f"{n_obs} × {n_vars} sparse counts, batch 128, {epochs} epochs, 2 CPU cores. Seconds summed over the run.",
    ]
    for name in ("ZConf", "SCVI"):
        data = adata.copy()
        profiler = SimpleProfiler()
        if name == "ZConf":
            zconf.ZConf.setup_anndata(
                data, treatment_key="treatment", continuous_covariate_keys=["x0", "x1", "x2", "x3"]
            )
            model = zconf.ZConf(data, n_latent=1)  # one fit (the automatic choice would profile its candidates)
            model.train(
                max_epochs=epochs,
                accelerator="cpu",
                enable_progress_bar=False,
                n_init=1,
                max_restarts=0,
                profiler=profiler,
            )
        else:
            scvi.model.SCVI.setup_anndata(data)
            model = scvi.model.SCVI(data)
            model.train(
                max_epochs=epochs, accelerator="cpu", enable_progress_bar=False, train_size=1.0, profiler=profiler
            )
        lines += ["", f"## {name}", "", "| action | total s | calls |", "|---|---|---|"]
        lines += [f"| {action} | {total:.3f} | {calls} |" for action, total, calls in _profile_report(profiler, top)]
    return "\n".join(lines) + "\n"


def atlas(n_obs: int = 100_000, n_vars: int = 2000, seed: int = 0) -> None:
    """The default call and one fit at atlas size: seconds, recovery and their ratio (``scale_atlas``)."""
    rows = [
        time_to_accuracy(n_obs, n_vars, seed, None, csr=True),
        time_to_accuracy(n_obs, n_vars, seed, None, one_fit=True, csr=True),
    ]
    for row in rows:
        print(row, flush=True)
    notes = (
        f"Target (issue 16, for sparse counts): the default call to abs_corr ≥ 0.98 in ≤ 120 s. The default call took "
        f"{rows[0]['train_s'] / rows[1]['train_s']:.2f}x one fit. torch threads: {torch.get_num_threads()}. "
        "epochs: of 160 minibatches each (the default schedule above 20,480 cells, "
        "zconf.model.default_epoch_batches). Before the short epochs (2026-12-04, dense counts): 841 s, one fit 244 s; "
        "with them (2026-12-06): 189 s, one fit 53 s. Since 2026-12-07 the model without Z steps only its heads, "
        "screens are 2 epochs of at most 80 minibatches, the link test sums at most 40,000 cells and the held-out "
        "likelihood and link share one pass; since the fourth session of that day the candidates skip the checks of "
        "Z-hat after training (muted anyway) and the collapse check of a start reads at most 20,000 cells (142 s, one "
        "fit 50 s). Since the sixth session of that day the NB term is one autograd Function with its normaliser read "
        "from count tables, every state comes from one pass of the NB head, and Adam is fused (docs/scale.md)."
    )
    columns = ["benchmark", "n_obs", "n_vars", "seed", "latent", "epochs", "train_s", "abs_corr"]
    title = "Time to accuracy at 100,000 × 2,000 (CPU; the confounded preset's counts as CSR)"
    write("scale_atlas", rows, columns, title, notes)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--atlas", action="store_true", help="only time to accuracy at 100,000 x 2,000, seed 0")
    args = parser.parse_args(argv)
    quiet()
    if args.atlas:
        atlas()
        return
    if args.smoke:
        big, acc, prof, epochs = (2000, 50), (300, 40), (300, 40), 2
    else:
        big, acc, prof, epochs = (200_000, 2000), (10_000, 1000), (10_000, 1000), None
    rows = [large_sparse(*big)]
    print(rows[-1], flush=True)
    # the reference of the automatic choice's cost (issue 15: the default fit <= 3x one n_latent=1, n_init=1 fit),
    # timed on each seed's data right after its default call: seeds differ by 20% in time (measured 2026-12-04)
    for seed in args.seeds:
        for one_fit in (False, True):
            rows.append(time_to_accuracy(*acc, seed, epochs, one_fit=one_fit))
            print(rows[-1], flush=True)
    name = "scale_smoke" if args.smoke else "scale"
    columns = sorted({k for r in rows for k in r}, key=lambda k: (k != "benchmark", k))
    notes = (
        "Targets: large_sparse peak_rss_gb ≤ 3; time_to_accuracy abs_corr ≥ 0.98 with train_s ≤ 60. "
        "time_to_accuracy is the default call (n_latent='auto': candidates, restarts, then the final fit); "
        "time_to_accuracy_one_fit is n_latent=1, n_init=1, no restarts on the same seed's data, the reference of "
        "the choice's cost (their ratio per seed). "
        f"torch threads: {torch.get_num_threads()}."
    )
    write(name, rows, columns, "Scale: large sparse data and time to accuracy (CPU)", notes)
    (_common.RESULTS / ("profile_smoke.md" if args.smoke else "profile.md")).write_text(profile(*prof, epochs=2))
    print("peak RSS of this process (GB):", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)


if __name__ == "__main__":
    main()
