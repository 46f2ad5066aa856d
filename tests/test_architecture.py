"""The house rules of docs/architecture.md that a test can check (issue 14's targets)."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "zconf"
BENCHMARKS = SRC.parents[1] / "benchmarks"
FLOORS = {"glm": 1, "data": 1, "module": 2, "train": 2, "analysis": 3, "metrics": 3, "model": 4, "pl": 5}


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0].value, "value", None), str):
                body = body[1:]  # the docstring does not count
            if body:
                yield node.name, body[-1].end_lineno - body[0].lineno + 1


def test_no_function_body_longer_than_60_lines():
    long = [f"{p.relative_to(SRC)}:{name} ({n})" for p in SRC.rglob("*.py") for name, n in _functions(p) if n > 60]
    assert not long, long


def test_model_class_file_stays_small():
    assert len((SRC / "model" / "_model.py").read_text().splitlines()) <= 350


def test_glm_design_is_built_in_one_place():
    # an intercept column: ones stacked in front of a design, or an (n, 1) block of ones
    intercept = re.compile(r"(column_stack|hstack|cat)\(\s*\[\s*(np\.ones|torch\.ones|ones\b)|\.ones\(\([^()]+, 1\)")
    offenders = [
        str(p)
        for p in [*SRC.rglob("*.py"), *BENCHMARKS.glob("*.py")]
        if p.name != "_design.py" and intercept.search(p.read_text())
    ]
    assert not offenders, offenders


def test_imports_only_run_down_the_floors():
    upward = []
    for path in SRC.rglob("*.py"):
        package = path.relative_to(SRC).parts[0]
        if package not in FLOORS:
            continue
        for target in re.findall(r"^\s*from zconf\.(\w+)", path.read_text(), flags=re.M):
            if target in FLOORS and FLOORS[target] > FLOORS[package]:
                upward.append(f"{path.relative_to(SRC)} imports zconf.{target}")
    assert not upward, upward


def test_no_private_name_imported_across_packages():
    pattern = re.compile(r"^\s*from zconf\.(\w+)(\.\w+)* import (.+)$", re.M)
    offenders = []
    for path in SRC.rglob("*.py"):
        own = path.relative_to(SRC).parts[0]
        for match in pattern.finditer(path.read_text()):
            names = [n.strip(" ()") for n in match.group(3).split(",")]
            if match.group(1) != own and any(n.startswith("_") for n in names):
                offenders.append(f"{path.relative_to(SRC)}: {match.group(0).strip()}")
    assert not offenders, offenders
