from ._model import ZConf
from ._paired import PairedVAE
from ._training import DEFAULT_TRAIN_KWARGS, default_epoch_batches, default_max_epochs

__all__ = ["DEFAULT_TRAIN_KWARGS", "PairedVAE", "ZConf", "default_epoch_batches", "default_max_epochs"]
