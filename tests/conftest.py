import logging

import pytest
import scvi

import zconf

for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
    logging.getLogger(name).setLevel(logging.ERROR)

COVARIATES = ["x0", "x1", "x2", "x3"]
FAST_TRAIN = {"max_epochs": 2, "batch_size": 64, "n_init": 1, "accelerator": "cpu", "enable_progress_bar": False}


@pytest.fixture(autouse=True)
def _seed():
    scvi.settings.seed = 0


@pytest.fixture(scope="session")
def adata_session():
    return zconf.data.simulate(n_obs=200, n_vars=50, random_state=0)


@pytest.fixture
def adata(adata_session):
    return adata_session.copy()


def setup(adata, **kwargs):
    kwargs.setdefault("layer", "counts")
    kwargs.setdefault("treatment_key", "treatment")
    kwargs.setdefault("continuous_covariate_keys", COVARIATES)
    zconf.ZConf.setup_anndata(adata, **kwargs)
    return adata


@pytest.fixture(scope="session")
def trained(adata_session):
    scvi.settings.seed = 0
    adata = setup(adata_session.copy())
    model = zconf.ZConf(adata, n_hidden=16, n_latent=1)
    model.train(**FAST_TRAIN)
    return model, adata


@pytest.fixture(scope="session")
def fitted_seed_preset():
    """A default model trained to convergence on a small 'seed' preset (accuracy checks)."""
    scvi.settings.seed = 0
    adata = setup(zconf.data.simulate("seed", n_obs=600, n_vars=60, random_state=1))
    model = zconf.ZConf(adata, n_latent=1)
    model.train(max_epochs=60, accelerator="cpu", enable_progress_bar=False)
    return model, adata


@pytest.fixture(scope="session")
def fitted_confounded():
    """A default model trained on a small 'confounded' preset (effects and sensitivity checks)."""
    scvi.settings.seed = 0
    adata = setup(zconf.data.simulate("confounded", n_obs=800, n_vars=60, random_state=2))
    model = zconf.ZConf(adata, n_latent=1)
    model.train(max_epochs=60, accelerator="cpu", enable_progress_bar=False)
    return model, adata
