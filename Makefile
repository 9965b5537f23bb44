# Earth Analytics Lab — developer entry points.
# Everything installs into a project-local virtual environment (.venv) from PyPI and npm.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
OUT    ?= out/demo
PYTEST_ARGS ?=

.PHONY: demo test install install-test system-packages pycsw-venv lint typecheck docs benchmarks clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Core install: the three packages and the CLI, with versions known to work together offline.
$(VENV)/.core-installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

# System packages the tests need (Debian 12 names): a headless Chromium and its WebDriver for
# tests/test_browser.py; PostgreSQL 15 and PostGIS for the pgstac catalogues
# (lab_server/deploy/_pgstac.py: tests/pgstac_server.py, `earthlab hub up --catalogue pgstac`).
# Installed with apt-get when running as root (CI); otherwise the exact command is printed and
# the browser and pgstac tests fail until they are installed.
# python3.11 and python3.11-venv: the user environment of isolated users (hub up
# --isolate-users), a Python that others may run (this venv's is in root's home in CI);
# iptables: the firewall rules that close the lab's private ports to those users.
SYSTEM_PACKAGES = chromium chromium-driver postgresql postgresql-15-postgis-3 python3.11 \
	python3.11-venv iptables
system-packages:
	@missing=""; for pkg in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "missing system packages (the browser and pgstac tests fail without them); install with:"; \
	  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$$missing"; \
	fi

# Test install: core + hub + test + docs extras (the tests build the docs site), the npm
# pieces the hub needs, and the system packages (above).
$(VENV)/.test-installed: $(VENV)/.core-installed
	$(PIP) install --quiet -c constraints.txt -e ".[hub,test,docs]"
	npm ci --prefix hub_config --no-audit --no-fund
	touch $@

# Docs install: core + the documentation site's tools (mkdocs and its plugins) + what the
# notebooks need to run (the build executes them): the same list as Binder's.
$(VENV)/.docs-installed: $(VENV)/.core-installed binder/requirements.txt
	$(PIP) install --quiet -c constraints.txt -e ".[docs]" -r binder/requirements.txt
	touch $@

# The CSW server of the tests (tests/csw_server.py): pycsw in a virtual environment of its own,
# .venv-pycsw, because its pins (OWSLib<0.29, SQLAlchemy 1.x) conflict with the lab's.
PYCSW_VENV ?= .venv-pycsw
$(PYCSW_VENV)/.installed: tests/pycsw-constraints.txt
	$(PYTHON) -m venv $(PYCSW_VENV)
	$(PYCSW_VENV)/bin/python -m pip install --quiet -r tests/pycsw-constraints.txt
	touch $@
pycsw-venv: $(PYCSW_VENV)/.installed

install: $(VENV)/.core-installed
install-test: $(VENV)/.test-installed system-packages pycsw-venv

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
	rm -rf $(VENV) $(PYCSW_VENV) out build *.egg-info .pytest_cache
