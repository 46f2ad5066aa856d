"""The documentation: every public name is in the API reference, and Sphinx builds with no warnings."""

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PUBLIC_MODULES = [
    "zconf",
    "zconf.analysis",
    "zconf.data",
    "zconf.metrics",
    "zconf.pl",
    "zconf.glm",
    "zconf.train",
    "zconf.module",
    "zconf.dataloaders",
]
#: public names not listed on their own, and why
NOT_LISTED = {
    "zconf.__version__": "a string",
    "zconf.data.PRESETS": "documented through simulate's `preset` argument",
    "zconf.data": "a subpackage (its members are listed)",
    "zconf.analysis": "a subpackage (its members are listed)",
    "zconf.metrics": "a subpackage (its members are listed)",
    "zconf.pl": "a subpackage (its members are listed)",
    "zconf.presets": "a module (its members are listed)",
}


def test_every_public_name_is_in_the_api_reference():
    api = (DOCS / "api.md").read_text()
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        prefix = module_name.removeprefix("zconf").lstrip(".")
        for name in module.__all__:
            qualified = f"{module_name}.{name}"
            listed = f"{prefix}.{name}" if prefix else name
            if qualified not in NOT_LISTED and f"   {listed}\n" not in api:
                missing.append(qualified)
    assert not missing, f"add these to docs/api.md: {missing}"


@pytest.mark.skipif(importlib.util.find_spec("sphinx") is None, reason="sphinx not installed (pip install .[docs])")
def test_sphinx_builds_without_warnings(tmp_path):
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "generated", "tutorials"))
    # conf.py copies ../tutorials into the source tree; give the copy the same neighbour
    shutil.copytree(ROOT / "tutorials", tmp_path / "tutorials")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(source), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "out" / "tutorials" / "02_real_data_kang.html").exists()
