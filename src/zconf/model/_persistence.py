"""Safe saving and loading: atomic writes, and a check of the file before scvi-tools unpickles it."""

from __future__ import annotations

import os
import pickletools
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path

#: scvi-tools 1.4 loads ``model.pt`` with ``torch.load(weights_only=False)`` (its attribute dict holds pandas
#: objects), so before that call the pickle's globals are checked against this allowlist of the (module, name)
#: pairs a saved scvi-tools model uses: containers, numpy arrays, pandas frames and torch tensors.
_SAFE_BUILTINS = {
    "bytes",
    "bytearray",
    "dict",
    "list",
    "tuple",
    "set",
    "frozenset",
    "slice",
    "int",
    "float",
    "complex",
    "bool",
    "str",
    "range",
}
_SAFE_TORCH_NAMES = {"Size", "device", "dtype", "float16", "float32", "float64", "int32", "int64", "bool"}
_BLOCKED_PANDAS = ("pandas.io", "pandas.core.computation")


def _is_allowed(module: str, name: str) -> bool:
    root = module.split(".")[0]
    if root in ("builtins", "__builtin__"):
        return name in _SAFE_BUILTINS
    if (module, name) in {("_codecs", "encode"), ("collections", "OrderedDict"), ("collections", "defaultdict")}:
        return True
    if root == "numpy":
        return name in {"dtype", "ndarray", "_reconstruct", "scalar"} or module.startswith("numpy.dtypes")
    if root == "pandas":
        return not module.startswith(_BLOCKED_PANDAS) and not name.startswith(("read_", "eval"))
    if root == "torch":
        # torch.distributions.constraints: scvi-tools saves pyro's global parameter store with every model, and
        # its entries carry constraint objects (plain classes with no code run on unpickling) once any pyro
        # model (CEVAE, in the benchmarks) has run in the session
        constraint = module == "torch.distributions.constraints" and name.startswith("_") and name[1:2].isupper()
        return name.startswith("_rebuild") or name.endswith("Storage") or name in _SAFE_TORCH_NAMES or constraint
    if root == "datetime":
        return name in {"datetime", "date", "time", "timedelta", "timezone"}
    return False


def _pickle_globals(data: bytes) -> set[tuple[str, str]]:
    """(module, name) pairs referenced by GLOBAL / STACK_GLOBAL opcodes of a pickle."""
    pairs, strings = set(), []
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif opcode.name == "GLOBAL":
            module, _, name = str(arg).partition(" ")
            pairs.add((module, name))
        elif opcode.name == "STACK_GLOBAL":
            pairs.add((strings[-2], strings[-1]) if len(strings) >= 2 else ("?", "?"))
    return pairs


def check_model_dir(dir_path: str | os.PathLike, prefix: str | None, model_name: str) -> None:
    """Raise a clear error unless ``dir_path`` holds a saved model whose pickle references only safe modules."""
    path = Path(dir_path)
    if not path.is_dir():
        msg = f"{path} is not a directory; pass the folder written by {model_name}.save()."
        raise FileNotFoundError(msg)
    model_file = path / f"{prefix or ''}model.pt"
    if not model_file.is_file():
        msg = f"{path} is not a saved {model_name} model: {model_file.name} is missing."
        raise ValueError(msg)
    if not zipfile.is_zipfile(model_file):
        msg = f"{model_file} is not a torch model file."
        raise ValueError(msg)
    with zipfile.ZipFile(model_file) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if not pickles:
            msg = f"{model_file} is not a torch model file (no data.pkl)."
            raise ValueError(msg)
        pairs = _pickle_globals(archive.read(pickles[0]))
    unsafe = sorted(f"{m}.{n}" for m, n in pairs if not _is_allowed(m, n))
    if unsafe:
        msg = f"Refusing to load {model_file}: it references objects outside the allowed list: {unsafe}."
        raise ValueError(msg)


def atomic_save(save, dir_path: str | os.PathLike, overwrite: bool) -> None:
    """Call ``save(tmp_dir)`` on a fresh temporary folder beside ``dir_path``, then move it into place.

    An existing model is only replaced (with ``overwrite=True``) once the new one is completely written,
    so an interrupted save never leaves a half-written model or loses the old one.
    """
    target = Path(dir_path)
    if target.exists() and not overwrite:
        msg = f"{target} already exists; pass overwrite=True to replace it."
        raise FileExistsError(msg)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
    try:
        save(str(tmp))
        if target.exists():
            backup = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            target.rename(backup)
            tmp.rename(target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
