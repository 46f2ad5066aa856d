"""A real hidden confounder on real counts: the glioblastoma patient, hidden and made a confounder.

Data: ``../shared/data/glioblastoma_zhao2021.h5ad`` (Zhao et al. 2021; 5 patients, 500 panobinostat + 500 DMSO
cells each, 300 genes).

- **Reference effect**: on the full, balanced data, the per-gene NB GLM of counts on
  [1, log library, D, one-hot patient], genes of mean count > 0.05. The design is balanced, so the patient is
  not a confounder there and this is the best available truth on real counts.
- **Confounded subsample**: within each patient one arm is subsampled so that P(treated | patient) runs evenly
  from 0.1 to 0.9 over the five patients (about 3,500 cells); which patient gets which propensity is drawn per
  seed.
- Every patient-level column (donor, sample, age, sex, location) is hidden; ZConf sees the treatment, the counts
  and the log library size (a continuous covariate, as in the reference), with defaults otherwise.
- Each method's effects (the D coefficient of the same per-gene NB GLM, with its Z-hat or correction as extra
  columns) are compared with the reference by RMSE over genes: naive (no adjustment), the patient-adjusted
  oracle, RUV-style residual PCA, and ZConf.

A second design, ``--design kang_distinct`` (``../shared/data/kang_distinct_3donor.h5ad``: Kang IFN-beta PBMCs, 3
donors, both arms, 100 genes), does the same with the donor: P(stimulated | donor) runs from 0.15 to 0.85 over the
three donors. The cell type is a categorical covariate and the data's ``size_factor`` (from all genes) the NB
offset (``size_factor_key``), in ZConf and in every GLM: of these 100 genes, ISG15 alone is 40% of a stimulated
cell's counts, so their own total is no measure of depth.

A third, ``--design glioblastoma_balanced``, keeps every cell of the glioblastoma data: P(treated | patient) is 0.5
for every patient, so the patient confounds nothing, the naive fit is right, and the check is that ZConf does no
harm on real counts without a confounder.

With ``--sample-key``, ZConf is also told which cells share a sample (the slice, or the donor x condition well),
as opaque labels ``s0, s1, ...`` in a random order, so that the patient stays hidden; ``setup_anndata(sample_key=
...)`` then requires a state's share to differ between treated and untreated samples beyond the spread between
samples (:class:`zconf.analysis.SampleLink`), and a row gives the effects with every sample weighted alike
(``treatment_effects(weight_samples=True)``). The results get the suffix ``_samples``.

Results: ``results/real_confounded.{json,md}`` and ``results/real_confounded_summary.{json,md}``
(``real_confounded_kang_distinct*`` for the second design).

Run: ``python -m benchmarks.real_confounded [--design glioblastoma|glioblastoma_balanced|kang_distinct]
[--seeds 0 1 2] [--smoke]``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_mutual_info_score

import zconf
from benchmarks._common import quiet, summarise, write
from zconf.glm import design_matrix, fit_nb_glm

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATA = SHARED_DATA / "glioblastoma_zhao2021.h5ad"
MIN_MEAN = 0.05


@dataclass(frozen=True)
class Design:
    """A real data set whose donor (or patient) is hidden and made a confounder.

    ``hidden_columns`` name the donor (hidden from every method but the oracle); ``propensities`` are the
    P(treated | donor) given to the donors; ``categorical_keys`` the covariates ZConf and the GLMs adjust for;
    ``size_factor_key`` the offset, else the log library is a covariate (the glioblastoma reference's choice).
    """

    path: Path
    hidden_columns: tuple[str, ...]
    propensities: tuple[float, ...]
    categorical_keys: tuple[str, ...] = ()
    size_factor_key: str | None = None


DESIGNS = {
    "glioblastoma": Design(DATA, ("donor", "sample_id", "age", "sex", "location"), tuple(np.linspace(0.1, 0.9, 5))),
    # the same data with both arms kept in every patient: no confounding by design, so the naive fit is right and
    # any move of the adjusted effects away from the reference is harm (seeds then differ in the fit's seed only)
    "glioblastoma_balanced": Design(DATA, ("donor", "sample_id", "age", "sex", "location"), (0.5,) * 5),
    "kang_distinct": Design(
        SHARED_DATA / "kang_distinct_3donor.h5ad",
        ("donor", "sample_id", "condition", "total_counts_all_genes", "total_counts"),
        (0.15, 0.5, 0.85),
        categorical_keys=("cell_type",),
        size_factor_key="size_factor",
    ),
}


def load(path: Path = DATA) -> ad.AnnData:
    """The counts with ``log_library`` in obs and genes of mean count > 0.05."""
    adata = ad.read_h5ad(path)
    adata = adata[:, np.asarray(adata.X.mean(0)).ravel() > MIN_MEAN].copy()
    adata.layers["counts"] = adata.X.copy()
    adata.obs["log_library"] = np.log(np.asarray(adata.X.sum(1)).ravel().clip(1))
    return adata


def _covariates_and_offset(adata, design: Design) -> tuple[np.ndarray, np.ndarray | None]:
    """The GLMs' covariates (one-hot categorical keys, and the log library without a size factor) and log offset."""
    parts = [pd.get_dummies(adata.obs[key], drop_first=True).to_numpy(float) for key in design.categorical_keys]
    if design.size_factor_key is None:
        return np.hstack([adata.obs[["log_library"]].to_numpy(float), *parts]), None
    return np.hstack(parts), np.log(adata.obs[design.size_factor_key].to_numpy(float))


def glm_effects(adata, extra: np.ndarray | None = None, design: Design = DESIGNS["glioblastoma"]) -> np.ndarray:
    """D coefficient of the per-gene NB GLM on [1, library, covariates, D, extra] (NaN where IRLS did not converge).

    The library enters as the design's offset (``size_factor_key``) or, without one, as the log library covariate.
    """
    covariates, offset = _covariates_and_offset(adata, design)
    matrix = design_matrix(covariates, adata.obs["treatment"].to_numpy(float), extra)
    fit = fit_nb_glm(adata.layers["counts"], matrix.matrix, offset=offset)
    return np.where(fit.converged, fit.coef[:, matrix.treatment_index], np.nan)


def patient_one_hot(adata) -> np.ndarray:
    return pd.get_dummies(adata.obs["donor"], drop_first=True).to_numpy(float)


def confounded_subsample(adata, seed: int, propensities=DESIGNS["glioblastoma"].propensities) -> ad.AnnData:
    """Subsample one arm within each patient so that P(treated | patient) takes the ``propensities``."""
    rng = np.random.default_rng(seed)
    patients = adata.obs["donor"].astype("category").cat.categories
    keep = []
    for patient, propensity in zip(patients, rng.permutation(np.asarray(propensities)), strict=True):
        cells = np.flatnonzero(adata.obs["donor"].to_numpy() == patient)
        treated = cells[adata.obs["treatment"].to_numpy()[cells] == 1]
        control = cells[adata.obs["treatment"].to_numpy()[cells] == 0]
        n_treated = min(len(treated), round(len(control) * propensity / (1 - propensity)))
        n_control = min(len(control), round(len(treated) * (1 - propensity) / propensity))
        keep += [rng.choice(treated, n_treated, replace=False), rng.choice(control, n_control, replace=False)]
    return adata[np.sort(np.concatenate(keep))].copy()


def residual_pca(adata, n_components: int = 5, design: Design = DESIGNS["glioblastoma"]) -> np.ndarray:
    """RUV-style correction: top PCs of the naive fit's Pearson residuals."""
    covariates, offset = _covariates_and_offset(adata, design)
    offset = np.zeros(adata.n_obs) if offset is None else offset
    matrix = design_matrix(covariates, adata.obs["treatment"].to_numpy(float))
    fit = fit_nb_glm(adata.layers["counts"], matrix.matrix, offset=offset)
    y = np.asarray(adata.layers["counts"].todense(), dtype=float)
    mu = np.exp(matrix.matrix @ fit.coef.T + offset[:, None])
    residuals = (y - mu) / np.sqrt(mu + fit.dispersion * mu**2)
    residuals -= residuals.mean(0)
    u, s, _ = np.linalg.svd(residuals, full_matrices=False)
    return u[:, :n_components] * s[:n_components]


def hidden(adata, columns: tuple[str, ...] = DESIGNS["glioblastoma"].hidden_columns) -> ad.AnnData:
    """The subsample as a user without patient labels would have it."""
    out = adata.copy()
    out.obs = out.obs.drop(columns=[c for c in columns if c in out.obs])
    return out


#: The column of opaque sample labels the user sees with ``--sample-key``.
SAMPLE_COLUMN = "sample"


def opaque_samples(adata, seed: int) -> pd.Categorical:
    """The sample (patient x arm) of every cell as ``s0, s1, ...`` in a random order: no label names the patient."""
    samples = (adata.obs["donor"].astype(str) + "|" + adata.obs["treatment"].astype(str)).to_numpy()
    levels = np.random.default_rng(seed).permutation(np.unique(samples))
    codes = {level: f"s{i}" for i, level in enumerate(levels)}
    return pd.Categorical([codes[s] for s in samples])


def fit_zconf(
    adata,
    seed: int,
    model_kwargs: dict,
    train_kwargs: dict,
    design: Design = DESIGNS["glioblastoma"],
    with_samples: bool = False,
):
    user = hidden(adata, design.hidden_columns)
    samples = {}
    if with_samples:
        user.obs[SAMPLE_COLUMN] = opaque_samples(adata, seed)
        samples = {"sample_key": SAMPLE_COLUMN}
    library = (
        {"continuous_covariate_keys": ["log_library"]}
        if design.size_factor_key is None
        else {"size_factor_key": design.size_factor_key}
    )
    zconf.ZConf.setup_anndata(
        user,
        layer="counts",
        treatment_key="treatment",
        categorical_covariate_keys=list(design.categorical_keys) or None,
        **library,
        **samples,
    )
    model = zconf.ZConf(user, **model_kwargs)
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False, random_state=seed, **train_kwargs)
    return model, time.perf_counter() - start


def _share_range(model) -> str:
    """The range of P(D | state) over the states of Z-hat holding at least 2% of the cells."""
    overlap = model.state_overlap()
    judged = overlap[overlap["share"] >= 0.02]["treated_share"]
    return f"{judged.min():.2f}-{judged.max():.2f}"


def _roles(model) -> str:
    """Each fitted candidate's role, with the sample-level link p-value where samples were registered."""
    table = model.latent_selection_
    parts = []
    for label, row in table.iloc[1:].iterrows():
        pvalue = row.get("sample_link_pvalue", np.nan)
        parts.append(f"{label}: {row['role']}" + ("" if pd.isna(pvalue) else f" (samples p={pvalue:.3f})"))
    return "; ".join(parts)


def _rmse(estimate: np.ndarray, reference: np.ndarray) -> float:
    ok = np.isfinite(estimate) & np.isfinite(reference)
    return float(np.sqrt(np.mean((estimate[ok] - reference[ok]) ** 2)))


def run_seed(
    full,
    reference: np.ndarray,
    seed: int,
    model_kwargs: dict,
    train_kwargs: dict,
    design: Design = DESIGNS["glioblastoma"],
    with_samples: bool = False,
) -> list[dict]:
    sub = confounded_subsample(full, seed, design.propensities)
    naive = _rmse(glm_effects(sub, design=design), reference)
    oracle = glm_effects(sub, patient_one_hot(sub), design)
    ruv = glm_effects(sub, residual_pca(sub, design=design), design)
    rows = [
        {"method": "naive GLM (no Z)", "rmse": naive},
        {"method": "patient-adjusted oracle", "rmse": _rmse(oracle, reference)},
        {"method": "residual PCA, 5 PCs (RUV-style)", "rmse": _rmse(ruv, reference)},
    ]
    model, seconds = fit_zconf(sub, seed, model_kwargs, train_kwargs, design, with_samples)
    table = model.treatment_effects()
    z_hat = model.get_latent_representation()
    code = z_hat @ (2 ** np.arange(z_hat.shape[1])) if z_hat.ndim == 2 else z_hat
    rows.append(
        {
            "method": "zconf (defaults)",
            "rmse": _rmse(table["lfc"].to_numpy(), reference),
            "n_latent": int(model.n_latent_),
            "latent": f"{model.latent_distribution_} {model.n_latent_}" if model.n_latent_ else "none",
            "treated_share_range": _share_range(model),
            "ami_patient": float(adjusted_mutual_info_score(sub.obs["donor"], code)),
            "roles": _roles(model),
            "seconds": seconds,
        }
    )
    unadjusted = model.treatment_effects(adjust=False)["lfc"].to_numpy()  # its own offset and normalisation
    rows.append({"method": "zconf, unadjusted (adjust=False)", "rmse": _rmse(unadjusted, reference)})
    if with_samples:  # every slice (well) the same total weight, adjusted as the default chose
        weighted = model.treatment_effects(weight_samples=True)["lfc"].to_numpy()
        rows.append({"method": "zconf, samples weighted (weight_samples=True)", "rmse": _rmse(weighted, reference)})
    for row in rows:
        row.update(seed=seed, n_obs=sub.n_obs, rmse_ratio_to_naive=row["rmse"] / naive)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="short training, for the test suite")
    parser.add_argument("--design", choices=list(DESIGNS), default="glioblastoma")
    parser.add_argument("--data", type=Path, default=None, help="the design's data file (default: ../shared/data)")
    parser.add_argument("--sample-key", action="store_true", help="register the (opaque) samples with ZConf")
    args = parser.parse_args(argv)
    quiet()
    design = DESIGNS[args.design]
    full = load(args.data or design.path)
    reference = glm_effects(full, patient_one_hot(full), design)
    model_kwargs, train_kwargs = {}, {}
    if args.smoke:
        model_kwargs = {"n_hidden": 16, "max_latent": 1, "max_levels": 3}
        train_kwargs = {"max_epochs": 4, "n_init": 1}
    rows = [
        row
        for seed in args.seeds
        for row in run_seed(full, reference, seed, model_kwargs, train_kwargs, design, args.sample_key)
    ]
    name = (
        "real_confounded"
        + ("" if args.design == "glioblastoma" else f"_{args.design}")
        + ("_samples" if args.sample_key else "")
        + ("_smoke" if args.smoke else "")
    )
    columns = ["method", "seed", "n_obs", "rmse", "rmse_ratio_to_naive", "latent", "treated_share_range"]
    columns += ["ami_patient", "roles", "seconds"]
    write(
        name,
        rows,
        columns,
        f"{args.design}: donor (patient) hidden and made a confounder (per seed)",
        __doc__.split("\n\n")[1],
    )
    summary = summarise(rows, ("method",), ["rmse", "rmse_ratio_to_naive", "ami_patient", "seconds"])
    summary_columns = ["method", "n_seeds", "rmse_mean", "rmse_ratio_to_naive_mean", "rmse_ratio_to_naive_worst"]
    write(f"{name}_summary", summary, [*summary_columns, "ami_patient_mean", "seconds_mean"], f"{args.design} summary")
    return rows


if __name__ == "__main__":
    main()
