import json

import anndata as ad
import pandas as pd

from zconf.cli import main


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
    assert main(["demo", "--out", str(out), "--max-epochs", "2", "--accelerator", "cpu"]) == 0
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
