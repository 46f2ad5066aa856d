import numpy as np
import pytest
import scvi

import zconf
from tests.conftest import FAST_TRAIN, setup
from zconf.train import ConvergencePhases, ZConfTrainingPlan, phase_for_step


@pytest.mark.parametrize(
    ("step", "k", "expected"),
    [(0, 1, "predictor"), (1, 1, "generator"), (2, 3, "predictor"), (3, 3, "generator"), (4, 3, "predictor")],
)
def test_phase_for_step(step, k, expected):
    assert phase_for_step(step, k) == expected


def test_convergence_phases_switch_on_stall_and_cap():
    phases = ConvergencePhases(patience=2, max_phase_epochs=5, tol=1e-3)
    assert [phases.update(v) for v in (10.0, 10.0, 10.0)] == ["predictor", "predictor", "generator"]
    assert [phases.update(v) for v in (5.0, 4.0, 3.0, 2.0, 1.0)][-1] == "predictor"  # capped at 5 epochs
    with pytest.raises(ValueError, match="patience"):
        ConvergencePhases(patience=0)


@pytest.mark.parametrize(
    ("model_kwargs", "plan_kwargs"),
    [
        ({"relaxation": "gumbel"}, {}),
        ({"relaxation": "continuous"}, {}),
        ({"relaxation": "straight_through"}, {"loss_scale": "element"}),
        ({}, {"predictor_steps": 3}),
        ({}, {"schedule": "converge", "patience": 1}),
        ({}, {"reinit_heads": True}),
        ({}, {"schedule": "joint"}),
        ({}, {"dbpr_weight": 1.0, "dbpr_treatment_weight": 0.0}),
        ({"generator_inputs": ("covariates", "counts")}, {"weight_decay": 1e-4}),
    ],
)
def test_every_option_trains(adata, model_kwargs, plan_kwargs):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1, **model_kwargs)
    model.train(**{**FAST_TRAIN, "max_epochs": 4}, plan_kwargs=plan_kwargs)
    z = model.get_latent_representation()
    assert z.shape == (adata.n_obs, 1)
    assert set(np.unique(z)) <= {0.0, 1.0} or model_kwargs.get("relaxation") == "continuous"
    if plan_kwargs.get("dbpr_weight"):
        assert {"dbpr_treatment_train", "dbpr_genes_train"} <= set(model.history)
        assert bool(model.module.baselines_fitted)


def test_joint_schedule_updates_all_subnetworks(adata):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.train(**{**FAST_TRAIN, "max_epochs": 1}, plan_kwargs={"schedule": "joint"})
    after = model.module.state_dict()
    for prefix in ("generator.", "classifier.", "nb_head."):
        assert any(not np.allclose(before[k], after[k]) for k in before if k.startswith(prefix))


@pytest.mark.parametrize(
    ("plan_kwargs", "match"),
    [
        ({"schedule": "random"}, "schedule"),
        ({"predictor_steps": 0}, "predictor_steps"),
        ({"loss_scale": "gene"}, "loss_scale"),
        ({"dbpr_weight": -1.0}, "dbpr_weight"),
        ({"dbpr_treatment_weight": -0.1}, "dbpr_treatment_weight"),
        ({"kl_weight": -1.0}, "kl_weight"),
        ({"temperature_start": 0.0}, "Temperatures"),
    ],
)
def test_bad_option_values(adata, plan_kwargs, match):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    with pytest.raises(ValueError, match=match):
        ZConfTrainingPlan(model.module, **plan_kwargs)


def _dbpr_total(preset: str, n_vars: int, seed: int = 0, **overrides) -> dict:
    scvi.settings.seed = seed
    adata = zconf.data.simulate(preset, n_obs=300, n_vars=n_vars, random_state=seed, **overrides)
    setup(adata)
    model = zconf.ZConf(adata, n_latent=1)
    model.train(accelerator="cpu", enable_progress_bar=False)  # default epochs (200 for 300 cells)
    return model.sensitivity(soft=True)


def test_dbpr_near_zero_without_confounder():
    # no confounder and no treatment effect (the notebook's setting with gamma2 = 0): nothing for Z-hat to find.
    # With a treatment effect on Y and no confounder, Z-hat can drift towards D (w' up to ~0.25 measured):
    # see docs/model.md, "when the assumptions fail".
    values = _dbpr_total("seed", n_vars=150, gamma2_scale=0.0, gamma1=0.0)
    assert values["treatment"] < 0.02
    assert values["genes_mean"] < 0.02


def test_dbpr_rises_with_confounder_strength():
    values = [_dbpr_total("seed", n_vars=30, gamma1=1.0, gamma2_scale=s) for s in (0.25, 1.0, 2.0)]
    totals = [v["treatment"] + v["genes_mean"] for v in values]
    assert totals[0] < totals[1] < totals[2]
