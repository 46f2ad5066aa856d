"""The default schedule's length: 1,600 to 3,200 steps at every size, in short epochs on large data."""

import pytest
from lightning.pytorch.callbacks import Callback

import zconf
from tests.conftest import setup
from zconf.model import _training


def test_large_data_get_short_epochs_small_data_full_ones():
    large = _training.resolve_train_kwargs(100_000, {}, {})
    assert large["max_epochs"] == 20 and large["limit_train_batches"] == 160  # 3,200 steps
    assert _training.resolve_train_kwargs(1_000_000, {}, {})["limit_train_batches"] == 160  # at any larger size
    small = _training.resolve_train_kwargs(10_000, {}, {})
    assert "limit_train_batches" not in small and small["max_epochs"] * 79 >= _training.DEFAULT_TRAIN_STEPS
    assert "limit_train_batches" not in _training.resolve_train_kwargs(20_000, {}, {})  # 157 batches: full passes


@pytest.mark.parametrize(
    ("asked", "trainer", "expected"),
    [({"max_epochs": 20}, {}, None), ({}, {"limit_train_batches": 0.5}, 0.5), ({"batch_size": 2048}, {}, None)],
)
def test_users_choices_are_kept(asked, trainer, expected):
    resolved = _training.resolve_train_kwargs(100_000, asked, trainer)
    assert resolved.get("limit_train_batches") == expected  # full passes when the user names the epochs


class _BatchCounter(Callback):
    def __init__(self):
        self.per_epoch = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.per_epoch.append(0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.per_epoch[-1] += 1


def test_default_fit_trains_the_short_epochs(adata, monkeypatch):
    monkeypatch.setattr(_training, "MAX_DEFAULT_EPOCH_BATCHES", 2)  # 200 cells in batches of 64: 4 minibatches
    monkeypatch.setattr(_training, "DEFAULT_TRAIN_STEPS", 40)  # and 20 epochs
    setup(adata)
    model = zconf.ZConf(adata, n_latent=1)
    counter = _BatchCounter()
    model.train(batch_size=64, n_init=1, accelerator="cpu", enable_progress_bar=False, callbacks=[counter])
    assert counter.per_epoch == [2] * 20
