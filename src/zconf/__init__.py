"""zconf: infer an unmeasured binary confounder from covariates, treatment and single-cell counts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zconf")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

from . import analysis, data, metrics, pl, presets
from .model import PairedVAE, ZConf

__all__ = ["PairedVAE", "ZConf", "__version__", "analysis", "data", "metrics", "pl", "presets"]
