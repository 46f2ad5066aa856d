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

A second design, ``--confounder score``, hides a continuous state instead of the donor: the first principal
component of log-normalised expression within cell types (:func:`state_score`, standardised), the largest axis
along which cells of one type differ. Each cell is treated with probability logistic(+/-1.5 x score) (the sign
drawn per seed), the effects are thinned in as above, and the oracle adjusts for the score itself. The case of
the continuous confounder of the issue on real hidden confounders, on real counts.

Results: ``results/real_semisynthetic.{json,md}`` and ``results/real_semisynthetic_summary.{json,md}``
(``real_semisynthetic_score*`` for the second design).

Run: ``python -m benchmarks.real_semisynthetic [--seeds 0 1 2] [--n-obs N] [--confounder donor|score] [--smoke]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.metrics import adjusted_mutual_info_score

import zconf
from benchmarks import _common
from benchmarks._common import quiet, summarise, write
from zconf.analysis import candidate_label

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kang_ctrl_8donor.h5ad"
MIN_MEAN = 0.05
EFFECT_FRACTION = 0.1
EFFECT_RANGE = (0.4, 1.2)
PROPENSITY_RANGE = (0.1, 0.9)
SCORE_SLOPE = 1.5
BH_LEVEL = 0.1


def load(path: Path = DATA) -> ad.AnnData:
    """The control cells with genes of mean count > 0.05, counts as integers."""
    adata = ad.read_h5ad(path)
    adata = adata[:, np.asarray(adata.X.mean(0)).ravel() > MIN_MEAN].copy()
    adata.X = sparse.csr_matrix(adata.X).astype(np.int64)
    return adata


def state_score(adata: ad.AnnData) -> np.ndarray:
    """A real continuous cell state: the first principal component of log-normalised expression within cell types.

    Counts per 10,000, log1p, each gene centred within each cell type and scaled to unit variance; the score is the
    leading left singular vector, standardised. It is the largest axis along which cells of one type differ, a
    state of the kind a stress, activation or cycle score measures.
    """
    counts = sparse.csr_matrix(adata.X).astype(np.float64)
    library = np.asarray(counts.sum(1)).ravel().clip(1)
    logged = np.log1p(np.asarray(sparse.diags(1e4 / library) @ counts.todense()))
    cell_types = adata.obs["cell_type"].astype(str).to_numpy()
    for cell_type in np.unique(cell_types):
        rows = cell_types == cell_type
        logged[rows] -= logged[rows].mean(0)
    logged /= logged.std(0).clip(1e-8)
    u, _, _ = np.linalg.svd(logged, full_matrices=False)
    return (u[:, 0] - u[:, 0].mean()) / u[:, 0].std()


def propensities(adata: ad.AnnData, confounder: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """P(treated) per cell and the hidden confounder's design columns (the oracle's Z).

    ``"donor"``: from 0.1 to 0.9 evenly over the donors, which donor gets which drawn by ``rng``; ``"score"``: the
    logistic of 1.5 x :func:`state_score`, with its sign drawn (P from about 0.05 to 0.95 over +/-2 SD).
    """
    if confounder == "donor":
        donors = adata.obs["donor"].astype(str).to_numpy()
        names = np.unique(donors)
        propensity = dict(zip(names, rng.permutation(np.linspace(*PROPENSITY_RANGE, len(names))), strict=True))
        columns = pd.get_dummies(adata.obs["donor"], drop_first=True).to_numpy(float)
        return np.vectorize(propensity.get)(donors), columns
    if confounder == "score":
        score = state_score(adata) * rng.choice([-1.0, 1.0])
        return 1 / (1 + np.exp(-SCORE_SLOPE * score)), score[:, None]
    msg = f"`confounder` must be 'donor' or 'score', got {confounder!r}."
    raise ValueError(msg)


def thinned_design(
    adata: ad.AnnData, seed: int, n_obs: int | None = None, confounder: str = "donor"
) -> tuple[ad.AnnData, np.ndarray, np.ndarray]:
    """A treatment set by the hidden confounder and known effects by binomial thinning.

    Returns the new AnnData, the effects and the confounder's design columns (the oracle's Z).
    """
    rng = np.random.default_rng(seed)
    if n_obs is not None and n_obs < adata.n_obs:
        adata = adata[np.sort(rng.choice(adata.n_obs, n_obs, replace=False))]
    donors = adata.obs["donor"].astype(str).to_numpy()
    propensity, hidden_columns = propensities(adata, confounder, rng)
    treatment = (rng.random(adata.n_obs) < propensity).astype(int)
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
    return out, effects, hidden_columns


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


def _best_correlation(model, hidden_columns: np.ndarray) -> float:
    """The largest |correlation| of a Z-hat column with the hidden score (0 without Z)."""
    z_hat = model.get_latent_representation()
    corrs = [abs(np.corrcoef(column, hidden_columns[:, 0])[0, 1]) for column in z_hat.T if column.std() > 0]
    return float(max(corrs, default=0.0))


def run_seed(
    full: ad.AnnData,
    seed: int,
    n_obs: int | None,
    model_kwargs: dict,
    train_kwargs: dict,
    confounder: str = "donor",
) -> list[dict]:
    adata, effects, hidden_columns = thinned_design(full, seed, n_obs, confounder)
    model, seconds = fit_zconf(adata, model_kwargs, train_kwargs)
    tables = {
        "naive (adjust=False)": model.treatment_effects(adjust=False),
        f"{confounder}-adjusted oracle": model.treatment_effects(z=hidden_columns),
        "zconf (defaults)": model.treatment_effects(),
    }
    rows = [
        {"method": method, **score(t["lfc"].to_numpy(), t["padj"].to_numpy(), effects)} for method, t in tables.items()
    ]
    rows[-1].update(
        latent=candidate_label((model.latent_distribution_, model.n_latent_)),
        ami_donor=float(adjusted_mutual_info_score(adata.obs["donor"], _state_code(model))),
        corr_confounder=_best_correlation(model, hidden_columns) if confounder == "score" else np.nan,
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
    parser.add_argument(
        "--confounder", choices=["donor", "score"], default="donor", help="the hidden factor that sets the treatment"
    )
    parser.add_argument(
        "--merge", nargs="+", default=None, help="only merge the rows of runs written with these suffixes"
    )
    args = parser.parse_args(argv)
    quiet()
    confounder = "" if args.confounder == "donor" else f"_{args.confounder}"
    name = ("real_semisynthetic_smoke" if args.smoke else "real_semisynthetic") + confounder
    if args.merge:
        rows = [
            row for suffix in args.merge for row in json.loads((_common.RESULTS / f"{name}{suffix}.json").read_text())
        ]
    else:
        full = load(args.data)
        model_kwargs, train_kwargs, n_obs = {}, {}, args.n_obs
        if args.smoke:
            model_kwargs = {"n_hidden": 16, "max_latent": 1, "max_levels": 3}
            train_kwargs, n_obs = {"max_epochs": 4, "n_init": 1}, 600
        rows = [
            row
            for seed in args.seeds
            for row in run_seed(full, seed, n_obs, model_kwargs, train_kwargs, args.confounder)
        ]
        name += args.suffix
    write_results(name, rows, args.confounder)
    return rows


def write_results(name: str, rows: list[dict], confounder: str) -> None:
    """The per-seed table ``name`` and its summary over seeds, ``name_summary``."""
    columns = ["method", "seed", "n_obs", "n_vars", "rmse", "rmse_ratio_to_naive", "fdp", "power", "latent"]
    columns += ["ami_donor", "corr_confounder", "seconds"]
    hidden_factor = "8 donors" if confounder == "donor" else "a continuous cell state (PC1 within cell types)"
    title = f"Kang control PBMCs, {hidden_factor} hidden and made a confounder, known effects by thinning (per seed)"
    write(name, rows, columns, title, __doc__.split("\n\n")[1])
    metrics = ["rmse", "rmse_ratio_to_naive", "fdp", "power", "ami_donor", "corr_confounder", "seconds"]
    summary = summarise(rows, ("method",), metrics)
    summary_columns = ["method", "n_seeds", "rmse_mean", "rmse_ratio_to_naive_mean", "rmse_ratio_to_naive_worst"]
    summary_columns += ["fdp_mean", "fdp_worst", "power_mean", "ami_donor_mean", "corr_confounder_mean", "seconds_mean"]
    write(f"{name}_summary", summary, summary_columns, f"Kang semi-synthetic summary, {hidden_factor} hidden")


if __name__ == "__main__":
    main()
