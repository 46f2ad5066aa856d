"""Sample-aware effects on real donors: null and power splits of Kang control PBMCs, per-cell vs pseudobulk.

Run: ``.venv/bin/python -m benchmarks.sample_null`` (about 15 minutes on 2 CPU cores); ``--quick`` for a
smoke run (< 60 s). Writes ``benchmarks/results/sample_null.{json,md}``. Skips (exit 0) without
``../shared/data/kang_ctrl_8donor.h5ad``.

A fake treatment is given to 4 of the 8 donors (the 35 distinct 4-vs-4 splits; ``--splits`` of them, evenly
spaced), so no gene has a true effect (null). In the power design, 10% of the genes are changed in every cell
of the treated donors by a known fold (0.5 by binomial thinning, 2 by Poisson addition). Methods:

- ``per_cell``: the NB GLM of ``treatment_effects()``, cells as replicates (design [1, cell type, D], log
  library offset, Wald test);
- ``pseudobulk_all``: :func:`pseudobulk_effects`, one pseudobulk per donor over all cell types, no Z;
- ``pseudobulk_groups``: the same with ``groups=cell type`` (one table per cell type, as muscat);
- ``pseudobulk_groups_zhat``: with a ZConf Z-hat (a short fit, ``--z-steps``), as a composition covariate;
- ``per_state_zhat``: the design not kept: pseudobulks per (donor, cell type, Z-hat state) with the state as
  a pseudobulk-level covariate, so the residual df come from pseudobulks;
- ``pydeseq2_cd4``: PyDESeq2 (Wald, its default) on the CD4 T cell pseudobulks, next to ours on the same.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import sparse, stats

from benchmarks import _common
from benchmarks._common import quiet
from zconf.analysis import benjamini_hochberg
from zconf.analysis._pseudobulk import pseudobulk_effects
from zconf.glm import RegressionData, design_matrix, fit_nb_glm

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kang_ctrl_8donor.h5ad"
FDR = 0.1


def _one_hot(labels: np.ndarray) -> np.ndarray:
    """One-hot of a categorical with the first level dropped (reference coding)."""
    levels = np.unique(labels)
    return (labels[:, None] == levels[None, 1:]).astype(float)


def per_cell(counts, cell_type, d) -> np.ndarray:
    """P-values of the per-cell NB GLM of ``treatment_effects()``: [1, cell type, D], log library, Wald."""
    design = design_matrix(_one_hot(cell_type), d)
    offset = np.log(np.asarray(counts.sum(1)).ravel())
    fit = fit_nb_glm(counts, design.matrix, offset=offset)
    j = design.treatment_index
    se = fit.se[:, j]
    ok = fit.converged & np.isfinite(se) & (se > 0)
    return np.where(ok, 2 * stats.norm.sf(np.abs(fit.coef[:, j] / np.where(ok, se, 1.0))), np.nan)


def add_effect(counts, d, genes, folds, rng):
    """Counts with gene ``genes[i]`` scaled by ``folds[i]`` in the treated cells (thinning / Poisson addition)."""
    out = counts.tocsc(copy=True).astype(np.int64)
    treated = d == 1
    for g, fold in zip(genes, folds, strict=True):
        column = out[:, g].toarray().ravel()
        y = column[treated]
        column[treated] = rng.binomial(y, fold) if fold < 1 else y + rng.poisson((fold - 1) * y)
        out[:, g] = sparse.csc_matrix(column[:, None])
    return out.tocsr()


def zhat(adata, d, steps: int, seed: int) -> np.ndarray:
    """Hard Z-hat of a short ZConf fit (``n_latent=1``, ``steps`` minibatch steps of 256 cells), D the treatment."""
    import scvi

    import zconf

    fit = adata.copy()
    fit.obs["fake_treatment"] = d.astype(int)
    scvi.settings.seed = seed
    zconf.ZConf.setup_anndata(fit, treatment_key="fake_treatment", categorical_covariate_keys=["cell_type"])
    model = zconf.ZConf(fit, n_latent=1)  # one binary Z-hat: a covariate to test calibration with
    epochs = max(1, int(np.ceil(steps * 256 / fit.n_obs)))
    model.train(max_epochs=epochs, batch_size=256, accelerator="cpu", enable_progress_bar=False)
    return model.get_latent_representation()


def _score(pvalues: np.ndarray, padj: np.ndarray, touched: np.ndarray | None) -> dict:
    tested = np.isfinite(pvalues)
    called = tested & (padj < FDR)
    out = {"n_tested": int(tested.sum()), "n_called": int(called.sum()), "frac_called": called.sum() / tested.sum()}
    untouched = tested if touched is None else tested & ~touched
    out["ks_p"] = float(stats.kstest(pvalues[untouched], "uniform").pvalue)
    out["frac_p05"] = float(np.mean(pvalues[untouched] < 0.05))
    if touched is not None:
        out["fdp"] = float((called & ~touched).sum() / max(called.sum(), 1))
        out["power"] = float((called & touched).sum() / max((tested & touched).sum(), 1))
    return out


def _pseudobulk(table: pd.DataFrame, touched_genes: np.ndarray | None) -> tuple:
    genes = table.index.get_level_values("gene").to_numpy()
    touched = None if touched_genes is None else np.isin(genes, touched_genes)
    return table["pvalue"].to_numpy(), table["padj"].to_numpy(), touched


def pydeseq2_pvalues(y: np.ndarray, d: np.ndarray, min_mu: float = 0.5) -> tuple[np.ndarray, np.ndarray, dict]:
    """PyDESeq2 Wald test (defaults, one CPU) on a pseudobulk table ``y`` (samples x genes).

    ``min_mu``: PyDESeq2's (and DESeq2's) floor on the fitted means in its IRLS weights, 0.5 by default.
    """
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.default_inference import DefaultInference
    from pydeseq2.ds import DeseqStats

    names = [f"s{i}" for i in range(len(d))]
    counts = pd.DataFrame(y.astype(int), index=names, columns=[f"g{j}" for j in range(y.shape[1])])
    meta = pd.DataFrame({"d": np.where(d == 1, "t", "c")}, index=names)
    inference = DefaultInference(n_cpus=1)
    dds = DeseqDataSet(counts=counts, metadata=meta, design="~d", inference=inference, quiet=True, min_mu=min_mu)
    dds.deseq2()
    res = DeseqStats(dds, contrast=["d", "t", "c"], inference=inference, quiet=True)
    res.summary()
    frame = res.results_df
    return frame["pvalue"].to_numpy(float), frame["padj"].to_numpy(float), {"dds": dds}


def agreement(y: np.ndarray, d: np.ndarray) -> dict:
    """PyDESeq2 against the project's IRLS on one pseudobulk without Z: coefficients, seconds."""
    start = time.perf_counter()
    pvalue_ref, _, extra = pydeseq2_pvalues(y, d)
    seconds_ref = time.perf_counter() - start
    dds = extra["dds"]
    size_factors = np.asarray(dds.obs["size_factors"], dtype=float)
    dispersion = np.asarray(dds.var["dispersions"], dtype=float)
    lfc_ref = dds.varm["LFC"]["d[T.t]"].to_numpy(float)  # natural log
    ok = np.isfinite(lfc_ref) & np.isfinite(dispersion) & (y.sum(0) > 0)
    design = design_matrix(np.zeros((len(d), 0)), d)
    same = fit_nb_glm(y[:, ok], design.matrix, offset=np.log(size_factors), dispersion=dispersion[ok], tol=1e-10)
    diff_same = np.abs(same.coef[:, 1] - lfc_ref[ok])
    # PyDESeq2 replaces Cook's-distance outlier counts and refits those genes (its default refit_cooks=True)
    refitted = dds.var["refitted"].to_numpy(bool)[ok] if "refitted" in dds.var else np.zeros(ok.sum(), bool)
    far = diff_same >= 1e-3
    data = RegressionData(counts=y, covariates=np.zeros((len(d), 0)), treatment=d)
    start = time.perf_counter()
    ours = pseudobulk_effects(data, np.arange(len(d)), min_cells=0)  # rows are already pseudobulks
    seconds_ours = time.perf_counter() - start
    diff_ours = np.abs(ours["lfc"].to_numpy()[ok] - lfc_ref[ok])
    # The genes beyond 1e-3 have fitted means below 0.5 in some sample: PyDESeq2 floors the means in its IRLS
    # weights at min_mu = 0.5 (as DESeq2), which moves the fit away from the NB MLE there. Without the floor:
    _, _, unfloored = pydeseq2_pvalues(y, d, min_mu=1e-6)
    dds0 = unfloored["dds"]
    lfc0 = dds0.varm["LFC"]["d[T.t]"].to_numpy(float)
    dispersion0 = np.asarray(dds0.var["dispersions"], dtype=float)
    ok0 = np.isfinite(lfc0) & np.isfinite(dispersion0) & (y.sum(0) > 0)
    offset0 = np.log(np.asarray(dds0.obs["size_factors"], dtype=float))
    same0 = fit_nb_glm(y[:, ok0], design.matrix, offset=offset0, dispersion=dispersion0[ok0], tol=1e-10)
    diff0 = np.abs(same0.coef[:, 1] - lfc0[ok0])
    fitted = np.exp(design.matrix @ same.coef.T + np.log(size_factors)[:, None])
    return {
        "n_genes": int(ok.sum()),
        "max_abs_diff_same_dispersion_and_size_factors": float(np.nanmax(diff_same)),
        "median_abs_diff_same_dispersion_and_size_factors": float(np.nanmedian(diff_same)),
        "frac_within_1e-3_same": float(np.nanmean(diff_same < 1e-3)),
        "n_refitted_by_cooks": int(refitted.sum()),
        "n_beyond_1e-3_same": int(far.sum()),
        "n_beyond_1e-3_same_and_refitted": int((far & refitted).sum()),
        "max_abs_diff_same_not_refitted": float(np.nanmax(diff_same[~refitted])) if (~refitted).any() else np.nan,
        "n_beyond_1e-3_same_with_a_mean_below_0.5": int((far & (fitted.min(0) < 0.5)).sum()),
        "max_abs_diff_same_pydeseq2_min_mu_1e-6": float(np.nanmax(diff0)),
        "frac_within_1e-3_same_pydeseq2_min_mu_1e-6": float(np.nanmean(diff0 < 1e-3)),
        "median_abs_diff_full_pipelines": float(np.nanmedian(diff_ours)),
        "frac_within_1e-3_full_pipelines": float(np.nanmean(diff_ours < 1e-3)),
        "pvalue_spearman_full_pipelines": float(
            stats.spearmanr(pvalue_ref[ok], ours["pvalue"].to_numpy()[ok], nan_policy="omit").statistic
        ),
        "seconds_pydeseq2": seconds_ref,
        "seconds_ours": seconds_ours,
    }


def speed(counts, cell_type, donor, z) -> dict:
    """Seconds of :func:`pseudobulk_effects` on the data with each donor split into 2 samples (16), Z-hat given."""
    rng = np.random.default_rng(0)
    half = rng.integers(0, 2, len(donor))
    samples = np.char.add(np.char.add(donor.astype(str), "_"), half.astype(str))
    levels = np.unique(samples)
    treated = set(levels[rng.permutation(len(levels))[: len(levels) // 2]])
    d = np.isin(samples, list(treated)).astype(float)
    data = RegressionData(counts=counts, covariates=np.zeros((len(d), 0)), treatment=d)
    out = {"n_obs": int(counts.shape[0]), "n_genes": int(counts.shape[1]), "n_samples": len(levels)}
    for name, kwargs in (("seconds_all_cells", {}), ("seconds_groups", {"groups": cell_type})):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pseudobulk_effects(data, samples, z, **kwargs)
        out[name] = time.perf_counter() - start
    return out


def run(args) -> list[dict]:
    import anndata as ad

    adata = ad.read_h5ad(DATA)
    counts = sparse.csr_matrix(adata.X).astype(np.int64)
    donor = adata.obs["donor"].to_numpy().astype(str)
    cell_type = adata.obs["cell_type"].to_numpy().astype(str)
    donors = np.unique(donor)
    every = [c for c in itertools.combinations(donors, 4) if donors[0] in c]  # the 35 distinct splits
    picks = np.unique(np.linspace(0, len(every) - 1, args.splits).round().astype(int))
    rng = np.random.default_rng(0)
    n_touched = int(round(0.1 * counts.shape[1]))
    rows, pooled = [], {}
    for index in picks:
        split = every[index]
        d = np.isin(donor, split).astype(float)
        touched = rng.choice(counts.shape[1], n_touched, replace=False)
        folds = np.where(np.arange(n_touched) % 2 == 0, 0.5, 2.0)
        for design in ("null", "power"):
            y = counts if design == "null" else add_effect(counts, d, touched, folds, rng)
            truth = None if design == "null" else touched
            base = {"split": int(index), "treated_donors": "+".join(split), "design": design}
            data = RegressionData(counts=y, covariates=np.zeros((len(d), 0)), treatment=d)
            tables = {}
            if index in picks[: args.per_cell_splits if design == "null" else args.per_cell_power_splits]:
                start = time.perf_counter()
                p = per_cell(y if not args.quick else y[:, : args.quick_genes], cell_type, d)
                seconds = time.perf_counter() - start
                flag = None if truth is None else np.isin(np.arange(len(p)), truth)
                row = {**base, "method": "per_cell", **_score(p, benjamini_hochberg(p), flag), "seconds": seconds}
                rows.append(row)
                _keep(pooled, design, "per_cell", p, flag)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                tables["pseudobulk_all"] = pseudobulk_effects(data, donor)
                tables["pseudobulk_all_seconds"] = time.perf_counter() - start
                start = time.perf_counter()
                tables["pseudobulk_groups"] = pseudobulk_effects(data, donor, groups=cell_type)
                tables["pseudobulk_groups_seconds"] = time.perf_counter() - start
                if not args.quick and index in picks[: args.z_splits]:
                    start = time.perf_counter()
                    z = zhat(adata if design == "null" else _with_counts(adata, y), d, args.z_steps, 0)
                    z_seconds = time.perf_counter() - start
                    tables["pseudobulk_groups_zhat"] = pseudobulk_effects(data, donor, z, groups=cell_type)
                    state = np.char.add(np.char.add(donor, "|"), z[:, 0].astype(int).astype(str))
                    per_state = RegressionData(counts=y, covariates=z.astype(float), treatment=d)
                    tables["per_state_zhat"] = pseudobulk_effects(per_state, state, groups=cell_type)
            for method in ("pseudobulk_all", "pseudobulk_groups", "pseudobulk_groups_zhat", "per_state_zhat"):
                if method in tables:
                    p, padj, flag = _pseudobulk(tables[method], truth)
                    row = {**base, "method": method, **_score(p, padj, flag)}
                    _keep(pooled, design, method, p, flag)
                    if f"{method}_seconds" in tables:
                        row["seconds"] = tables[f"{method}_seconds"]
                    if method in ("per_state_zhat", "pseudobulk_groups_zhat"):
                        row["df_residual"] = float(tables[method]["df_residual"].median())
                        row["zhat_mean"], row["zhat_fit_seconds"] = float(z.mean()), z_seconds
                    rows.append(row)
            if not args.quick and not args.no_pydeseq2:
                cd4 = cell_type == "CD4 T cells"
                y_cd4 = np.stack([np.asarray(y[cd4 & (donor == s)].sum(0)).ravel() for s in donors]).astype(float)
                d_cd4 = np.isin(donors, split).astype(float)
                p_ref, padj_ref, _ = pydeseq2_pvalues(y_cd4, d_cd4)
                flag = None if truth is None else np.isin(np.arange(len(p_ref)), truth)
                rows.append({**base, "method": "pydeseq2_cd4", **_score(p_ref, padj_ref, flag)})
                _keep(pooled, design, "pydeseq2_cd4", p_ref, flag)
                ours = pseudobulk_effects(
                    RegressionData(counts=y_cd4, covariates=np.zeros((8, 0)), treatment=d_cd4), donors, min_cells=0
                )
                p, padj, flag = _pseudobulk(ours, truth)
                rows.append({**base, "method": "pseudobulk_cd4", **_score(p, padj, flag)})
                _keep(pooled, design, "pseudobulk_cd4", p, flag)
            for row in rows:
                if row["split"] == int(index) and row["design"] == design:
                    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    return rows, pooled, adata, counts, donor, cell_type


def _keep(pooled: dict, design: str, method: str, pvalues: np.ndarray, touched: np.ndarray | None) -> None:
    """Collect the untouched genes' p-values of every split, for one KS test pooled over splits."""
    keep = np.isfinite(pvalues) if touched is None else np.isfinite(pvalues) & ~touched
    pooled.setdefault((design, method), []).append(pvalues[keep])


def _with_counts(adata, y):
    out = adata.copy()
    out.X = y
    return out


def summary(rows: list[dict], pooled: dict) -> list[dict]:
    """Per (design, method): mean and worst over splits, and the KS p-value of all untouched p-values pooled."""
    frame = pd.DataFrame(rows)
    out = []
    for (design, method), part in frame.groupby(["design", "method"], sort=False):
        row = {"design": design, "method": method, "n_splits": len(part)}
        row["frac_called_mean"] = float(part["frac_called"].mean())
        row["frac_called_max"] = float(part["frac_called"].max())
        row["frac_p05_mean"] = float(part["frac_p05"].mean())
        row["ks_p_min_split"] = float(part["ks_p"].min())
        row["ks_p_pooled"] = float(stats.kstest(np.concatenate(pooled[(design, method)]), "uniform").pvalue)
        if "fdp" in part:
            row["fdp_mean"] = float(part["fdp"].mean())
            row["fdp_max"] = float(part["fdp"].max())
            row["power_mean"] = float(part["power"].mean())
        if "seconds" in part and part["seconds"].notna().any():
            row["seconds_mean"] = float(part["seconds"].mean())
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 splits, 200 genes per cell, no Z-hat")
    parser.add_argument("--splits", type=int, default=12, help="4-vs-4 splits (of 35), evenly spaced")
    parser.add_argument("--z-splits", type=int, default=4, help="splits that also get a ZConf Z-hat")
    parser.add_argument("--z-steps", type=int, default=300, help="ZConf minibatch steps per Z-hat fit")
    parser.add_argument("--per-cell-splits", type=int, default=5, help="null splits that also get the per-cell fit")
    parser.add_argument("--per-cell-power-splits", type=int, default=2, help="power splits with the per-cell fit")
    parser.add_argument("--no-pydeseq2", action="store_true")
    parser.add_argument(
        "--agreement-only", action="store_true", help="re-run only the PyDESeq2 agreement on the written results"
    )
    parser.add_argument("--quick-genes", type=int, default=200, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"sample_null: {DATA} not found; skipping (needs ../shared/data).")
        return 0
    quiet()
    torch.set_num_threads(1)
    if args.quick:
        args.splits = args.per_cell_splits = args.per_cell_power_splits = 2
    name = "sample_null_quick" if args.quick else "sample_null"
    if args.agreement_only:
        import json

        import anndata as ad

        adata = ad.read_h5ad(DATA)
        counts = sparse.csr_matrix(adata.X).astype(np.int64)
        donor = adata.obs["donor"].to_numpy().astype(str)
        cell_type = adata.obs["cell_type"].to_numpy().astype(str)
        written = json.loads((_common.RESULTS / f"{name}.json").read_text())
        rows, table, speed_row = written["per_split"], written["summary"], written["speed"]
        args.splits = len({row["split"] for row in rows})
    else:
        rows, pooled, adata, counts, donor, cell_type = run(args)
        table = summary(rows, pooled)
        z = (np.random.default_rng(1).random(adata.n_obs) < 0.3).astype(float)[:, None]
        speed_row = speed(counts, cell_type, donor, z)
        print(speed_row, flush=True)
    extra = {}
    if not args.agreement_only:
        _write(name, rows, table, speed_row, extra, args)  # written before the slower agreement part
    if not args.quick and not args.no_pydeseq2:
        cd4 = cell_type == "CD4 T cells"
        donors = np.unique(donor)
        y_cd4 = np.stack([np.asarray(counts[cd4 & (donor == s)].sum(0)).ravel() for s in donors]).astype(float)
        extra["agreement_cd4"] = agreement(y_cd4, np.isin(donors, donors[:4]).astype(float))
        half = np.random.default_rng(0).integers(0, 2, len(donor))
        samples = np.char.add(donor, half.astype(str))
        y16 = np.stack([np.asarray(counts[samples == s].sum(0)).ravel() for s in np.unique(samples)]).astype(float)
        extra["agreement_16_samples"] = agreement(y16, (np.arange(len(y16)) % 2).astype(float))
        print(extra, flush=True)
    _write(name, rows, table, speed_row, extra, args)
    return 0


def _write(name, rows, table, speed_row, extra, args) -> None:
    import json

    columns = [
        "design",
        "method",
        "n_splits",
        "frac_called_mean",
        "frac_called_max",
        "frac_p05_mean",
        "ks_p_min_split",
        "ks_p_pooled",
        "fdp_mean",
        "fdp_max",
        "power_mean",
        "seconds_mean",
    ]
    notes = (
        f"Kang control PBMCs ({DATA.name}), 8 donors, fake treatment on 4 donors; {args.splits} of the 35 "
        f"splits; BH at {FDR}. Null rows: no true effect; `frac_called` = genes (rows of (cell type, gene) for "
        "the `groups` methods) at padj < 0.1 among tested ones. Power rows: 10% of genes x0.5 (binomial "
        "thinning) or x2 (Poisson addition) in the treated donors' cells; `ks_p` is over the untouched genes. "
        f"The per-cell fit (~85 s each on 2 shared cores) runs on the first {args.per_cell_splits} null and "
        f"{args.per_cell_power_splits} power splits only. Z-hat: ZConf, {args.z_steps} steps of 256 cells, hard, "
        f"on the first {args.z_splits} splits. "
        f"Speed ({speed_row['n_obs']} cells x {speed_row['n_genes']} genes, {speed_row['n_samples']} samples, "
        f"Z-hat given): {speed_row['seconds_all_cells']:.2f} s all cells, {speed_row['seconds_groups']:.2f} s "
        "per cell type. Per split: `sample_null.json`."
    )
    _common.write(name, table, columns, "Sample-aware effects on real donors (null and power splits)", notes)
    path = _common.RESULTS / f"{name}.json"
    payload = {"summary": table, "per_split": rows, "speed": speed_row, **extra}
    path.write_text(json.dumps(payload, indent=2, default=float))
    if extra:
        with (_common.RESULTS / f"{name}.md").open("a") as handle:
            handle.write("\n## PyDESeq2 against the project's IRLS (pseudobulk without Z)\n\n")
            for key, values in extra.items():
                handle.write(f"- {key}: " + ", ".join(f"{k}={v:.4g}" for k, v in values.items()) + "\n")


if __name__ == "__main__":
    sys.exit(main())
