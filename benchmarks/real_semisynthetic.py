"""Eight real donors made a hidden confounder, with known effects: Kang control PBMCs, thinned.

Data: ``../shared/data/kang_ctrl_8donor.h5ad`` (Kang et al. 2018, control cells only: 8 donors, 12,261 cells,
genes of mean count > 0.05). Unlike the glioblastoma benchmark (``real_confounded.py``), whose reference is a
fit to the full data, the truth here is exact:

- **Treatment by donor**: each cell is treated with a probability set by its donor, from 0.1 to 0.9 evenly over the
  eight donors (which donor gets which is drawn per seed). The donor, with many levels, then drives both the
  treatment and the counts: the case the issue on real hidden confounders names ("eight donors need 128
  states").
- **Known effects by binomial thinning** (seqgendiff's design; Gerard 2020, doi:10.1186/s12859-020-3450-9): 10%
  of the genes get a log fold change drawn from +/-U(0.4, 1.2); a gene with a negative effect has each treated
  cell's counts thinned by exp(effect), one with a positive effect each control cell's by exp(-effect). Every
  other feature of the counts (donor, cell type, depth, dispersion) stays real.
- The donor is hidden; ZConf sees the treatment, the counts and the cell type (a categorical covariate), with
  defaults otherwise.
- Every row is the fitted model's own ``treatment_effects`` (the same per-gene NB GLM, observed log library as
  offset, cell type as covariate), so that only the Z in the design differs: the default (ZConf's Z-hat),
  ``adjust=False`` (the naive fit), and ``z=`` the donor's one-hot columns (the donor-adjusted oracle). Each is
  scored against the thinned truth: RMSE over genes, and the false-discovery proportion and power at BH 0.1.

Results: ``results/real_semisynthetic.{json,md}`` and ``results/real_semisynthetic_summary.{json,md}``.

Run: ``python -m benchmarks.real_semisynthetic [--seeds 0 1 2] [--n-obs N] [--smoke]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.metrics import adjusted_mutual_info_score

import zconf
from benchmarks._common import quiet, summarise, write
from zconf.analysis import candidate_label

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kang_ctrl_8donor.h5ad"
MIN_MEAN = 0.05
EFFECT_FRACTION = 0.1
EFFECT_RANGE = (0.4, 1.2)
PROPENSITY_RANGE = (0.1, 0.9)
BH_LEVEL = 0.1


def load(path: Path = DATA) -> ad.AnnData:
    """The control cells with genes of mean count > 0.05, counts as integers."""
    adata = ad.read_h5ad(path)
    adata = adata[:, np.asarray(adata.X.mean(0)).ravel() > MIN_MEAN].copy()
    adata.X = sparse.csr_matrix(adata.X).astype(np.int64)
    return adata


def thinned_design(adata: ad.AnnData, seed: int, n_obs: int | None = None) -> tuple[ad.AnnData, np.ndarray]:
    """A treatment set by donor and known effects by binomial thinning; returns the new AnnData and the effects."""
    rng = np.random.default_rng(seed)
    if n_obs is not None and n_obs < adata.n_obs:
        adata = adata[np.sort(rng.choice(adata.n_obs, n_obs, replace=False))]
    donors = adata.obs["donor"].astype(str).to_numpy()
    names = np.unique(donors)
    propensity = dict(zip(names, rng.permutation(np.linspace(*PROPENSITY_RANGE, len(names))), strict=True))
    treatment = (rng.random(adata.n_obs) < np.vectorize(propensity.get)(donors)).astype(int)
    effects = np.zeros(adata.n_vars)
    changed = rng.choice(adata.n_vars, round(EFFECT_FRACTION * adata.n_vars), replace=False)
    effects[changed] = rng.choice([-1.0, 1.0], len(changed)) * rng.uniform(*EFFECT_RANGE, len(changed))
    counts = sparse.coo_matrix(adata.X)
    gene_effect, treated = effects[counts.col], treatment[counts.row] == 1
    keep = np.where(gene_effect < 0, np.where(treated, np.exp(gene_effect), 1.0), 1.0)
    keep = np.where(gene_effect > 0, np.where(treated, 1.0, np.exp(-gene_effect)), keep)
    thinned = sparse.csr_matrix((rng.binomial(counts.data, keep), (counts.row, counts.col)), shape=counts.shape)
    thinned.eliminate_zeros()
    obs = pd.DataFrame(
        {"treatment": treatment, "cell_type": adata.obs["cell_type"].to_numpy(), "donor": donors},
        index=adata.obs_names,
    )
    obs["cell_type"] = obs["cell_type"].astype("category")
    out = ad.AnnData(thinned.astype(np.float32), obs=obs, var=adata.var[[]].copy())
    out.layers["counts"] = out.X.copy()
    return out, effects


def score(lfc: np.ndarray, padj: np.ndarray, effects: np.ndarray) -> dict:
    """RMSE against the known effects and the false-discovery proportion at BH 0.1."""
    ok = np.isfinite(lfc)
    called = np.nan_to_num(padj, nan=1.0) < BH_LEVEL
    return {
        "rmse": float(np.sqrt(np.mean((lfc[ok] - effects[ok]) ** 2))),
        "fdp": float((called & (effects == 0)).sum() / max(called.sum(), 1)),
        "power": float((called & (effects != 0)).sum() / max((effects != 0).sum(), 1)),
    }


def fit_zconf(adata: ad.AnnData, model_kwargs: dict, train_kwargs: dict):
    """ZConf as a user without donor labels runs it: treatment, counts and cell type."""
    user = adata.copy()
    user.obs = user.obs[["treatment", "cell_type"]]
    zconf.ZConf.setup_anndata(user, layer="counts", treatment_key="treatment", categorical_covariate_keys=["cell_type"])
    model = zconf.ZConf(user, **model_kwargs)
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False, **train_kwargs)
    return model, time.perf_counter() - start


def _state_code(model) -> np.ndarray:
    z_hat = model.get_latent_representation()
    if z_hat.shape[1] == 0:
        return np.zeros(len(z_hat), dtype=int)
    if model.latent_distribution_ == "categorical":
        return z_hat.argmax(1)
    return (z_hat @ (2 ** np.arange(z_hat.shape[1]))).astype(int)


def run_seed(full: ad.AnnData, seed: int, n_obs: int | None, model_kwargs: dict, train_kwargs: dict) -> list[dict]:
    adata, effects = thinned_design(full, seed, n_obs)
    model, seconds = fit_zconf(adata, model_kwargs, train_kwargs)
    donor = pd.get_dummies(adata.obs["donor"], drop_first=True).to_numpy(float)
    tables = {
        "naive (adjust=False)": model.treatment_effects(adjust=False),
        "donor-adjusted oracle": model.treatment_effects(z=donor),
        "zconf (defaults)": model.treatment_effects(),
    }
    rows = [
        {"method": method, **score(t["lfc"].to_numpy(), t["padj"].to_numpy(), effects)} for method, t in tables.items()
    ]
    rows[-1].update(
        latent=candidate_label((model.latent_distribution_, model.n_latent_)),
        ami_donor=float(adjusted_mutual_info_score(adata.obs["donor"], _state_code(model))),
        seconds=seconds,
    )
    naive = rows[0]["rmse"]
    for row in rows:
        row.update(seed=seed, n_obs=adata.n_obs, n_vars=adata.n_vars, rmse_ratio_to_naive=row["rmse"] / naive)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-obs", type=int, default=None, help="cells drawn per seed (default: all 12,261)")
    parser.add_argument("--smoke", action="store_true", help="600 cells and short training, for the test suite")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--suffix", default="", help="appended to the result names (runs split over processes)")
    args = parser.parse_args(argv)
    quiet()
    full = load(args.data)
    model_kwargs, train_kwargs, n_obs = {}, {}, args.n_obs
    if args.smoke:
        model_kwargs = {"n_hidden": 16, "max_latent": 1, "max_levels": 3}
        train_kwargs, n_obs = {"max_epochs": 4, "n_init": 1}, 600
    rows = [row for seed in args.seeds for row in run_seed(full, seed, n_obs, model_kwargs, train_kwargs)]
    name = ("real_semisynthetic_smoke" if args.smoke else "real_semisynthetic") + args.suffix
    columns = ["method", "seed", "n_obs", "n_vars", "rmse", "rmse_ratio_to_naive", "fdp", "power", "latent"]
    columns += ["ami_donor", "seconds"]
    title = "Kang control PBMCs, 8 donors hidden and made a confounder, known effects by thinning (per seed)"
    write(name, rows, columns, title, __doc__.split("\n\n")[1])
    metrics = ["rmse", "rmse_ratio_to_naive", "fdp", "power", "ami_donor", "seconds"]
    summary = summarise(rows, ("method",), metrics)
    summary_columns = ["method", "n_seeds", "rmse_mean", "rmse_ratio_to_naive_mean", "rmse_ratio_to_naive_worst"]
    summary_columns += ["fdp_mean", "fdp_worst", "power_mean", "ami_donor_mean", "seconds_mean"]
    write(f"{name}_summary", summary, summary_columns, "Kang 8-donor semi-synthetic summary")
    return rows


if __name__ == "__main__":
    main()
