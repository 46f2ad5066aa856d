"""Every tutorial notebook runs to completion (the committed outputs come from the same code)."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
SHARED_DATA = ROOT.parent / "shared" / "data"
#: files a tutorial reads from ../shared/data; it is skipped with this message when they are absent
NEEDS_DATA = {
    "02_real_data_kang.ipynb": "kang_muscat_2donor.h5ad",
    "03_hidden_patient_glioblastoma.ipynb": "glioblastoma_zhao2021.h5ad",
}
#: real-data tutorials whose default fits (every candidate of n_latent="auto" on thousands of cells) take several
#: minutes each on 2 CPU cores: executed by `make test-all`, so that the default suite stays under 15 minutes
SLOW = {"02_real_data_kang.ipynb", "03_hidden_patient_glioblastoma.ipynb"}


def _notebooks() -> list[Path]:
    return sorted(TUTORIALS.glob("*.ipynb"))


def test_tutorials_exist():
    names = {path.name for path in _notebooks()}
    assert {"01_notebook_walkthrough.ipynb", "02_real_data_kang.ipynb", "03_hidden_patient_glioblastoma.ipynb"} <= names


def test_tutorials_committed_with_outputs():
    for path in _notebooks():
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(cell.get("outputs") is not None for cell in code)
        assert sum(bool(cell.get("outputs")) for cell in code) >= len(code) // 2, f"{path.name} has no outputs"
        errors = [o for cell in code for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{path.name} was committed with an error output"


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW else p for p in _notebooks()],
    ids=lambda p: p.stem,
)
def test_tutorial_runs(path, monkeypatch):
    needed = NEEDS_DATA.get(path.name)
    if needed and not (SHARED_DATA / needed).exists():
        pytest.skip(f"{path.name} needs ../shared/data/{needed}, which is absent on this machine")
    monkeypatch.setenv("ZCONF_DATA", str(SHARED_DATA))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend, as for a user
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}
    )
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
