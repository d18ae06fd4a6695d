# labkit: two commands do everything on a fresh clone.
#   make lab    set up, then open JupyterLab on notebooks/   (make lab HEADLESS=1 on a server)
#   make test   set up, then run the whole suite in small mode (what CI runs)
#   make test-fast  the unit tests only, for iteration
#   make server     build llama-server once into labkit's cache (lesson 6; `make test` needs it)
VENV ?= .venv
PORT ?= 8888
HEADLESS ?=
LAB_FLAGS = $(if $(HEADLESS),--no-browser --ip=$(or $(IP),127.0.0.1) --port=$(PORT),) \
	$(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test test-fast lint check-notebooks strip bench server clean

setup:
	bash scripts/setup.sh

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_FLAGS)

lint: setup
	$(VENV)/bin/ruff check labkit tests notebooks scripts conftest.py
	$(VENV)/bin/ruff format --check labkit tests scripts conftest.py

check-notebooks: setup
	$(VENV)/bin/python scripts/check_notebooks.py notebooks

# Lesson 6 runs a real llama-server: built once per machine (~15 min on 2 cores), then reused.
server: setup
	$(VENV)/bin/labkit server build

test: setup lint check-notebooks server
	LABKIT_SMALL=1 $(VENV)/bin/python -m pytest --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=900 tests notebooks

# For iteration: the unit tests only (no notebooks), in small mode.
test-fast: setup lint
	LABKIT_SMALL=1 $(VENV)/bin/python -m pytest -q tests

strip: setup
	$(VENV)/bin/python scripts/check_notebooks.py --strip notebooks

bench: setup
	$(VENV)/bin/labkit bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
