"""Sample-aware effects on other real replicates: glioblastoma patients, null and power splits (no Z).

Run: ``.venv/bin/python -m benchmarks.sample_null_patients`` (under a minute); ``--smoke`` for 2 splits.
Writes ``benchmarks/results/sample_null_patients.{json,md}``. Skips (exit 0) without
``../shared/data/glioblastoma_zhao2021.h5ad``.

A check of :func:`zconf.analysis._pseudobulk.pseudobulk_effects` on data its defaults were not measured on
(``benchmarks/sample_null.py`` uses Kang control PBMCs): within one arm of the glioblastoma data (DMSO cells, or
panobinostat cells), 5 patients, a fake treatment is given to 2 of them (all 10 splits), so no gene has a true
effect. In the power design, 10% of the genes are changed in the treated patients' cells (×0.25 by binomial
thinning, ×4 by Poisson addition: tumours of different patients differ far more than Kang's donors, and with
×0.5 / ×2 the power at 3 residual df was 1%, too few calls to estimate an FDP). One pseudobulk per patient: 3
residual df.
"""

from __future__ import annotations

import argparse
import itertools
import warnings
from pathlib import Path

import numpy as np
from scipy import sparse, stats

from benchmarks._common import write
from benchmarks.sample_null import FDR, _score, add_effect
from zconf.analysis._pseudobulk import pseudobulk_effects
from zconf.glm import RegressionData

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glioblastoma_zhao2021.h5ad"
#: folds of the changed genes (alternating) in the power design
FOLDS = (0.25, 4.0)


def _split_rows(counts, patient: np.ndarray, arm: str, splits: list, rng) -> tuple[list[dict], dict]:
    """One row per (split, design); the untouched genes' p-values of every split, pooled per design."""
    rows, pooled = [], {"null": [], "power": []}
    n_touched = int(round(0.1 * counts.shape[1]))
    for split in splits:
        d = np.isin(patient, split).astype(float)
        touched = rng.choice(counts.shape[1], n_touched, replace=False)
        folds = np.where(np.arange(n_touched) % 2 == 0, *FOLDS)
        for design in ("null", "power"):
            y = counts if design == "null" else add_effect(counts, d, touched, folds, rng)
            data = RegressionData(counts=y, covariates=np.zeros((len(d), 0)), treatment=d)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = pseudobulk_effects(data, patient)
            p, padj = table["pvalue"].to_numpy(), table["padj"].to_numpy()
            truth = np.isin(np.arange(len(p)), touched) if design == "power" else None
            row = {"arm": arm, "design": design, "treated_patients": "+".join(split), **_score(p, padj, truth)}
            rows.append(row)
            untouched = np.isfinite(p) if truth is None else np.isfinite(p) & ~truth
            pooled[design].append(p[untouched])
    return rows, pooled


def _summary(arm: str, rows: list[dict], pooled: dict) -> list[dict]:
    out = []
    for design in ("null", "power"):
        part = [r for r in rows if r["design"] == design]
        p = np.concatenate(pooled[design])
        row = {"arm": arm, "design": design, "n_splits": len(part)}
        row["frac_called_mean"] = float(np.mean([r["frac_called"] for r in part]))
        row["frac_called_max"] = float(np.max([r["frac_called"] for r in part]))
        row.update({f"frac_p{t:g}".replace("0.", ""): float(np.mean(p < t)) for t in (0.01, 0.05, 0.1)})
        row["ks_p_pooled"] = float(stats.kstest(p, "uniform").pvalue)
        if design == "power":
            row["fdp_mean"] = float(np.mean([r["fdp"] for r in part]))
            row["fdp_max"] = float(np.max([r["fdp"] for r in part]))
            row["power_mean"] = float(np.mean([r["power"] for r in part]))
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 splits per arm")
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"{DATA} is absent: skipping.")
        return []
    import anndata as ad

    adata = ad.read_h5ad(DATA)
    summary = []
    for arm, value in (("DMSO", 0), ("panobinostat", 1)):
        cells = adata[adata.obs["treatment"].to_numpy() == value]
        patient = cells.obs["donor"].to_numpy().astype(str)
        splits = list(itertools.combinations(np.unique(patient), 2))[: 2 if args.smoke else None]
        counts = sparse.csr_matrix(cells.X).astype(np.int64)
        rows, pooled = _split_rows(counts, patient, arm, splits, np.random.default_rng(0))
        summary.extend(_summary(arm, rows, pooled))
        print(summary[-2:], flush=True)
    columns = list(dict.fromkeys(k for row in summary for k in row))
    notes = (
        "Glioblastoma (Zhao et al. 2021), one arm at a time, 5 patients, a fake treatment on 2 of them (all 10 "
        f"splits), one pseudobulk per patient (3 residual df), BH at {FDR}. Power: 10% of genes x0.25 or x4 in the "
        "treated patients' cells; `frac_p*` and `ks_p_pooled` are over the untouched genes of every split."
    )
    name = "sample_null_patients_smoke" if args.smoke else "sample_null_patients"
    write(name, summary, columns, "Sample-aware effects on glioblastoma patients (null and power splits)", notes)
    return summary


if __name__ == "__main__":
    main()
