# Two commands a fresh machine needs: `make demo` and `make test`.
# Each bootstraps .venv on first use with the CPU build of torch (pinned first, so that
# scvi-tools' plain `torch` requirement is already met and no CUDA build is pulled).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.zconf-installed

.PHONY: demo test test-all docs lint bench clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test,dev,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/zconf demo --out demo_output --force

test: $(STAMP)
	MPLBACKEND=agg $(PY) -m pytest

test-all: $(STAMP)
	MPLBACKEND=agg $(PY) -m pytest -m ""

# warnings are errors (-W), and a clean build each time so that none are hidden by the cache
docs: $(STAMP)
	rm -rf docs/_build docs/generated
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

# every benchmark (about 2.5 h on 2 CPU cores, with the optional peers), then the README's results table
# (benchmarks/summary.py)
bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	for script in recovery options effects strength_sweep speed scale paired_vae selection weak_limit \
		real_confounded real_randomized sample_null sample_null_patients library_offset library_default epoch_cap real_semisynthetic; do \
		$(PY) -m benchmarks.$$script || exit 1; \
	done
	$(PY) -m benchmarks.real_confounded --design kang_distinct
	$(PY) -m benchmarks.summary

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean-venv:
	rm -rf $(VENV)
