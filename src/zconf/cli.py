"""Command line front end: ``zconf simulate``, ``zconf fit`` and ``zconf demo``."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger("zconf")


class UserError(Exception):
    """An error in the user's input: printed as one line, no traceback."""


def _prepare_output(path: Path, force: bool) -> None:
    if path.exists() and not force:
        msg = f"{path} already exists; pass --force to overwrite it."
        raise UserError(msg)


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished output into place (so a failed run leaves nothing half-written)."""
    if final.exists():
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(tmp), str(final))


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Write a simulated AnnData."""
    from .data import simulate

    out = Path(args.out)
    _prepare_output(out, args.force)
    adata = simulate(args.preset, n_obs=args.n_obs, n_vars=args.n_vars, random_state=args.random_state)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmpdir:
        tmp = Path(tmpdir) / out.name
        adata.write_h5ad(tmp)
        _publish(tmp, out)
    print(f"Wrote {out}: {adata.n_obs} cells x {adata.n_vars} genes (preset {args.preset!r}).")
    return 0


def _summary(model, adata) -> dict:
    from . import metrics

    z_hat = model.get_latent_representation()
    z_prob = model.get_latent_representation(soft=True)
    summary = {
        "n_obs": int(adata.n_obs),
        "n_vars": int(adata.n_vars),
        "epochs": int(model.history["train_loss"].shape[0]),
    }
    covariates, d = model.get_design()
    summary["treatment_auroc"] = metrics.treatment_auroc_from_arrays(covariates, d, z_hat)
    summary["z_hat_mean"] = z_hat.mean(axis=0).tolist()
    if "z_true" in adata.obsm:
        z_true = adata.obsm["z_true"]
        hard, soft = metrics.latent_recovery(z_true, z_hat), metrics.latent_recovery(z_true, z_prob)
        summary["recovery"] = {
            "abs_corr_hard": hard["abs_corr"],
            "abs_corr_soft": soft["abs_corr"],
            "accuracy": hard["accuracy"],
            "auroc_soft": soft["auroc"],
        }
        summary["leakage"] = {
            "hard": metrics.leakage(z_hat, d, z_true),
            "soft": metrics.leakage(z_prob, d, z_true),
        }
    return summary


def _write_plots(model, adata, treatment_key: str, folder: Path) -> None:
    from . import pl

    folder.mkdir(parents=True, exist_ok=True)
    pl.history(model, save=str(folder / "history.png"), show=False)
    pl.zhat_by_group(adata, treatment_key, save=str(folder / "zhat_by_treatment.png"), show=False)
    if "z_true" in adata.obsm:
        pl.zhat_vs_true(adata, soft=True, save=str(folder / "zhat_vs_true.png"), show=False)
    if "treatment_logit_true" in adata.obs:
        pl.treatment_logits(adata, save=str(folder / "treatment_logits.png"), show=False)
    if "log_mean_true" in adata.layers:
        pl.gene_correlations(adata, save=str(folder / "gene_correlations.png"), show=False)


def _effects_summary(model, adata, effects, z) -> dict:
    """Counts of tested and significant genes; with a simulation's true effects, the RMSE against them."""
    import numpy as np

    tested = effects["pvalue"].notna()
    out = {
        "z": "soft" if isinstance(z, str) else "cross-fitted",
        "n_genes_tested": int(tested.sum()),
        "n_padj_below_0.1": int((effects["padj"] < 0.1).sum()),
    }
    if "treatment_effect_true" in adata.var:
        truth = adata.var["treatment_effect_true"].to_numpy()
        naive = model.treatment_effects(adjust=False)
        out["rmse_adjusted"] = float(np.sqrt(np.nanmean((effects["lfc"].to_numpy() - truth) ** 2)))
        out["rmse_naive"] = float(np.sqrt(np.nanmean((naive["lfc"].to_numpy() - truth) ** 2)))
    return out


def _fit_and_write(
    adata,
    args: argparse.Namespace,
    h5ad_out: Path,
    plots_dir: Path | None,
    model_dir: Path | None,
    effects_out: Path | None = None,
) -> dict:
    """Set up, train, annotate; write the h5ad, and (if asked) the effects table, plots + summary.json, the model.

    Everything is written into a temporary folder first and moved into place only once complete, so a
    failed run leaves no partial outputs.
    """
    import scvi

    from . import ZConf

    scvi.settings.seed = args.random_state
    ZConf.setup_anndata(
        adata,
        layer=args.layer,
        treatment_key=args.treatment_key,
        control_level=args.control_level,
        categorical_covariate_keys=args.categorical_covariate_keys,
        continuous_covariate_keys=args.continuous_covariate_keys,
        size_factor_key=args.size_factor_key,
    )
    model = ZConf(adata, n_latent=args.n_latent, n_hidden=args.n_hidden)
    start = time.perf_counter()
    model.train(max_epochs=args.max_epochs, batch_size=args.batch_size, accelerator=args.accelerator)
    seconds = time.perf_counter() - start
    model.annotate_adata(adata)
    summary = {**_summary(model, adata), "train_seconds": seconds}
    effects = None
    if effects_out is not None:
        z = model.get_cross_fitted_latent(n_folds=args.cross_fit) if args.cross_fit else "soft"
        effects = model.treatment_effects(z=z)
        summary["effects"] = _effects_summary(model, adata, effects, z)
    h5ad_out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=h5ad_out.parent) as tmpdir:
        tmp = Path(tmpdir)
        outputs = [(tmp / "out.h5ad", h5ad_out)]
        adata.write_h5ad(outputs[0][0])
        if effects is not None:
            effects.to_csv(tmp / "effects.csv")
            outputs.append((tmp / "effects.csv", effects_out))
        if plots_dir is not None:
            _write_plots(model, adata, args.treatment_key, tmp / "plots")
            (tmp / "plots" / "summary.json").write_text(json.dumps(summary, indent=2))
            outputs.append((tmp / "plots", plots_dir))
        if model_dir is not None:
            model.save(str(tmp / "model"), overwrite=True)
            outputs.append((tmp / "model", model_dir))
        for source, target in outputs:
            _publish(source, target)
    return summary


def _print_summary(summary: dict) -> None:
    print(f"Trained on {summary['n_obs']} cells x {summary['n_vars']} genes in {summary['train_seconds']:.1f} s.")
    auc = summary["treatment_auroc"]
    print(f"AUROC of D: {auc['auroc_x']:.3f} from X, {auc['auroc_x_zhat']:.3f} from [X, Z-hat].")
    if "recovery" in summary:
        rec, leak = summary["recovery"], summary["leakage"]
        print(
            f"|corr(Z-hat, Z)| = {rec['abs_corr_hard']:.4f} (hard), {rec['abs_corr_soft']:.4f} (probabilities); "
            f"leakage |pcorr(Z-hat, D | Z)| = {leak['hard']['pcorr_d_given_z']:.4f}."
        )
    if "effects" in summary:
        eff = summary["effects"]
        line = f"Treatment effects: {eff['n_padj_below_0.1']} of {eff['n_genes_tested']} genes at padj < 0.1"
        if "rmse_adjusted" in eff:
            line += f"; RMSE against the true effects {eff['rmse_adjusted']:.3f} (naive {eff['rmse_naive']:.3f})"
        print(line + ".")


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulate the confounded preset, fit with defaults and write the outputs (`make demo`)."""
    from .data import simulate

    out_dir = Path(args.out)
    _prepare_output(out_dir, args.force)
    adata = simulate("confounded", random_state=args.random_state)
    print(f"Simulated the 'confounded' preset: {adata.n_obs} cells x {adata.n_vars} genes.")
    args.layer, args.treatment_key, args.control_level = "counts", "treatment", None
    args.categorical_covariate_keys, args.size_factor_key = None, None
    args.continuous_covariate_keys = [c for c in adata.obs if c.startswith("x")]
    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = Path(args.save_model) if args.save_model else None
    summary = _fit_and_write(
        adata, args, out_dir / "demo.h5ad", out_dir / "plots", model_dir, effects_out=out_dir / "effects.csv"
    )
    _publish(out_dir / "plots" / "summary.json", out_dir / "summary.json")
    _print_summary(summary)
    print(f"Outputs in {out_dir}/: demo.h5ad, effects.csv, summary.json, plots/*.png")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit ZConf to an .h5ad and write the annotated AnnData."""
    import anndata as ad

    path, out = Path(args.data), Path(args.out)
    if not path.exists():
        msg = f"Input file {path} does not exist."
        raise UserError(msg)
    _prepare_output(out, args.force)
    out_dir = Path(args.plots) if args.plots else None
    if out_dir is not None:
        _prepare_output(out_dir, args.force)
    if args.save_model:
        _prepare_output(Path(args.save_model), args.force)
    effects_out = Path(args.effects) if args.effects else None
    if effects_out is not None:
        _prepare_output(effects_out, args.force)
    adata = ad.read_h5ad(path)
    model_dir = Path(args.save_model) if args.save_model else None
    summary = _fit_and_write(adata, args, out, out_dir, model_dir, effects_out=effects_out)
    _print_summary(summary)
    print(f"Wrote {out}.")
    return 0


def _add_training_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-latent", type=int, default=1, help="number of binary confounders")
    parser.add_argument("--n-hidden", type=int, default=128, help="hidden units of the generator")
    parser.add_argument("--max-epochs", type=int, default=None, help="training epochs (default: heuristic)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu")
    parser.add_argument("--random-state", type=int, default=0, help="scvi.settings.seed")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument(
        "--cross-fit",
        type=int,
        default=0,
        metavar="K",
        help="effects with Z-hat cross-fitted over K folds (K extra trainings); default 0: Z-hat probabilities",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``zconf`` argument parser."""
    parser = argparse.ArgumentParser(prog="zconf", description="Infer an unmeasured binary confounder.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show training logs")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write a simulated AnnData")
    sim.add_argument("--preset", default="confounded", choices=["seed", "confounded"])
    sim.add_argument("--n-obs", type=int, default=None)
    sim.add_argument("--n-vars", type=int, default=None)
    sim.add_argument("--random-state", type=int, default=0)
    sim.add_argument("--out", required=True, help="output .h5ad")
    sim.add_argument("--force", action="store_true", help="overwrite an existing output")
    sim.set_defaults(func=cmd_simulate)

    fit = sub.add_parser("fit", help="fit ZConf to an .h5ad and write the annotated AnnData")
    fit.add_argument("data", help="input .h5ad with raw counts")
    fit.add_argument("--treatment-key", required=True)
    fit.add_argument("--control-level", default=None)
    fit.add_argument("--categorical-covariate-keys", nargs="*", default=None)
    fit.add_argument("--continuous-covariate-keys", nargs="*", default=None)
    fit.add_argument("--size-factor-key", default=None)
    fit.add_argument("--layer", default=None, help="layer with raw counts (default: .X)")
    fit.add_argument("--out", required=True, help="output .h5ad")
    fit.add_argument("--plots", default=None, help="folder for summary.json and diagnostic PNGs")
    fit.add_argument("--save-model", default=None, help="folder to save the trained model")
    fit.add_argument("--effects", default=None, help="CSV of per-gene treatment effects adjusted for Z-hat")
    _add_training_flags(fit)
    fit.set_defaults(func=cmd_fit)

    demo = sub.add_parser("demo", help="simulate the 'confounded' preset, fit, and write outputs (make demo)")
    demo.add_argument("--out", default="demo_output", help="output folder")
    demo.add_argument("--save-model", default=None, help=argparse.SUPPRESS)
    _add_training_flags(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zconf`` command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not args.verbose:
        _quiet_lightning()
    try:
        return args.func(args)
    except (UserError, KeyError, ValueError, FileNotFoundError, FileExistsError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"zconf {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
