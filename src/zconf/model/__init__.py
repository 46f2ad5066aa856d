from ._model import DEFAULT_TRAIN_KWARGS, ZConf, default_max_epochs

__all__ = ["DEFAULT_TRAIN_KWARGS", "ZConf", "default_max_epochs"]
