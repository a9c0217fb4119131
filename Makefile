# Two commands on a fresh machine: `make lab` (work) and `make test` (check). See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install deps lab labextension test test-js test-python test-notebooks demo bench team team-down team-status clean

## What the goals need from the system (Debian packages), checked when make starts, before anything runs: when
## something is missing, make stops at once with one line that names the install command (tools/system-needs).
GOALS := $(or $(MAKECMDGOALS),install)
ifeq ($(filter deps clean,$(GOALS)),)
NEEDS := $(strip \
	$(if $(filter test test-python,$(GOALS)),chromium postgresql) \
	$(if $(filter test test-python test-notebooks test-js lab labextension,$(GOALS)),node) \
	$(if $(wildcard $(BIN)/python),,venv))
MISSING := $(if $(NEEDS),$(shell PYTHON=$(PYTHON) sh tools/system-needs $(NEEDS)))
$(if $(MISSING),$(error $(MISSING)))
endif

## Installs those system packages on Debian (apt-get, as root or through sudo); .ci/run uses it.
deps:
	PYTHON=$(PYTHON) sh tools/system-needs --install chromium postgresql node venv

## The editable install skips the Node build (`make labextension` does it, from the locked Node packages). The
## link to the built extension goes first: pip would write the wheel's shared data through it into the build
## (an install.json there, which earlier installs left, breaks the wheel build: it is packed from install.json).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	rm -rf $(VENV)/share/jupyter/labextensions/jupyter-tracking jupyter_tracking/labextension/install.json
	SKIP_JUPYTER_BUILDER=1 $(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## The pinned localtunnel client (`lt`) that `%tracking_ui --share` uses here and in the tests.
LT := sharing-node/node_modules/.bin/lt
$(LT): sharing-node/package.json sharing-node/package-lock.json
	cd sharing-node && npm ci --no-audit --no-fund --loglevel=error
	touch $(LT)

## The JupyterLab extension: Node packages from the committed yarn.lock (jlpm comes with jupyterlab), a
## production build into jupyter_tracking/labextension (redone only when a source changed), then linked into
## the venv with the server extension switched on, as a wheel install would.
JLPM := env PATH="$(CURDIR)/$(BIN):$$PATH" $(CURDIR)/$(BIN)/jlpm
LABEXT_DEPS := labextension/node_modules/.jt-installed
LABEXT_BUILD := jupyter_tracking/labextension/package.json
LABEXT_SOURCES := $(wildcard labextension/src/*.ts labextension/style/* labextension/schema/*) \
	labextension/package.json labextension/tsconfig.json
LABEXT_LINK := $(VENV)/share/jupyter/labextensions/jupyter-tracking
SERVEREXT_CONFIG := $(VENV)/etc/jupyter/jupyter_server_config.d/jupyter_tracking.json

$(LABEXT_DEPS): labextension/package.json labextension/yarn.lock .yarnrc.yml $(STAMP)
	cd labextension && $(JLPM) install --immutable
	touch $@

$(LABEXT_BUILD): $(LABEXT_SOURCES) labextension/yarn.lock | $(LABEXT_DEPS)
	cd labextension && $(JLPM) build:prod

labextension: $(LABEXT_BUILD)
	rm -rf $(LABEXT_LINK) && mkdir -p $(dir $(LABEXT_LINK)) && ln -s $(CURDIR)/jupyter_tracking/labextension $(LABEXT_LINK)
	install -D -m 644 jupyter-config/server-config/jupyter_tracking.json $(SERVEREXT_CONFIG)

## Unit tests of the extension's front-end logic (jest).
test-js: $(LABEXT_DEPS)
	cd labextension && $(JLPM) test --ci

## Open JupyterLab on notebooks/, runs going to the embedded SQLite store (mlflow.db at the repo root).
lab: install labextension
	env -u MLFLOW_TRACKING_URI $(BIN)/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1

## Every test: pytest (real IPython, kernels, stores, servers, browsers) and nbval on notebooks/.
test: install test-js test-python test-notebooks

test-python: install $(LT) labextension
	env -u MLFLOW_TRACKING_URI $(BIN)/python -m pytest tests -q

## MLflow's text progress bar for artifact downloads (drawn when tqdm is installed) is left out: its frames
## differ from run to run, so a saved output could never match.
test-notebooks: install $(LT)
	env -u MLFLOW_TRACKING_URI MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false $(BIN)/python -m pytest -q -p no:cacheprovider --nbval --nbval-sanitize-with notebooks/sanitize.cfg notebooks

## Execute the quickstart notebook headless into the embedded store and print its runs.
demo: install
	env -u MLFLOW_TRACKING_URI $(BIN)/python -m jupyter_tracking.demo notebooks/01_quickstart.ipynb

## The team stack on this machine: PostgreSQL, SeaweedFS (S3) and `mlflow server` with its login, all on
## 127.0.0.1; prints the three variables a notebook needs. Data in ~/.local/share/jupyter_tracking/team.
team: install
	$(BIN)/python -m jupyter_tracking.team up

team-status: install
	$(BIN)/python -m jupyter_tracking.team status

team-down: install
	$(BIN)/python -m jupyter_tracking.team down

## Speed and memory figures against plain MLflow (prints tables).
bench: install
	env -u MLFLOW_TRACKING_URI $(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) dist build .pytest_cache
