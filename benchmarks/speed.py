"""Epoch throughput of ZConf against scvi-tools' SCVI and a plain PyTorch loop, on the same sparse AnnData.

Run: ``.venv/bin/python -m benchmarks.speed [--sizes 10000x1000 ...]``; ``--smoke`` for a tiny run.
Writes ``benchmarks/results/speed.{json,md}``. Each size is fitted in this process, ZConf then SCVI, for
``--epochs`` epochs (an even number). The epoch time is the mean over epochs of the time between Lightning's
``on_train_epoch_start`` and ``on_train_epoch_end`` hooks (:class:`EpochTimer`), so that it counts the
training loop only, not either model's set-up or post-training work; ``train_s`` is the whole ``train()``.
The mean over an even number of epochs weighs ZConf's two phases (and the plain loop's) equally: the median
of three alternating epochs, used before, was a predictor epoch's time.
The plain loop (:func:`time_plain_torch`) is the notebook's design written directly in PyTorch, with the same
minibatches densified from the same CSR matrix: the ratio to it is the cost of the scvi-tools/Lightning
machinery (data loader, training plan, logging).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import pandas as pd
import scvi
import torch
from anndata import AnnData
from lightning.pytorch.callbacks import Callback
from scipy import sparse

import zconf
from benchmarks import _common
from benchmarks._common import quiet, write


def sparse_counts(n_obs: int, n_vars: int, seed: int = 0) -> AnnData:
    """Sparse NB-like counts with a binary Z, D and 4 covariates, built without a dense matrix."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, n_obs)
    d = (rng.random(n_obs) < 1 / (1 + np.exp(-(z - 0.5)))).astype(int)
    x = rng.integers(0, 2, (n_obs, 4)).astype(float)
    gamma2 = rng.normal(0, 1, n_vars)
    rows = []
    for start in range(0, n_obs, 5000):  # block-wise, so the full dense matrix never exists
        stop = min(start + 5000, n_obs)
        mean = np.exp(-1.0 + np.outer(z[start:stop], gamma2))
        rows.append(sparse.csr_matrix(rng.poisson(rng.gamma(2.0, mean / 2.0)).astype(np.float32)))
    obs = pd.DataFrame({f"x{j}": x[:, j] for j in range(4)}, index=[f"c{i}" for i in range(n_obs)])
    obs["treatment"] = d
    return AnnData(X=sparse.vstack(rows).tocsr(), obs=obs)


class EpochTimer(Callback):
    """Wall time of each training epoch, from Lightning's epoch-start to epoch-end hooks."""

    def __init__(self):
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def _timed_train(model, epochs: int, batch_size: int, accelerator: str = "cpu", **train_kwargs) -> tuple[float, float]:
    """Mean epoch seconds (Lightning epoch hooks) and whole ``train()`` seconds, no progress bar."""
    timer = EpochTimer()
    start = time.perf_counter()
    model.train(
        max_epochs=epochs,
        batch_size=batch_size,
        accelerator=accelerator,
        enable_progress_bar=False,
        callbacks=[timer],
        **train_kwargs,
    )
    return float(np.mean(timer.seconds)), time.perf_counter() - start


def time_zconf(adata: AnnData, epochs: int, batch_size: int, **train_kwargs) -> tuple[float, float]:
    """ZConf's timings for one fit: ``n_latent=1``, one initialisation, no restarts."""
    zconf.ZConf.setup_anndata(adata, treatment_key="treatment", continuous_covariate_keys=["x0", "x1", "x2", "x3"])
    model = zconf.ZConf(adata, n_latent=1)
    return _timed_train(model, epochs, batch_size, n_init=1, max_restarts=0, **train_kwargs)


def time_scvi(adata: AnnData, epochs: int, batch_size: int, accelerator: str = "cpu") -> tuple[float, float]:
    """SCVI's timings (no validation split, as ZConf)."""
    scvi.model.SCVI.setup_anndata(adata)
    return _timed_train(scvi.model.SCVI(adata), epochs, batch_size, accelerator, train_size=1.0)


def time_plain_torch(adata: AnnData, epochs: int, batch_size: int, n_latent: int = 1, device: str = "cpu") -> float:
    """Mean epoch seconds of the notebook's alternating design as a plain PyTorch loop.

    Generator MLP on [X, D, log1p Y] (128 ReLU units, sigmoid, straight-through 0/1), logistic classifier
    D ~ [X, Z], linear NB head Y ~ [X, D, Z] with per-gene dispersion; even epochs update the heads (generator
    frozen), odd epochs the generator through the frozen heads, Adam at 1e-3, one backward per step. On a GPU
    (``device="cuda"``) each densified minibatch is copied to it, as a plain loop over host data does.
    """
    counts = sparse.csr_matrix(adata.X)
    x = torch.as_tensor(adata.obs[["x0", "x1", "x2", "x3"]].to_numpy(dtype=np.float32), device=device)
    d = torch.as_tensor(adata.obs["treatment"].to_numpy(dtype=np.float32), device=device)[:, None]
    n_obs, n_vars = counts.shape
    generator = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1] + 1 + n_vars, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, n_latent),
        torch.nn.Sigmoid(),
    )
    classifier = torch.nn.Linear(x.shape[1] + n_latent, 1)
    nb_head = torch.nn.Linear(x.shape[1] + 1 + n_latent, n_vars)
    generator, classifier, nb_head = (module.to(device) for module in (generator, classifier, nb_head))
    log_theta = torch.nn.Parameter(torch.zeros(n_vars, device=device))
    optimizers = {
        "generator": torch.optim.Adam(generator.parameters(), lr=1e-3),
        "heads": torch.optim.Adam([*classifier.parameters(), *nb_head.parameters(), log_theta], lr=1e-3),
    }
    seconds = []
    for epoch in range(epochs):
        start = time.perf_counter()
        phase = "heads" if epoch % 2 == 0 else "generator"
        for batch in torch.randperm(n_obs).split(batch_size):
            y = torch.as_tensor(counts[batch.numpy()].toarray()).to(device)
            xb, db = x[batch.to(device)], d[batch.to(device)]
            probs = generator(torch.cat([xb, db, torch.log1p(y)], dim=1))
            z = (probs > 0.5).float() + probs - probs.detach()
            if phase == "heads":
                z = z.detach()
            logits = classifier(torch.cat([xb, z], dim=1))
            log_mu = nb_head(torch.cat([xb, db, z], dim=1))
            theta = log_theta.exp()
            log_nb = (
                torch.lgamma(y + theta)
                - torch.lgamma(theta)
                - torch.lgamma(y + 1)
                + theta * (log_theta - torch.logaddexp(log_theta, log_mu))
                + y * (log_mu - torch.logaddexp(log_theta, log_mu))
            )
            loss = -log_nb.sum(1).mean() + torch.nn.functional.binary_cross_entropy_with_logits(logits, db)
            for optimizer in optimizers.values():
                optimizer.zero_grad()
            loss.backward()
            optimizers[phase].step()
        if device != "cpu":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return float(np.mean(seconds))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    sizes = [f"{n}x{p}" for n in (1000, 10000, 100000) for p in (100, 1000, 2000)]
    parser.add_argument("--sizes", nargs="*", default=sizes)
    parser.add_argument("--epochs", type=int, default=4, help="an even number: both phases equally often")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--accelerator", default="cpu", help="'cpu' or 'gpu' (benchmarks/gpu_check.sh)")
    parser.add_argument(
        "--merge", action="store_true", help="replace only the sizes run in the existing results, keep the others"
    )
    args = parser.parse_args(argv)
    quiet()
    sizes = ["300x50"] if args.smoke else args.sizes
    rows = []
    for size in sizes:
        n_obs, n_vars = (int(v) for v in size.split("x"))
        adata = sparse_counts(n_obs, n_vars)
        # epochs of small data last a fraction of a second: timed over 3 epochs the ratio was measured to swing
        # by 0.2 on a shared machine, so small sizes get 5x the epochs (still seconds in all)
        epochs = args.epochs * (5 if n_obs * n_vars <= 2_000_000 else 1)
        accelerator = args.accelerator
        t_zconf, train_zconf = time_zconf(adata.copy(), epochs, args.batch_size, accelerator=accelerator)
        # the same fit through scvi-tools' AnnDataLoader: what the in-memory loader (zconf.dataloaders) saves
        t_zconf_scvi_loader, _ = time_zconf(
            adata.copy(), epochs, args.batch_size, accelerator=accelerator, datasplitter_kwargs={"in_memory": False}
        )
        t_scvi, train_scvi = time_scvi(adata.copy(), epochs, args.batch_size, accelerator)
        t_plain = time_plain_torch(adata, epochs, args.batch_size, device="cuda" if accelerator == "gpu" else "cpu")
        rows.append(
            {
                "n_obs": n_obs,
                "n_vars": n_vars,
                "epochs": epochs,
                "zconf_epoch_s": t_zconf,
                "scvi_epoch_s": t_scvi,
                "ratio_zconf_to_scvi": t_zconf / t_scvi,
                "plain_torch_epoch_s": t_plain,
                "ratio_zconf_to_plain_torch": t_zconf / t_plain,
                "zconf_scvi_loader_epoch_s": t_zconf_scvi_loader,
                "torch_threads": torch.get_num_threads(),
                "accelerator": accelerator,
                "zconf_cells_per_s": n_obs / t_zconf,
                "scvi_cells_per_s": n_obs / t_scvi,
                "zconf_train_s": train_zconf,
                "scvi_train_s": train_scvi,
                "peak_rss_gb_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            }
        )
        print(rows[-1], flush=True)
    name = "speed_smoke" if args.smoke else "speed" if args.accelerator == "cpu" else f"speed_{args.accelerator}"
    columns = list(rows[0])
    if args.merge and (_common.RESULTS / f"{name}.json").exists():
        done = {(r["n_obs"], r["n_vars"]) for r in rows}
        kept = [
            r
            for r in json.loads((_common.RESULTS / f"{name}.json").read_text())
            if (r["n_obs"], r["n_vars"]) not in done
        ]
        rows = sorted(kept + rows, key=lambda r: (r["n_obs"], r["n_vars"]))
    write(
        name,
        rows,
        columns,
        "Epoch time of ZConf vs SCVI and a plain PyTorch loop (same sparse AnnData, batch size 128, CPU)",
        "Epoch times are means over an even number of epochs of the training loop alone (Lightning epoch hooks; "
        "for the plain PyTorch loop of the notebook's design, its own epoch loop), so that both alternating "
        "phases count equally. ZConf is one fit (n_latent=1, n_init=1, no restarts) with its in-memory loader; "
        "zconf_scvi_loader_epoch_s is the same fit through scvi-tools' AnnDataLoader. train_s is the whole "
        "train() call. torch_threads: torch's intra-op threads. peak_rss_gb_process is the process's peak so "
        "far (cumulative over the sizes run before it).",
    )


if __name__ == "__main__":
    main()
