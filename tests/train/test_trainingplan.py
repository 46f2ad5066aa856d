import copy
import pathlib

import pytest
import torch
from lightning.pytorch.callbacks import Callback

import zconf
from tests.conftest import setup
from zconf.train import ZConfTrainingPlan


class _Snapshots(Callback):
    def __init__(self):
        self.states = []

    def on_train_start(self, trainer, pl_module):
        self.states.append(copy.deepcopy(pl_module.module.state_dict()))

    def on_train_epoch_end(self, trainer, pl_module):
        self.states.append(copy.deepcopy(pl_module.module.state_dict()))


def _changed(before, after, prefix):
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


def test_only_active_subnetworks_change(adata):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    snaps = _Snapshots()
    model.train(
        max_epochs=2,
        batch_size=50,
        accelerator="cpu",
        enable_progress_bar=False,
        limit_train_batches=1,
        callbacks=[snaps],
        n_init=1,
        max_restarts=0,
    )
    start, after_predictor, after_generator = snaps.states
    # epoch 0 is a predictor phase: heads (and the prior) move, the generator does not
    assert not _changed(start, after_predictor, "generator.")
    assert _changed(start, after_predictor, "classifier.")
    assert _changed(start, after_predictor, "nb_head.")
    # epoch 1 is a generator phase: only the generator moves
    assert _changed(after_predictor, after_generator, "generator.")
    assert not _changed(after_predictor, after_generator, "classifier.")
    assert not _changed(after_predictor, after_generator, "nb_head.")
    assert not _changed(after_predictor, after_generator, "z_prior_logit")
    # after training every parameter is trainable again
    assert all(p.requires_grad for p in model.module.parameters())


def test_history_logs_losses_and_phase(trained):
    model, _ = trained
    for key in ("train_loss", "classifier_loss_train", "nb_loss_train", "elbo_train", "generator_phase"):
        assert key in model.history
    assert model.history["generator_phase"]["generator_phase"].tolist() == [0.0, 1.0]


def test_validation_loss_logged_when_split(adata):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    model.train(
        max_epochs=2,
        batch_size=50,
        train_size=0.8,
        accelerator="cpu",
        enable_progress_bar=False,
        check_val_every_n_epoch=1,
    )
    assert "validation_loss" in model.history


def test_one_optimizer_per_subnetwork_with_own_rates(adata):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    plan = ZConfTrainingPlan(model.module, lr=1e-3, lr_classifier=0.5, lr_nb_head=0.25, weight_decay_heads=0.1)
    optimizers = plan.configure_optimizers()
    assert [opt.param_groups[0]["lr"] for opt in optimizers] == [1e-3, 0.5, 0.25]
    assert [opt.param_groups[0]["weight_decay"] for opt in optimizers] == [0.0, 0.1, 0.1]
    n_params = sum(len(opt.param_groups[0]["params"]) for opt in optimizers)
    assert n_params == len(list(model.module.parameters()))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"lr": -1.0}, "lr"), ({"bce_weight": -0.5}, "bce_weight"), ({"predictor_epochs": 0}, "Phase lengths")],
)
def test_bad_plan_values(adata, kwargs, match):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    with pytest.raises(ValueError, match=match):
        ZConfTrainingPlan(model.module, **kwargs)


def test_non_finite_loss_names_phase_and_epoch(adata):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    with torch.no_grad():
        model.module.nb_head.linear.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"Non-finite nb_loss loss in the predictor phase at epoch 0"):
        model.train(max_epochs=2, batch_size=50, accelerator="cpu", enable_progress_bar=False, random_state=None)


def test_no_retain_graph_in_source():
    src = pathlib.Path(zconf.__file__).parent
    offenders = [p for p in src.rglob("*.py") if "retain_graph=True" in p.read_text()]
    assert offenders == []
