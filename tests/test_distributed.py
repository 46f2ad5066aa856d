"""Multi-process training through Lightning's DDP engine: two CPU processes (slow; `make test-all`)."""

import json
import subprocess
import sys
import textwrap

import pytest

from zconf.model._training import is_distributed as _is_distributed

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np, scvi, zconf

    scvi.settings.seed = 0
    adata = zconf.data.simulate("confounded", n_obs=600, n_vars=50, random_state=0)
    zconf.ZConf.setup_anndata(
        adata, layer="counts", treatment_key="treatment", continuous_covariate_keys=["x0", "x1", "x2", "x3"]
    )
    model = zconf.ZConf(adata, n_hidden=32, n_latent=1)
    ddp = {"accelerator": "cpu", "devices": 2, "strategy": "ddp_find_unused_parameters_true"}
    model.train(max_epochs=4, enable_progress_bar=False, **ddp)
    adata.obs["dataset"] = np.where(adata.obs["treatment"] == 1, "stim", "ctrl")
    zconf.PairedVAE.setup_anndata(adata, layer="counts", dataset_key="dataset")
    paired = zconf.PairedVAE(adata, n_latent=4, n_hidden=32)
    paired.train(max_epochs=2, adversarial="alternate", enable_progress_bar=False, **ddp)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        z = model.get_latent_representation(soft=True)
        out = {
            "world_size": model.trainer.world_size,
            "batches_per_epoch": model.trainer.num_training_batches,
            "epochs_logged": len(model.history["train_loss"]),
            "finite": bool(np.isfinite(z).all() and np.isfinite(paired.get_latent_representation()).all()),
        }
        json.dump(out, open(sys.argv[1], "w"))
    """
)


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["world_size"] == 2
    assert out["batches_per_epoch"] == 3  # 600 cells split over 2 processes, batches of 128: each sees half
    assert out["epochs_logged"] == 4
    assert out["finite"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, False),
        ({"devices": 1}, False),
        ({"devices": "auto"}, False),
        ({"devices": 2}, True),
        ({"devices": [0, 1]}, True),
        ({"strategy": "ddp"}, True),
        ({"num_nodes": 2}, True),
    ],
)
def test_is_distributed(kwargs, expected):
    assert _is_distributed(kwargs) is expected


def test_n_init_refused_with_several_devices():
    import zconf
    from tests.conftest import setup

    adata = setup(zconf.data.simulate(n_obs=100, n_vars=10, random_state=0))
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    with pytest.raises(ValueError, match="n_init"):
        model.train(max_epochs=1, n_init=2, devices=2, accelerator="cpu")
