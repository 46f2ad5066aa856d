from ._model import DEFAULT_TRAIN_KWARGS, ZConf, default_max_epochs
from ._paired import PairedVAE

__all__ = ["DEFAULT_TRAIN_KWARGS", "PairedVAE", "ZConf", "default_max_epochs"]
