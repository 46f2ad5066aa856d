"""Recovery of Z and the treatment-effect RMSE it buys: ZConf, the Bayes limit, baselines and peers, on both presets.

Run: ``.venv/bin/python -m benchmarks.recovery`` (about 5 minutes on 2 CPU cores, 20 more with causarray installed:
``pip install -e ".[bench]"``); ``--smoke`` for a tiny run. Writes ``benchmarks/results/recovery.{json,md}``.

Every method's soft Z-hat goes through the same per-gene NB GLM of Y on [1, X, D, Z-hat] (the estimator of
``ZConf.treatment_effects``); ``effect_rmse`` is its D coefficient against the true effects, next to the same
GLM without Z ("naive GLM") and with the true Z ("true Z"). causarray also reports its own doubly robust (AIPW)
log fold changes, in ``effect_rmse_own``.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np

import zconf
from benchmarks._common import covariate_keys, effect_rmse, fit_and_score, quiet, score, summarise, write
from zconf.glm import design_matrix

SIZES = {"seed": (1000, 100), "confounded": (2000, 200)}


def residual_pca(adata) -> np.ndarray:
    """RUV-style baseline: first principal component of the OLS residuals of log1p(Y) on [1, X, D]."""
    x = adata.obs[covariate_keys(adata)].to_numpy(dtype=float)
    design = design_matrix(x, adata.obs["treatment"].to_numpy(dtype=float)).matrix
    logy = np.log1p(np.asarray(adata.layers["counts"], dtype=float))
    coef, *_ = np.linalg.lstsq(design, logy, rcond=None)
    resid = logy - design @ coef
    u, s, _ = np.linalg.svd(resid - resid.mean(0), full_matrices=False)
    return (u[:, :1] * s[:1]).astype(float)


def cevae_latent(adata, seed: int, num_epochs: int) -> np.ndarray:
    """pyro's CEVAE (Louizos et al. 2017) as a peer: Z-hat = the posterior mean of its 1-d latent.

    CEVAE takes one outcome column only: the outcome y is log1p(counts) of the single most variable gene, and the
    proxies x are the covariates plus log1p(counts) of all other genes. Its latent is continuous (Gaussian); the
    hard Z-hat splits it at the median, as for the residual-PCA baseline.
    """
    import pyro
    import torch
    from pyro.contrib.cevae import CEVAE

    pyro.set_rng_seed(seed)
    pyro.clear_param_store()
    logy = np.log1p(np.asarray(adata.layers["counts"], dtype=np.float32))
    outcome = int(np.argmax(logy.var(axis=0)))
    covariates = adata.obs[covariate_keys(adata)].to_numpy(dtype=np.float32)
    x = torch.as_tensor(np.hstack([covariates, np.delete(logy, outcome, axis=1)]))
    t = torch.as_tensor(adata.obs["treatment"].to_numpy(dtype=np.float32))
    y = torch.as_tensor(logy[:, outcome])
    model = CEVAE(feature_dim=x.shape[1], outcome_dist="normal", latent_dim=1, hidden_dim=64, num_layers=2)
    model.fit(x, t, y, num_epochs=num_epochs, batch_size=100, learning_rate=1e-3, log_every=10**9)
    with torch.no_grad():
        return model.guide.z_dist(y, t, model.whiten(x)).mean.numpy().astype(float)


def causarray_fit(adata) -> tuple[np.ndarray, np.ndarray]:
    """causarray (Du et al.) as a peer: GCATE with one latent factor, then its AIPW log fold changes.

    Returns the latent factor U ``(n_obs, 1)`` (continuous) and the natural-log fold change per gene (its
    estimand E[Y(1)] / E[Y(0)] equals exp(effect) in these simulations, whose log-means are linear in D).
    """
    import causarray

    counts = np.asarray(adata.layers["counts"], dtype=float)
    covariates = design_matrix(adata.obs[covariate_keys(adata)].to_numpy(dtype=float)).matrix
    treatment = adata.obs["treatment"].to_numpy(dtype=float)[:, None]
    _, stage_2 = causarray.fit_gcate(counts, covariates, treatment, r=1, offset=False, verbose=False)
    latent = stage_2["X_U"][:, covariates.shape[1] + 1 :]
    table, _ = causarray.LFC(counts, np.column_stack([covariates, latent]), treatment, family="nb", offset=False)
    return latent, table["tau"].to_numpy(dtype=float)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and epochs, to check the script runs")
    parser.add_argument("--no-causarray", action="store_true", help="leave causarray out even when installed")
    args = parser.parse_args(argv)
    quiet()
    rows = []
    for preset, (n_obs, n_vars) in SIZES.items():
        if args.smoke:
            n_obs, n_vars = 200, 30
        for seed in args.seeds:
            adata = zconf.data.simulate(preset, n_obs=n_obs, n_vars=n_vars, random_state=seed)
            bayes = zconf.data.bayes_posterior(adata)
            rows.append(
                {
                    "preset": preset,
                    "method": "bayes_posterior",
                    "seed": seed,
                    **score(adata, (bayes > 0.5).astype(float), bayes),
                    "effect_rmse": effect_rmse(adata, bayes),
                    "seconds": 0.0,
                }
            )
            for method, z in (("naive GLM (no Z)", None), ("true Z", adata.obsm["z_true"])):
                rows.append({"preset": preset, "method": method, "seed": seed, "effect_rmse": effect_rmse(adata, z)})
            start = time.perf_counter()
            pc1 = residual_pca(adata)
            seconds = time.perf_counter() - start
            # PC1 is the soft score; the hard Z-hat splits it at the median
            split = (pc1 > np.median(pc1)).astype(float)
            rows.append(
                {
                    "preset": preset,
                    "method": "residual_pca (RUV-style)",
                    "seed": seed,
                    **score(adata, split, pc1),
                    "effect_rmse": effect_rmse(adata, pc1),
                    "seconds": seconds,
                }
            )
            try:
                start = time.perf_counter()
                latent = cevae_latent(adata, seed, num_epochs=2 if args.smoke else 50)
                rows.append(
                    {
                        "preset": preset,
                        "method": "CEVAE (pyro; one outcome gene)",
                        "seed": seed,
                        **score(adata, (latent > np.median(latent)).astype(float), latent),
                        "effect_rmse": effect_rmse(adata, latent),
                        "seconds": time.perf_counter() - start,
                    }
                )
            except ImportError as error:  # pyro comes with scvi-tools, but stay optional
                print(f"CEVAE skipped: {error} (pip install pyro-ppl)")
            if args.no_causarray:
                pass
            elif importlib.util.find_spec("causarray") is None:
                print('causarray skipped: not installed (pip install -e ".[bench]")')
            else:
                start = time.perf_counter()
                latent, own_lfc = causarray_fit(adata)
                truth = adata.var["treatment_effect_true"].to_numpy()
                rows.append(
                    {
                        "preset": preset,
                        "method": "causarray (GCATE r=1 + AIPW)",
                        "seed": seed,
                        **score(adata, (latent > np.median(latent)).astype(float), latent),
                        "effect_rmse": effect_rmse(adata, latent),
                        "effect_rmse_own": float(np.sqrt(np.nanmean((own_lfc - truth) ** 2))),
                        "seconds": time.perf_counter() - start,
                    }
                )
                print(f"{preset:10s} causarray seed={seed} {rows[-1]['abs_corr_soft']:.4f} {rows[-1]}", flush=True)
            configs = {
                "zconf_default": ({}, {}),
                "zconf_notebook": (zconf.presets.NOTEBOOK["model"], zconf.presets.NOTEBOOK["train"]),
            }
            for method, (model_kwargs, train_kwargs) in configs.items():
                train_kwargs = dict(train_kwargs)
                if args.smoke:
                    train_kwargs["max_epochs"] = 2
                result = fit_and_score(adata, model_kwargs, train_kwargs, seed)
                result["effect_rmse"] = effect_rmse(adata, result["model"].get_latent_representation(soft=True))
                rows.append({"preset": preset, "method": method, "seed": seed, **result})
                print(
                    f"{preset:10s} {method:15s} seed={seed} corr={result['abs_corr_hard']:.4f}/"
                    f"{result['abs_corr_soft']:.4f} pcorr={result['pcorr_hard']:.4f} {result['seconds']:.1f}s",
                    flush=True,
                )
    metrics = [
        "abs_corr_hard",
        "abs_corr_soft",
        "pcorr_hard",
        "pcorr_soft",
        "auroc_d_x_zhat",
        "effect_rmse",
        "effect_rmse_own",
        "seconds",
    ]
    summary = summarise(rows, ("preset", "method"), metrics)
    name = "recovery_smoke" if args.smoke else "recovery"
    columns = ["preset", "method", "n_seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "worst")]
    path = write(
        name,
        summary,
        columns,
        "Recovery of Z (mean and worst over seeds)",
        "abs_corr: |corr(Z-hat, Z)|; pcorr: |partial corr(Z-hat, D given Z)| (noise level ~1/sqrt(n)); "
        "AUROC of D from [X, Z-hat]; seconds of train(). CEVAE (pyro.contrib.cevae) takes a single outcome column: "
        "its row uses the most variable gene as the outcome and the other genes plus X as proxies; its latent is "
        "1-d Gaussian, split at the median for the hard Z-hat. causarray: GCATE with r=1 latent factor (continuous, "
        "split at the median for the hard Z-hat); effect_rmse_own is its own AIPW log fold change. effect_rmse: the "
        "same NB GLM for every method, with its soft Z-hat as the regressor (true Z: the oracle; naive: no Z).",
    )
    write(name + "_per_seed", rows, ["preset", "method", "seed", *metrics], "Recovery of Z per seed")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
