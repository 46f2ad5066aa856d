"""Command line front end: ``zconf simulate``, ``zconf fit`` and ``zconf demo``."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from anndata import AnnData
from lightning.pytorch import Callback

from ._constants import HISTORY_KEYS
from .data import PRESETS

logger = logging.getLogger("zconf")

#: The arguments of :meth:`zconf.ZConf.setup_anndata` that ``zconf fit`` has flags for (same names).
SETUP_ARGS: tuple[str, ...] = (
    "treatment_key",
    "layer",
    "control_level",
    "categorical_covariate_keys",
    "continuous_covariate_keys",
    "size_factor_key",
)


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
    # Lightning 2.x builds torch's deprecated LeafSpec on every Trainer: one line per fit of every candidate (9 on
    # the glioblastoma slices), about the libraries' versions, not the user's data (shown with --verbose)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


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
        "epochs": int(model.history[HISTORY_KEYS.TRAIN_LOSS].shape[0]),
    }
    if z_hat.shape[1] == 0:  # no confounder chosen: nothing to score
        return summary
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
    if model.latent_selection_ is not None:
        pl.latent_selection(model, save=str(folder / "latent_selection.png"), show=False)
    if model.n_latent_ > 0:
        pl.zhat_by_group(adata, treatment_key, save=str(folder / "zhat_by_treatment.png"), show=False)
    if "z_true" in adata.obsm and model.n_latent_ > 0:
        pl.zhat_vs_true(adata, soft=True, save=str(folder / "zhat_vs_true.png"), show=False)
    if "treatment_logit_true" in adata.obs and model.n_latent_ > 0:
        pl.treatment_logits(adata, save=str(folder / "treatment_logits.png"), show=False)
    if "log_mean_true" in adata.layers:
        pl.gene_correlations(adata, save=str(folder / "gene_correlations.png"), show=False)


def _effects_summary(model, adata, effects, z, effects_kwargs: dict) -> dict:
    """Counts of tested and significant genes; with a simulation's true effects, the RMSE against them."""
    import numpy as np

    tested = effects["pvalue"].notna()
    per_cell = effects_kwargs.get("sample_key") is None
    out = {
        "z": "soft" if isinstance(z, str) else "cross-fitted",
        "replicates": "cells (per-cell p-values treat cells as independent; use --sample-key for samples)"
        if per_cell
        else f"samples ({effects_kwargs['sample_key']})",
        "n_genes_tested": int(tested.sum()),
        "n_padj_below_0.1": int((effects["padj"] < 0.1).sum()),
    }
    if "z_adjusted" in effects and model.n_latent_ > 0:  # sample-aware: Z-hat may have been left out (no df)
        out["z_adjusted"] = bool(effects["z_adjusted"].all())
    if "treatment_effect_true" in adata.var and per_cell and effects_kwargs.get("groupby") is None:
        truth = adata.var["treatment_effect_true"].to_numpy()
        naive = model.treatment_effects(adjust=False, **effects_kwargs)
        out["rmse_adjusted"] = float(np.sqrt(np.nanmean((effects["lfc"].to_numpy() - truth) ** 2)))
        out["rmse_naive"] = float(np.sqrt(np.nanmean((naive["lfc"].to_numpy() - truth) ** 2)))
    return out


def _drop_none(kwargs: dict | None) -> dict:
    return {key: value for key, value in (kwargs or {}).items() if value is not None}


class EpochLines(Callback):
    """Print one line every ``every`` epochs and one when training ends, in place of the progress bar.

    For logs and pipes: Lightning's progress bar writes thousands of carriage-return updates there.

    Parameters
    ----------
    every
        Epochs between lines; ``None``: a tenth of ``max_epochs`` (about ten lines per training).
    keys
        History columns to print, when logged.
    """

    def __init__(
        self,
        every: int | None = None,
        keys: Sequence[str] = (
            HISTORY_KEYS.TRAIN_LOSS,
            HISTORY_KEYS.NB_LOSS_TRAIN,
            HISTORY_KEYS.CLASSIFIER_LOSS_TRAIN,
        ),
    ):
        super().__init__()
        self.every, self.keys = every, tuple(keys)
        self._every, self._printed, self._start = 1, 0, 0.0

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: D102
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 100
        self._every = self.every or max(1, round(max_epochs / 10))
        self._printed, self._start = 0, time.perf_counter()

    # Lightning calls a callback's on_train_epoch_end before the plan logs the epoch's metrics, so each
    # block's line is printed when the next epoch starts (and the last one when training ends).
    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: D102
        if trainer.current_epoch and trainer.current_epoch % self._every == 0:
            self._line(trainer, trainer.current_epoch)

    def on_train_end(self, trainer, pl_module) -> None:  # noqa: D102
        if trainer.current_epoch != self._printed:
            self._line(trainer, trainer.current_epoch)

    def _line(self, trainer, epoch: int) -> None:
        metrics = trainer.callback_metrics
        values = ", ".join(f"{key} {float(metrics[key]):.5g}" for key in self.keys if key in metrics)
        if HISTORY_KEYS.GENERATOR_PHASE in metrics:
            share = float(metrics[HISTORY_KEYS.GENERATOR_PHASE])
            values += {1.0: " (generator phase)", 0.0: " (predictor phase)"}.get(share, "")
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        print(f"epoch {epoch}/{total} ({time.perf_counter() - self._start:.1f} s): {values}", flush=True)
        self._printed = epoch


def fit_and_write(
    adata: AnnData | str | Path,
    *,
    out: str | Path,
    treatment_key: str,
    layer: str | None = None,
    control_level: str | None = None,
    categorical_covariate_keys: Sequence[str] | None = None,
    continuous_covariate_keys: Sequence[str] | None = None,
    size_factor_key: str | None = None,
    plots: str | Path | None = None,
    summary_out: str | Path | None = None,
    save_model: str | Path | None = None,
    effects: str | Path | None = None,
    cross_fit: int = 0,
    random_state: int = 0,
    force: bool = False,
    progress: bool | None = None,
    model_kwargs: dict | None = None,
    train_kwargs: dict | None = None,
    effects_kwargs: dict | None = None,
) -> dict:
    """Set up, train and annotate ZConf; write the h5ad and, if asked, plots, summary, model and effects.

    What ``zconf fit`` and ``zconf demo`` run. Every output is written into a temporary folder first and moved
    into place only once all are complete, so a failed run leaves no partial outputs.

    Parameters
    ----------
    adata
        AnnData with raw counts, or the path of an ``.h5ad``.
    out
        Output ``.h5ad`` (the annotated AnnData).
    treatment_key, layer, control_level, categorical_covariate_keys, continuous_covariate_keys, size_factor_key
        As in :meth:`zconf.ZConf.setup_anndata`.
    plots
        Folder for the diagnostic PNGs (and ``summary.json``, unless ``summary_out`` is given).
    summary_out
        Path of ``summary.json``; ``None``: in ``plots`` when given, else not written.
    save_model
        Folder to save the trained model in.
    effects
        CSV of :meth:`zconf.ZConf.treatment_effects`.
    cross_fit
        Compute the effects with Z-hat cross-fitted over this many folds; 0: the Z-hat probabilities.
    random_state
        ``scvi.settings.seed``.
    force
        Overwrite existing outputs (otherwise an existing output is an error, raised before training).
    progress
        Show Lightning's progress bar; ``False`` prints one line per block of epochs instead. ``None``: the
        bar only when stdout is a terminal.
    model_kwargs, train_kwargs, effects_kwargs
        Keywords of :class:`zconf.ZConf`, :meth:`zconf.ZConf.train` and :meth:`zconf.ZConf.treatment_effects`;
        ``None`` values are dropped, so the Python defaults apply.

    Returns
    -------
    The summary (what ``summary.json`` holds).
    """
    setup = {name: value for name, value in locals().items() if name in SETUP_ARGS}  # as given, by SETUP_ARGS
    import anndata as ad
    import scvi

    from . import ZConf

    if not isinstance(adata, AnnData) and not Path(adata).exists():
        msg = f"Input file {adata} does not exist."
        raise UserError(msg)
    out = Path(out)
    plots = Path(plots) if plots is not None else None
    summary_out = Path(summary_out) if summary_out is not None else (plots / "summary.json" if plots else None)
    model_dir = Path(save_model) if save_model is not None else None
    effects_out = Path(effects) if effects is not None else None
    for path in (out, plots, summary_out, model_dir, effects_out):
        if path is not None:
            _prepare_output(path, force)
    model_kwargs, effects_kwargs = _drop_none(model_kwargs), _drop_none(effects_kwargs)
    train_kwargs = _drop_none(train_kwargs)
    if not (sys.stdout.isatty() if progress is None else progress):
        train_kwargs.setdefault("enable_progress_bar", False)
        train_kwargs["callbacks"] = [*train_kwargs.get("callbacks", []), EpochLines()]
    if not isinstance(adata, AnnData):
        adata = ad.read_h5ad(adata)

    scvi.settings.seed = random_state
    # where each sample has one treatment, it is registered too: the choice then tests a state's link across
    # samples (ZConf.setup_anndata's sample_key); the effects are the sample-aware ones
    if effects_kwargs.get("sample_key") is not None and _nests_in_treatment(adata, setup, effects_kwargs["sample_key"]):
        setup = {**setup, "sample_key": effects_kwargs["sample_key"]}
    ZConf.setup_anndata(adata, **setup)
    model = ZConf(adata, **model_kwargs)
    try:  # a wrong --sample-key fails here, not after the fit
        model.check_sample_keys(effects_kwargs.get("sample_key"), effects_kwargs.get("groupby"))
    except (KeyError, ValueError) as error:
        raise UserError(error.args[0] if error.args else str(error)) from error
    start = time.perf_counter()
    model.train(**train_kwargs)
    seconds = time.perf_counter() - start
    model.annotate_adata(adata)
    summary = {**_summary(model, adata), "train_seconds": seconds, "n_latent": int(model.n_latent_)}
    summary["latent_distribution"] = model.latent_distribution_
    if model.latent_selection_ is not None:
        summary["latent_selection"] = model.latent_selection_.reset_index().to_dict(orient="records")
    table = None
    if effects_out is not None:
        if cross_fit:
            print(f"Cross-fitting Z-hat over {cross_fit} folds ({cross_fit} more trainings).", flush=True)
        z = model.get_cross_fitted_latent(n_folds=cross_fit) if cross_fit else "soft"
        table = model.treatment_effects(z=z, **effects_kwargs)
        summary["effects"] = _effects_summary(model, adata, table, z, effects_kwargs)
    targets = {"out": out, "effects": effects_out, "plots": plots, "summary": summary_out, "model": model_dir}
    _write_outputs(model, adata, table, summary, treatment_key, targets)
    return summary


def _write_outputs(model, adata, table, summary: dict, treatment_key: str, targets: dict) -> None:
    """Write every asked-for output into a temporary folder, then move each into place (all or nothing)."""
    out = targets["out"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmpdir:
        tmp = Path(tmpdir)
        outputs = [(tmp / "out.h5ad", out)]
        adata.write_h5ad(outputs[0][0])
        if table is not None:
            table.to_csv(tmp / "effects.csv")
            outputs.append((tmp / "effects.csv", targets["effects"]))
        if targets["plots"] is not None:
            _write_plots(model, adata, treatment_key, tmp / "plots")
            outputs.append((tmp / "plots", targets["plots"]))
        if targets["summary"] is not None:
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
            outputs.append((tmp / "summary.json", targets["summary"]))
        if targets["model"] is not None:
            model.save(str(tmp / "model"), overwrite=True)
            outputs.append((tmp / "model", targets["model"]))
        for source, target in outputs:
            _publish(source, target)


def _nests_in_treatment(adata, setup: dict, sample_key: str) -> bool:
    """Whether every sample of ``adata.obs[sample_key]`` holds one treatment value.

    False for a missing column, which the sample-aware effects' own check reports before training.
    """
    from .model._validation import labels_in_both_arms

    treatment = setup.get("treatment_key")
    if sample_key not in adata.obs or treatment not in adata.obs:
        return False
    return not labels_in_both_arms(adata.obs[sample_key], adata.obs[treatment])


def _why_not_chosen(row: dict) -> str:
    """Why a candidate's states may not be adjusted for (``latent_selection_``'s ``role``), or nothing."""
    if row.get("eligible", True):
        return ""
    reasons = {
        "one arm only": "a state of one arm only",
        "imbalanced, not linked": f"not linked to the treatment (p = {row.get('treatment_link_pvalue', 1.0):.2f}) "
        "yet imbalanced between the arms",
        "balanced": f"not linked to the treatment (p = {row.get('treatment_link_pvalue', 1.0):.2f})",
        "signature differs": f"signature differs between the arms (agreement {row.get('signature_agreement'):.2f})",
        "library noise": "explains the counts only through the noise of the cells' totals (keeps "
        f"{row.get('gain_beyond_library', 0.0):.2f} of its gain with a depth that dominant genes do not set)",
        "not linked across samples": "linked over cells, but its share differs between treated and untreated "
        f"samples no more than between samples (p = {row.get('sample_link_pvalue', 1.0):.2f})",
    }
    return f"  ({reasons.get(row.get('role'), row.get('role'))}: not a confounder)"


def _print_summary(summary: dict) -> None:
    print(f"Trained on {summary['n_obs']} cells x {summary['n_vars']} genes in {summary['train_seconds']:.1f} s.")
    if "latent_selection" in summary:
        print("Held-out log-likelihood per cell of each candidate latent, and the treated share of its states:")
        for row in summary["latent_selection"]:
            mark = "  <- chosen" if row["chosen"] else _why_not_chosen(row)
            shares = f"P(D | state) {row['treated_share_min']:.2f}-{row['treated_share_max']:.2f}"
            loglik = f"{row['heldout_loglik']:.3f} (SE {row['heldout_loglik_se']:.3f})"
            print(f"  {row['candidate']:<14} {loglik}, {shares}{mark}")
    if summary["n_latent"] == 0:
        rejected = [row for row in summary.get("latent_selection", []) if not row.get("eligible", True)]
        if any(row["gain_vs_chosen"] > 2 * row["gain_vs_chosen_se"] for row in rejected):
            print("The counts hold hidden states, but no confounder (above): the effects are unadjusted.")
        else:
            print("No confounder supported by the data (n_latent=0): the effects are unadjusted.")
    if summary["latent_distribution"] == "categorical":
        print(f"One confounder with {summary['n_latent']} levels (obs['zconf_level']).")
    if summary["latent_distribution"] == "normal":
        print("One continuous confounder: Z-hat is its posterior mean (obsm['X_zconf']).")
    if summary["n_latent"] > 0:
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
        line += f" (replicates: {eff['replicates']})"
        if eff.get("z_adjusted") is False:
            line += "; Z-hat not adjusted for where the samples leave no degrees of freedom for it (column z_adjusted)"
        if "rmse_adjusted" in eff:
            line += f"; RMSE against the true effects {eff['rmse_adjusted']:.3f} (naive {eff['rmse_naive']:.3f})"
        print(line + ".")


def _n_latent(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        msg = f"--n-latent must be 'auto' or an integer >= 0, got {value!r}"
        raise argparse.ArgumentTypeError(msg) from None


#: the flags that become keyword arguments of ``ZConf(...)`` and of ``ZConf.train(...)``
MODEL_FLAGS = ("n_latent", "max_latent", "latent_distribution", "max_levels", "n_hidden")
TRAIN_FLAGS = ("max_epochs", "n_init", "batch_size", "accelerator", "random_state")


def _model_kwargs(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in MODEL_FLAGS}


def _train_kwargs(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in TRAIN_FLAGS}


def _effects_kwargs(args: argparse.Namespace) -> dict:
    return {"sample_key": getattr(args, "sample_key", None), "groupby": getattr(args, "groupby", None)}


def _fit_from_flags(args: argparse.Namespace, adata, **keywords) -> None:
    """Run :func:`fit_and_write` with the keywords every fitting command takes from its flags; print the summary."""
    summary = fit_and_write(
        adata,
        save_model=args.save_model,
        cross_fit=args.cross_fit,
        random_state=args.random_state,
        force=args.force,
        model_kwargs=_model_kwargs(args),
        train_kwargs=_train_kwargs(args),
        effects_kwargs=_effects_kwargs(args),
        **keywords,
    )
    _print_summary(summary)


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulate the confounded preset, fit with defaults and write the outputs (`make demo`)."""
    from .data import simulate

    out_dir = Path(args.out)
    _prepare_output(out_dir, args.force)
    adata = simulate("confounded", random_state=args.random_state)
    print(f"Simulated the 'confounded' preset: {adata.n_obs} cells x {adata.n_vars} genes.")
    _fit_from_flags(
        args,
        adata,
        out=out_dir / "demo.h5ad",
        treatment_key="treatment",
        layer="counts",
        continuous_covariate_keys=[c for c in adata.obs if c.startswith("x")],
        plots=out_dir / "plots",
        summary_out=out_dir / "summary.json",
        effects=out_dir / "effects.csv",
    )
    print(f"Outputs in {out_dir}/: demo.h5ad, effects.csv, summary.json, plots/*.png")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit ZConf to an .h5ad and write the annotated AnnData."""
    setup = {name: getattr(args, name) for name in SETUP_ARGS}
    _fit_from_flags(args, args.data, out=args.out, plots=args.plots, effects=args.effects, **setup)
    print(f"Wrote {args.out}.")
    return 0


def _add_training_flags(parser: argparse.ArgumentParser) -> None:
    # defaults are None: a flag not given is not passed, so the Python API's defaults apply
    parser.add_argument(
        "--n-latent",
        type=_n_latent,
        default=None,
        help="number of binary confounders, or 'auto' (default: chosen by held-out likelihood, 0 allowed)",
    )
    parser.add_argument("--max-latent", type=int, default=None, help="most binary factors of --n-latent auto (4)")
    parser.add_argument(
        "--latent-distribution",
        choices=["bernoulli", "categorical", "normal"],
        default=None,
        help=(
            "binary factors, one confounder with --n-latent levels, or one continuous confounder (normal, "
            "--n-latent 1); default: all are candidates of auto"
        ),
    )
    parser.add_argument("--max-levels", type=int, default=None, help="most levels of a categorical candidate (8)")
    parser.add_argument("--n-hidden", type=int, default=None, help="hidden units of the generator (default: 128)")
    parser.add_argument("--max-epochs", type=int, default=None, help="training epochs (default: heuristic)")
    parser.add_argument("--n-init", type=int, default=None, help="initialisations screened per fit (default: 3)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="minibatch size (default: 128, or all cells when fewer)"
    )
    parser.add_argument("--accelerator", default=None, help="Lightning accelerator: auto (default), cpu, gpu")
    parser.add_argument(
        "--random-state", type=int, default=0, help="seed of the fit (default 0: the same run gives the same result)"
    )
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
    parser = argparse.ArgumentParser(
        prog="zconf", description="Infer unmeasured confounders and treatment effects adjusted for them."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show training logs")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write a simulated AnnData")
    sim.add_argument("--preset", default="confounded", choices=sorted(PRESETS))
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
    fit.add_argument(
        "--sample-key",
        default=None,
        help="obs column of the replicate unit (donor, well): sample-aware pseudobulk effects with a QL F-test; "
        "without it, effects treat cells as independent replicates. Where each sample has one treatment, it is "
        "also registered (setup_anndata's sample_key): a state is then adjusted for only if linked across samples",
    )
    fit.add_argument("--groupby", default=None, help="with --sample-key: one effects table per level (cell type)")
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
