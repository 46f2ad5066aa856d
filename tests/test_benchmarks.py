"""Smoke-sized runs of each benchmark script, so the scripts keep working (results go to tmp_path)."""

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks import _common, effects, options, recovery


@pytest.fixture(autouse=True)
def _results_to_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "RESULTS", tmp_path)


def test_recovery_smoke(tmp_path):
    recovery.main(["--smoke", "--seeds", "0", "--no-causarray"])
    rows = json.loads((tmp_path / "recovery_smoke.json").read_text())
    assert {r["method"] for r in rows} == {
        "bayes_posterior",
        "CEVAE (pyro; one outcome gene)",
        "residual_pca (RUV-style)",
        "zconf_default",
        "zconf_notebook",
        "naive GLM (no Z)",
        "true Z",
    }
    assert all(r["effect_rmse_mean"] > 0 for r in rows)
    assert (tmp_path / "recovery_smoke.md").read_text().startswith("# Recovery")


@pytest.mark.slow
def test_causarray_peer_runs():
    pytest.importorskip("causarray", reason='causarray is optional: pip install -e ".[bench]"')
    import numpy as np

    import zconf

    adata = zconf.data.simulate("confounded", n_obs=300, n_vars=30, random_state=0)
    latent, lfc = recovery.causarray_fit(adata)
    assert latent.shape == (300, 1) and lfc.shape == (30,)
    assert abs(np.corrcoef(latent[:, 0], adata.obsm["z_true"][:, 0])[0, 1]) > 0.5


def test_options_smoke(tmp_path):
    options.main(["--smoke", "--seeds", "0", "--only", "notebook preset", "schedule=joint"])
    rows = json.loads((tmp_path / "options_smoke.json").read_text())
    assert len(rows) == 4  # two options x two presets


def test_effects_smoke(tmp_path):
    effects.main(["--smoke", "--seeds", "0"])
    rows = json.loads((tmp_path / "effects_smoke.json").read_text())
    assert {r["z"] for r in rows} == {"soft", "hard", "true_z"}
    uncertain = json.loads((tmp_path / "effects_uncertainty_smoke.json").read_text())
    assert {r["z"] for r in uncertain} == {"soft", "hard", "crossfit (2 folds, soft)", "true_z"}
    assert (tmp_path / "effects_speed_smoke.json").exists()


def test_strength_sweep_smoke(tmp_path):
    from benchmarks import strength_sweep

    strength_sweep.main(["--smoke", "--seeds", "0"])
    rows = json.loads((tmp_path / "strength_sweep_smoke.json").read_text())
    assert {r["gamma2_scale"] for r in rows} == set(strength_sweep.SCALES)


def test_speed_smoke(tmp_path):
    from benchmarks import speed

    speed.main(["--smoke", "--epochs", "1"])
    rows = json.loads((tmp_path / "speed_smoke.json").read_text())
    assert rows[0]["zconf_epoch_s"] > 0 and rows[0]["scvi_epoch_s"] > 0 and rows[0]["plain_torch_epoch_s"] > 0


def test_paired_vae_smoke(tmp_path):
    from benchmarks import paired_vae

    paired_vae.main(["--smoke", "--seeds", "0"])
    rows = json.loads((tmp_path / "paired_vae_smoke_runs.json").read_text())
    assert {r["method"] for r in rows} >= {
        "PCA (10 components)",
        "PairedVAE (grl)",
        "PairedVAE (alternate)",
        "SCVI (batch_key=condition)",
    }
    assert all(0 <= r["mixing_balanced_accuracy"] <= 1 for r in rows)


def test_paired_vae_load_pair_keeps_typed_cells_and_variable_genes(tmp_path):
    import anndata as ad
    from scipy import sparse

    from benchmarks import paired_vae

    rng = np.random.default_rng(0)
    adata = ad.AnnData(sparse.csr_matrix(rng.poisson(1.0, (60, 50)).astype(np.float32)))
    adata.obs["condition"] = np.repeat(["ctrl", "stim"], 30)
    adata.obs["cell_type"] = pd.Categorical(np.where(np.arange(60) % 10 == 0, None, "T"))
    adata.write_h5ad(tmp_path / "pair.h5ad")
    loaded = paired_vae.load_pair(tmp_path / "pair.h5ad", n_top_genes=20)
    assert loaded.shape == (54, 20)  # 6 untyped cells dropped, the 20 most variable genes kept
    assert loaded.obs["cell_type"].notna().all()
    assert paired_vae.load_pair(tmp_path / "pair.h5ad", n_top_genes=100).n_vars == 50  # fewer genes: all kept


def test_scale_smoke(tmp_path):
    from benchmarks import scale

    scale.main(["--smoke", "--seeds", "0"])
    rows = json.loads((tmp_path / "scale_smoke.json").read_text())
    big = next(r for r in rows if r["benchmark"] == "large_sparse")
    assert big["x_is_sparse"] and big["peak_rss_gb"] > 0
    assert any(r["benchmark"] == "time_to_accuracy" for r in rows)
    report = (tmp_path / "profile_smoke.md").read_text()
    assert "## ZConf" in report and "## SCVI" in report


def test_summary_table_from_committed_results(tmp_path, monkeypatch):
    """The README table is built from the result files; the markers are replaced, the rest kept."""
    import shutil
    from pathlib import Path

    from benchmarks import summary

    shutil.copytree(Path(summary.__file__).parent / "results", tmp_path / "results")
    monkeypatch.setattr(_common, "RESULTS", tmp_path / "results")
    readme = tmp_path / "README.md"
    readme.write_text(
        f"intro\n{summary.START}\nSTALE-1\n{summary.END}\nmiddle\n"
        f"{summary.RECOVERY_START}\nSTALE-2\n{summary.RECOVERY_END}\noutro\n"
    )
    monkeypatch.setattr(summary, "README", readme)
    summary.main([])
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "STALE" not in text
    assert "| measurement | target | measured |" in text and "middle" in text
    assert "| confounded | zconf, defaults |" in text


def test_selection_smoke(tmp_path):
    from benchmarks import selection

    selection.main(["--quick", "--scenarios", "no_confounder", "--suffix", "_smoke"])
    rows = json.loads((tmp_path / "selection_smoke.json").read_text())
    assert rows[0]["scenario"] == "no_confounder" and rows[0]["n_latent"] >= 0
    assert 0 < rows[0]["rmse_ratio_to_naive"] < 10
    # a scenario split over processes is merged into one file, and the parts are removed
    selection.write_rows([{**rows[0], "seed": 1}], "_smoke_b")
    selection.main(["--merge", "_smoke_b", "_smoke", "--suffix", "_no_confounder"])
    assert [r["seed"] for r in json.loads((tmp_path / "selection_no_confounder.json").read_text())] == [0, 1]
    assert json.loads((tmp_path / "selection_summary_no_confounder.json").read_text())[0]["n_seeds"] == 2
    assert not (tmp_path / "selection_smoke.json").exists() and not (tmp_path / "selection_summary_smoke_b.md").exists()


def test_real_confounded_smoke(tmp_path):
    from benchmarks import real_confounded

    if not real_confounded.DATA.exists():
        pytest.skip(f"{real_confounded.DATA} is absent on this machine")
    rows = real_confounded.main(["--smoke", "--seeds", "0"])
    methods = {r["method"] for r in rows}
    assert {"naive GLM (no Z)", "patient-adjusted oracle", "zconf (defaults)"} <= methods
    oracle = next(r for r in rows if r["method"] == "patient-adjusted oracle")
    assert oracle["rmse_ratio_to_naive"] < 0.9  # the hidden patient is a real confounder of the subsample
    assert 3000 < rows[0]["n_obs"] < 4000
    assert (tmp_path / "real_confounded_smoke_summary.md").exists()


def test_sample_null_patients_smoke(tmp_path):
    from benchmarks import sample_null_patients

    if not sample_null_patients.DATA.exists():
        pytest.skip(f"{sample_null_patients.DATA} is absent on this machine")
    rows = sample_null_patients.main(["--smoke"])
    null = [r for r in rows if r["design"] == "null"]
    assert len(rows) == 4 and all(r["n_splits"] == 2 for r in rows)
    assert all(r["frac_called_max"] <= 0.05 for r in null)  # no true effect: few genes called
    assert all(r["power_mean"] > 0.2 for r in rows if r["design"] == "power")
    assert (tmp_path / "sample_null_patients_smoke.md").exists()


@pytest.mark.slow
def test_real_randomized_runs(tmp_path):
    """Kang stim/ctrl with the donor balanced over the arms: the naive fit is near the donor-adjusted one."""
    from benchmarks import real_randomized

    if not (real_randomized.DATA_DIR / "kang_muscat_2donor.h5ad").exists():
        pytest.skip("kang_muscat_2donor.h5ad is absent on this machine")
    rows = real_randomized.main(["--data", "kang_muscat_2donor"])
    assert [r["setting"] for r in rows] == list(real_randomized.SETTINGS)
    assert all(r["rms_naive"] < 0.05 and r["genes"] > 1000 for r in rows)
    assert (tmp_path / "real_randomized.md").exists()


@pytest.mark.slow
def test_no_harm_on_randomised_kang_distinct(tmp_path):
    """The 3-donor Kang subset: its states are not linked to the stimulation yet imbalanced, so no Z is chosen and
    the default effects equal the naive ones (without the checks they moved 8x the naive fit's distance)."""
    from benchmarks import real_randomized

    if not (real_randomized.DATA_DIR / "kang_distinct_3donor.h5ad").exists():
        pytest.skip("kang_distinct_3donor.h5ad is absent on this machine")
    default = real_randomized.main(["--data", "kang_distinct_3donor"])[0]
    assert default["setting"] == "default" and default["ratio_to_naive"] <= 1.0 + 1e-9
    assert default["rms_zconf_vs_naive"] < 1e-9


@pytest.mark.slow
def test_epoch_cap_runs(tmp_path):
    from benchmarks import epoch_cap

    epoch_cap.main(["--n-obs", "300"])
    rows = json.loads((tmp_path / "epoch_cap.json").read_text())
    assert {r["benchmark"] for r in rows} == {"one_fit", "default_call"}
    assert all(r["seconds"] > 0 for r in rows)


def test_real_semisynthetic_design_and_smoke(tmp_path):
    from benchmarks import real_semisynthetic

    if not real_semisynthetic.DATA.exists():
        pytest.skip(f"{real_semisynthetic.DATA} is absent on this machine")
    full = real_semisynthetic.load()
    adata, effects, donor_columns = real_semisynthetic.thinned_design(full, seed=3, n_obs=3000)
    assert donor_columns.shape == (adata.n_obs, adata.obs["donor"].nunique() - 1)
    original = full[adata.obs_names].X
    assert (original - adata.X).min() >= 0  # thinning only removes counts
    unchanged = effects == 0
    assert (adata.X[:, unchanged] != original[:, unchanged]).nnz == 0
    assert np.isclose(np.mean(effects != 0), real_semisynthetic.EFFECT_FRACTION, atol=0.01)
    # the donor decides the treatment: the treated share runs over most of (0.1, 0.9)
    shares = adata.obs.groupby("donor", observed=True)["treatment"].mean()
    assert shares.min() < 0.25 and shares.max() > 0.75
    rows = real_semisynthetic.main(["--smoke", "--seeds", "0"])
    methods = [r["method"] for r in rows]
    assert methods == ["naive (adjust=False)", "donor-adjusted oracle", "zconf (defaults)"]
    for row in rows:  # the thinned effects are found, even at 600 cells and 4 epochs
        assert row["power"] > 0.4, row
    assert (tmp_path / "real_semisynthetic_smoke_summary.md").exists()
    # runs split over processes are merged into one table
    (tmp_path / "real_semisynthetic_smoke_b.json").write_text(json.dumps([{**row, "seed": 1} for row in rows]))
    (tmp_path / "real_semisynthetic_smoke_a.json").write_text(json.dumps(rows))
    merged = real_semisynthetic.main(["--smoke", "--merge", "_a", "_b"])
    assert [row["seed"] for row in merged] == [0, 0, 0, 1, 1, 1]
    summary = json.loads((tmp_path / "real_semisynthetic_smoke_summary.json").read_text())
    assert {row["n_seeds"] for row in summary} == {2}


def test_real_semisynthetic_score_design():
    from benchmarks import real_semisynthetic

    if not real_semisynthetic.DATA.exists():
        pytest.skip(f"{real_semisynthetic.DATA} is absent on this machine")
    full = real_semisynthetic.load()
    adata, _, score = real_semisynthetic.thinned_design(full, seed=1, n_obs=2000, confounder="score")
    assert score.shape == (adata.n_obs, 1)
    assert np.isclose(score.mean(), 0, atol=1e-8) and np.isclose(score.std(), 1)
    # the hidden score decides the treatment, and is a state within cell types, not a cell type
    assert abs(np.corrcoef(score[:, 0], adata.obs["treatment"])[0, 1]) > 0.3
    by_type = pd.Series(score[:, 0]).groupby(adata.obs["cell_type"].to_numpy()).mean()
    assert by_type.abs().max() < 1e-8
    with pytest.raises(ValueError, match="confounder"):
        real_semisynthetic.thinned_design(full, seed=1, n_obs=500, confounder="batch")


def test_real_confounded_kang_design_smoke(tmp_path):
    from benchmarks import real_confounded

    design = real_confounded.DESIGNS["kang_distinct"]
    if not design.path.exists():
        pytest.skip(f"{design.path} is absent on this machine")
    rows = real_confounded.main(["--design", "kang_distinct", "--smoke", "--seeds", "0"])
    by_method = {r["method"]: r for r in rows}
    assert set(by_method) == {
        "naive GLM (no Z)",
        "patient-adjusted oracle",
        "residual PCA, 5 PCs (RUV-style)",
        "zconf (defaults)",
        "zconf, unadjusted (adjust=False)",
    }
    # P(treated | donor) of 0.15, 0.5 and 0.85 keep about 70% of the 9,517 cells
    assert 5000 < rows[0]["n_obs"] < 8000
    assert (tmp_path / "real_confounded_kang_distinct_smoke_summary.md").exists()
    hidden = real_confounded.hidden(real_confounded.load(design.path)[:50], design.hidden_columns)
    assert not set(design.hidden_columns) & set(hidden.obs.columns)


def test_balanced_glioblastoma_design_keeps_both_arms_of_every_patient():
    from benchmarks import real_confounded

    if not real_confounded.DATA.exists():
        pytest.skip(f"{real_confounded.DATA} is absent on this machine")
    full = real_confounded.load()
    design = real_confounded.DESIGNS["glioblastoma_balanced"]
    sub = real_confounded.confounded_subsample(full, 0, design.propensities)
    assert sub.n_obs == full.n_obs
    assert np.allclose(sub.obs.groupby("donor", observed=True)["treatment"].mean(), 0.5)
