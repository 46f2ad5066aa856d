import pickle

import numpy as np
import pytest
import torch

import zconf


def test_save_refuses_overwrite_then_replaces_atomically(trained, tmp_path):
    model, adata = trained
    target = tmp_path / "m"
    model.save(target)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(target)
    model.save(target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary or backup folders left


def test_failed_save_keeps_old_model(trained, tmp_path, monkeypatch):
    model, adata = trained
    target = tmp_path / "m"
    model.save(target)
    before = (target / "model.pt").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(target, overwrite=True)
    assert (target / "model.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    loaded = zconf.ZConf.load(target, adata=adata)
    np.testing.assert_array_equal(loaded.get_latent_representation(), model.get_latent_representation())


def test_load_rejects_non_models(tmp_path, trained):
    _, adata = trained
    with pytest.raises(FileNotFoundError, match="not a directory"):
        zconf.ZConf.load(tmp_path / "nope", adata=adata)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="model.pt is missing"):
        zconf.ZConf.load(tmp_path / "empty", adata=adata)
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "model.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a torch model file"):
        zconf.ZConf.load(tmp_path / "text", adata=adata)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_load_refuses_unsafe_pickle(tmp_path, trained):
    _, adata = trained
    (tmp_path / "evil").mkdir()
    torch.save(
        {"model_state_dict": {}, "attr_dict": {"x": _Evil()}}, tmp_path / "evil" / "model.pt", pickle_module=pickle
    )
    with pytest.raises(ValueError, match="Refusing to load"):
        zconf.ZConf.load(tmp_path / "evil", adata=adata)


def test_registered_samples_survive_save_and_load(tmp_path):
    import anndata as ad

    from tests.conftest import FAST_TRAIN

    adata = zconf.data.simulate("confounded", n_obs=200, n_vars=20, random_state=1)
    adata.obs["well"] = [f"w{int(t)}{i % 4}" for i, t in enumerate(adata.obs["treatment"])]
    zconf.ZConf.setup_anndata(adata, layer="counts", treatment_key="treatment", sample_key="well")
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    model.train(**FAST_TRAIN)
    weighted = model.treatment_effects(weight_samples=True)["lfc"].to_numpy()
    model.save(tmp_path / "m")
    fresh = ad.AnnData(obs=adata.obs[["treatment", "well"]].copy(), var=adata.var.copy())
    fresh.layers["counts"] = adata.layers["counts"].copy()
    loaded = zconf.ZConf.load(tmp_path / "m", adata=fresh)
    assert loaded.registry_["setup_args"]["sample_key"] == "well"
    np.testing.assert_allclose(loaded.treatment_effects(weight_samples=True)["lfc"].to_numpy(), weighted)
    del fresh.obs["well"]
    with pytest.raises(KeyError, match="`sample_key` 'well' not found"):
        zconf.ZConf.load(tmp_path / "m", adata=fresh.copy())
