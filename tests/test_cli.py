import json

import anndata as ad
import pandas as pd
import pytest

import zconf
from zconf.cli import build_parser, fit_and_write, main


def test_simulate_then_fit(tmp_path, capsys):
    sim = tmp_path / "sim.h5ad"
    assert main(["simulate", "--preset", "seed", "--n-obs", "150", "--n-vars", "20", "--out", str(sim)]) == 0
    assert sim.exists()
    out = tmp_path / "fitted.h5ad"
    plots = tmp_path / "plots"
    code = main(
        [
            "fit",
            str(sim),
            "--treatment-key",
            "treatment",
            "--continuous-covariate-keys",
            "x0",
            "x1",
            "x2",
            "x3",
            "--layer",
            "counts",
            "--out",
            str(out),
            "--plots",
            str(plots),
            "--n-latent",
            "1",
            "--max-epochs",
            "2",
            "--batch-size",
            "50",
            "--accelerator",
            "cpu",
            "--save-model",
            str(tmp_path / "model"),
            "--effects",
            str(tmp_path / "effects.csv"),
            "--cross-fit",
            "2",
        ]
    )
    assert code == 0
    effects = pd.read_csv(tmp_path / "effects.csv", index_col=0)
    assert {"lfc", "se", "pvalue", "padj", "ci_low", "ci_high"} <= set(effects.columns)
    assert len(effects) == 20
    summary = json.loads((plots / "summary.json").read_text())
    assert summary["effects"]["z"] == "cross-fitted"
    assert (tmp_path / "model" / "model.pt").exists()
    assert (plots / "history.png").stat().st_size > 0
    assert (plots / "summary.json").exists()
    fitted = ad.read_h5ad(out)
    assert "X_zconf" in fitted.obsm and "zconf_mean" in fitted.layers
    printed = capsys.readouterr().out
    assert "|corr(Z-hat, Z)|" in printed and "Treatment effects:" in printed


def test_demo_writes_outputs(tmp_path):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--max-epochs", "2", "--accelerator", "cpu", "--n-latent", "1"]
    args = build_parser().parse_args(argv)
    given = dict(vars(args))
    assert args.func(args) == 0
    assert vars(args) == given  # the command reads its arguments, it does not rewrite them
    summary = json.loads((out / "summary.json").read_text())
    assert {"recovery", "leakage", "train_seconds", "effects"} <= set(summary)
    assert summary["effects"]["rmse_adjusted"] > 0 and summary["effects"]["rmse_naive"] > 0
    assert len(pd.read_csv(out / "effects.csv", index_col=0)) == 200
    assert (out / "plots" / "history.png").stat().st_size > 0
    assert (out / "demo.h5ad").exists()


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.h5ad"), "--treatment-key", "t", "--out", str(tmp_path / "o.h5ad")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    sim = tmp_path / "sim.h5ad"
    main(["simulate", "--preset", "seed", "--n-obs", "60", "--n-vars", "10", "--out", str(sim)])
    assert main(["simulate", "--preset", "seed", "--out", str(sim)]) == 2
    assert "--force" in capsys.readouterr().err
    out = tmp_path / "o.h5ad"
    assert main(["fit", str(sim), "--treatment-key", "nope", "--out", str(out)]) == 2
    assert "'nope' not found" in capsys.readouterr().err
    assert not out.exists()
    assert main(["fit", str(sim), "--treatment-key", "treatment", "--layer", "raw", "--out", str(out)]) == 2
    assert "Layer 'raw' not found" in capsys.readouterr().err
    assert not out.exists()


def test_fit_small_data_with_default_batch_size(tmp_path, capsys):
    """Flags not given are not passed: 60 cells train with the Python default batch size (all cells)."""
    sim = tmp_path / "sim.h5ad"
    assert main(["simulate", "--preset", "seed", "--n-obs", "60", "--n-vars", "10", "--out", str(sim)]) == 0
    out = tmp_path / "fitted.h5ad"
    argv = ["fit", str(sim), "--treatment-key", "treatment", "--layer", "counts", "--out", str(out)]
    assert main([*argv, "--max-epochs", "20", "--accelerator", "cpu", "--n-latent", "1", "--n-init", "1"]) == 0
    assert ad.read_h5ad(out).obsm["X_zconf"].shape == (60, 1)
    captured = capsys.readouterr()
    # stdout is not a terminal here: one line per block of epochs, no progress bar
    assert "\r" not in captured.out + captured.err
    epoch_lines = [line for line in captured.out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == [f"{n}/20" for n in range(2, 21, 2)]
    assert all("train_loss" in line and "classifier_loss_train" in line for line in epoch_lines)


def test_fit_and_write_passes_keywords_through(tmp_path, capsys):
    adata = zconf.data.simulate("seed", n_obs=80, n_vars=10, random_state=0)
    summary = fit_and_write(
        adata,
        out=tmp_path / "out.h5ad",
        treatment_key="treatment",
        layer="counts",
        summary_out=tmp_path / "summary.json",
        progress=False,
        model_kwargs={"n_latent": 2, "n_hidden": None},
        train_kwargs={"max_epochs": 3, "batch_size": None, "accelerator": "cpu", "n_init": 1},
        effects_kwargs={},
    )
    assert summary["epochs"] == 3
    assert ad.read_h5ad(tmp_path / "out.h5ad").obsm["X_zconf"].shape == (80, 2)
    assert json.loads((tmp_path / "summary.json").read_text())["epochs"] == 3
    assert capsys.readouterr().out.count("epoch 3/3") == 1


def test_fit_with_sample_key_writes_sample_aware_effects(tmp_path):
    adata = zconf.data.simulate("confounded", n_obs=240, n_vars=20, random_state=1)
    adata.obs["donor"] = [f"d{int(t)}{i % 4}" for i, t in enumerate(adata.obs["treatment"])]  # 4 donors per arm
    sim = tmp_path / "sim.h5ad"
    adata.write_h5ad(sim)
    argv = ["fit", str(sim), "--treatment-key", "treatment", "--layer", "counts", "--out", str(tmp_path / "o.h5ad")]
    argv += ["--n-latent", "1", "--n-init", "1", "--max-epochs", "4", "--accelerator", "cpu"]
    assert main([*argv, "--effects", str(tmp_path / "e.csv"), "--sample-key", "donor"]) == 0
    table = pd.read_csv(tmp_path / "e.csv", index_col=0)
    assert (table["n_samples_treated"] == 4).all() and (table["n_samples_control"] == 4).all()
    assert (table["df"] > 0).all()
    assert table["z_adjusted"].all()  # one Z-hat column and 8 samples leave 5 residual df


def test_fit_with_too_few_samples_for_z_hat_tests_without_it_and_says_so(tmp_path, capsys):
    adata = zconf.data.simulate("confounded", n_obs=240, n_vars=20, random_state=1)
    adata.obs["donor"] = [f"d{int(t)}{i % 2}" for i, t in enumerate(adata.obs["treatment"])]  # 2 donors per arm
    sim = tmp_path / "sim.h5ad"
    adata.write_h5ad(sim)
    argv = ["fit", str(sim), "--treatment-key", "treatment", "--layer", "counts", "--out", str(tmp_path / "o.h5ad")]
    argv += [
        "--n-latent",
        "2",
        "--n-init",
        "1",
        "--max-epochs",
        "4",
        "--accelerator",
        "cpu",
        "--plots",
        str(tmp_path / "plots"),
    ]
    assert main([*argv, "--effects", str(tmp_path / "e.csv"), "--sample-key", "donor"]) == 0
    assert not pd.read_csv(tmp_path / "e.csv", index_col=0)["z_adjusted"].any()
    assert json.loads((tmp_path / "plots" / "summary.json").read_text())["effects"]["z_adjusted"] is False
    assert "Z-hat not adjusted for" in capsys.readouterr().out


def _fit_argv_that_must_not_train(adata, tmp_path, monkeypatch) -> list[str]:
    """``zconf fit`` arguments for ``adata`` (written to ``tmp_path``), with ``ZConf.train`` made to fail if called."""
    sim = tmp_path / "sim.h5ad"
    adata.write_h5ad(sim)

    def never(*args, **kwargs):
        raise AssertionError("trained before the sample key was checked")

    monkeypatch.setattr(zconf.ZConf, "train", never)
    return ["fit", str(sim), "--treatment-key", "treatment", "--layer", "counts", "--out", str(tmp_path / "o.h5ad")]


@pytest.mark.parametrize("key", ["arm", "nope"])
def test_a_wrong_sample_key_fails_before_training(tmp_path, capsys, monkeypatch, key):
    adata = zconf.data.simulate("confounded", n_obs=120, n_vars=10, random_state=1)
    adata.obs["arm"] = [f"d{i % 4}" for i in range(adata.n_obs)]  # cells of both arms in each: not a replicate unit
    argv = _fit_argv_that_must_not_train(adata, tmp_path, monkeypatch)
    assert main([*argv, "--effects", str(tmp_path / "e.csv"), "--sample-key", key]) == 2
    message = capsys.readouterr().err
    assert ("both arms" in message) if key == "arm" else ("'nope' not found" in message)
    assert not (tmp_path / "o.h5ad").exists()


def test_the_summary_says_why_a_candidate_is_no_confounder():
    from zconf.cli import _why_not_chosen

    row = {
        "eligible": False,
        "role": "imbalanced, not linked",
        "treatment_link_pvalue": 0.4,
        "signature_agreement": 0.9,
    }
    assert "not linked to the treatment (p = 0.40) yet imbalanced" in _why_not_chosen(row)
    assert "agreement 0.05" in _why_not_chosen({**row, "role": "signature differs", "signature_agreement": 0.05})
    assert "one arm only" in _why_not_chosen({**row, "role": "one arm only"})
    noise = _why_not_chosen({**row, "role": "library noise", "gain_beyond_library": 0.16})
    assert "noise of the cells' totals (keeps 0.16 of its gain" in noise
    assert _why_not_chosen({**row, "eligible": True}) == ""


def test_a_cell_level_covariate_without_groupby_fails_before_training(tmp_path, capsys, monkeypatch):
    adata = zconf.data.simulate("confounded", n_obs=160, n_vars=10, random_state=1)
    adata.obs["donor"] = [f"d{int(t)}{i % 4}" for i, t in enumerate(adata.obs["treatment"])]  # 4 donors per arm
    adata.obs["cell_type"] = pd.Categorical(["T" if i % 3 else "B" for i in range(adata.n_obs)])  # varies in a donor
    argv = _fit_argv_that_must_not_train(adata, tmp_path, monkeypatch)
    argv += ["--categorical-covariate-keys", "cell_type", "--effects", str(tmp_path / "e.csv")]
    assert main([*argv, "--sample-key", "donor"]) == 2
    assert "--groupby" in capsys.readouterr().err
    assert not (tmp_path / "o.h5ad").exists()
    # with one table per cell type the covariate is constant in each pseudobulk: the check passes and training starts
    with pytest.raises(AssertionError, match="trained before"):
        main([*argv, "--sample-key", "donor", "--groupby", "cell_type"])


def test_fit_registers_a_sample_key_that_nests_in_the_treatment():
    from zconf.cli import _nests_in_treatment

    adata = zconf.data.simulate("confounded", n_obs=40, n_vars=5, random_state=1)
    adata.obs["well"] = [f"w{int(t)}{i % 3}" for i, t in enumerate(adata.obs["treatment"])]
    adata.obs["donor"] = [f"d{i % 3}" for i in range(adata.n_obs)]  # both arms in each donor
    setup = {"treatment_key": "treatment"}
    assert _nests_in_treatment(adata, setup, "well")
    assert not _nests_in_treatment(adata, setup, "donor") and not _nests_in_treatment(adata, setup, "nope")
