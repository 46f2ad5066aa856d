"""A state made of the observed library's noise loses its gain when the offset is the NB depth; a real one keeps it."""

import numpy as np
import pytest

import zconf
from zconf.analysis import MIN_GAIN_BEYOND_LIBRARY, gain_beyond_library


def _arrays(adata):
    counts = adata.layers["counts"]
    covariates = adata.obs[[f"x{i}" for i in range(4)]].to_numpy(float)
    return counts, covariates, adata.obs["treatment"].to_numpy(), np.log(counts.sum(1).clip(1))


def test_a_state_of_the_library_noise_is_rejected():
    # no confounder, a strong treatment effect: a treated cell's total is largely a few raised, noisy genes
    adata = zconf.data.simulate("no_confounder", n_obs=1000, random_state=3, treatment_effect_scale=1.5)
    counts, covariates, treatment, library = _arrays(adata)
    residual = library - np.array([library[treatment == arm].mean() for arm in (0, 1)])[treatment]
    noise_state = ((treatment == 1) & (residual > 0)).astype(float)[:, None]
    assert gain_beyond_library(counts, covariates, treatment, noise_state, library) < MIN_GAIN_BEYOND_LIBRARY


def test_a_real_confounder_keeps_its_gain():
    adata = zconf.data.simulate("confounded", n_obs=1000, random_state=3)
    counts, covariates, treatment, library = _arrays(adata)
    share = gain_beyond_library(counts, covariates, treatment, adata.obsm["z_true"], library)
    assert share == pytest.approx(1.0, abs=0.1)


def test_a_constant_state_gives_nan():
    adata = zconf.data.simulate("no_confounder", n_obs=400, random_state=0)
    counts, covariates, treatment, library = _arrays(adata)
    assert np.isnan(gain_beyond_library(counts, covariates, treatment, np.zeros((400, 1)), library))


@pytest.mark.slow
def test_the_default_rejects_the_library_noise_of_a_strong_treatment():
    """No confounder, a strong treatment: before the check, Bernoulli 1 was chosen and made the effects 1.29x naive."""
    adata = zconf.data.simulate("no_confounder", random_state=100, treatment_effect_scale=1.5)
    zconf.ZConf.setup_anndata(
        adata, layer="counts", treatment_key="treatment", continuous_covariate_keys=[f"x{i}" for i in range(4)]
    )
    model = zconf.ZConf(adata)
    model.train(accelerator="cpu", enable_progress_bar=False)
    assert model.n_latent_ == 0
    assert model.latent_selection_.loc["bernoulli 1", "role"] == "library noise"
