# Two commands do all set-up on a fresh machine:
#   make run    the leaderboard app + an evaluator worker on the embedded default data
#   make test   lint (ruff), type check (mypy, strict on evaluator/ and leaderboard/) and the test suite (what .ci/run calls)
# Both create/refresh the virtual environment in .venv first. torch is installed
# before anything that depends on it, pinned to the CPU build (constraints.txt).

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 2

.PHONY: venv run test lint bench browser-deps

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(STAMP)

browser-deps:
	@command -v chromium >/dev/null 2>&1 || bash scripts/install-chromium.sh

run: venv
	$(PY) -m leaderboard.serve

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

test: lint browser-deps
	$(PY) -m pytest -q
