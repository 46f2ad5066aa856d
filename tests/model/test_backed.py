"""Backed (on-disk) AnnData: set up, train and embed without loading the count matrix whole."""

import anndata as ad
import numpy as np
import pytest
from scipy import sparse

import zconf
from tests.conftest import COVARIATES, FAST_TRAIN


@pytest.fixture
def backed(tmp_path):
    adata = zconf.data.simulate(n_obs=300, n_vars=30, random_state=0)
    adata.X = sparse.csr_matrix(adata.layers["counts"])
    del adata.layers["counts"], adata.layers["log_mean_true"]
    adata.write_h5ad(tmp_path / "data.h5ad")
    return ad.read_h5ad(tmp_path / "data.h5ad", backed="r")


def test_backed_anndata_trains_and_embeds(backed, monkeypatch):
    from zconf.model import _validation

    monkeypatch.setattr(_validation, "BACKED_BLOCK", 64)  # several blocks on this small file
    assert backed.isbacked
    zconf.ZConf.setup_anndata(backed, treatment_key="treatment", continuous_covariate_keys=COVARIATES)
    model = zconf.ZConf(backed, n_hidden=16, n_latent=1)
    model.train(**FAST_TRAIN)
    z = model.get_latent_representation(soft=True)
    assert z.shape == (300, 1) and np.isfinite(z).all()
    with pytest.raises(ValueError, match="to_memory"):
        model.treatment_effects()
    with pytest.raises(ValueError, match="to_memory"):
        model.get_cross_fitted_latent()


def test_backed_counts_are_validated_block_by_block(tmp_path, monkeypatch):
    from zconf.model import _validation

    monkeypatch.setattr(_validation, "BACKED_BLOCK", 50)
    adata = zconf.data.simulate(n_obs=200, n_vars=10, random_state=0)
    counts = adata.layers["counts"].astype(float)
    counts[170, 3] = 2.5  # in the last block only
    adata.X = sparse.csr_matrix(counts)
    del adata.layers["counts"], adata.layers["log_mean_true"]
    adata.write_h5ad(tmp_path / "bad.h5ad")
    backed = ad.read_h5ad(tmp_path / "bad.h5ad", backed="r")
    with pytest.raises(ValueError, match="non-integer"):
        zconf.ZConf.setup_anndata(backed, treatment_key="treatment", continuous_covariate_keys=COVARIATES)
