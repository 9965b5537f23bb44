# Earth Analytics Lab — developer entry points.
# Everything installs into a project-local virtual environment (.venv) from PyPI and npm.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
OUT    ?= out/demo
PYTEST_ARGS ?=

.PHONY: demo test install install-test lint typecheck docs benchmarks clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Core install: the three packages and the CLI, with versions known to work together offline.
$(VENV)/.core-installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

# Test install: core + hub + test + docs extras (the tests build the docs site), and the npm
# pieces the hub needs.
$(VENV)/.test-installed: $(VENV)/.core-installed
	$(PIP) install --quiet -c constraints.txt -e ".[hub,test,docs]"
	npm ci --prefix hub_config --no-audit --no-fund
	touch $@

# Docs install: core + the documentation site's tools (mkdocs and its plugins) + what the
# notebooks need to run (the build executes them): the same list as Binder's.
$(VENV)/.docs-installed: $(VENV)/.core-installed binder/requirements.txt
	$(PIP) install --quiet -c constraints.txt -e ".[docs]" -r binder/requirements.txt
	touch $@

install: $(VENV)/.core-installed
install-test: $(VENV)/.test-installed

## make demo: install and run the main job on the embedded sample federation.
demo: install
	$(VENV)/bin/earthlab demo --out $(OUT)

## make test: install what the tests need and run all of them (slow and integration included).
test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

## make docs: build the documentation site into site/, warnings as errors. The build executes
## the notebooks (a few minutes) on the sample federation: EARTHLAB_CENTRES if set, else the
## default sample in EARTHLAB_CACHE_DIR (docs/hooks/notebook_links.py generates it once).
docs: $(VENV)/.docs-installed
	$(VENV)/bin/mkdocs build --strict

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-test
	$(VENV)/bin/mypy

benchmarks: install-test
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache
