# labkit: two commands do everything on a fresh clone.
#   make lab    set up, then open JupyterLab on notebooks/   (make lab HEADLESS=1 on a server)
#   make test   set up, then run the whole suite in small mode (what CI runs)
#   make test-fast  the unit tests only, for iteration
#   make server     build llama-server once into labkit's cache (lesson 6; `make test` needs it)
#   make test-full  every notebook in full mode, timed (table in build/notebook_times_full.md)
#   LABKIT_STRESS=1 make test   the suite while two busy processes compete for the CPU
#   make wheelhouse every wheel for an offline room; then `WHEELHOUSE=wheelhouse make lab` there
VENV ?= .venv
PORT ?= 8888
HEADLESS ?=
LAB_FLAGS = $(if $(HEADLESS),--no-browser --ip=$(or $(IP),127.0.0.1) --port=$(PORT),) \
	$(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test test-fast test-full lint check-notebooks strip bench server clean browser \
	wheelhouse
STRESS = $(if $(filter 1,$(LABKIT_STRESS)),$(VENV)/bin/python scripts/stress.py --,)

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

test: setup lint check-notebooks server browser
	LABKIT_SMALL=1 $(STRESS) $(VENV)/bin/python -m pytest --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=900 tests notebooks

# Every numbered notebook in full mode (LABKIT_SMALL=0), one at a time, each within 5 minutes;
# writes and prints a table of times. Long: about 15-25 minutes on 2 CPU cores.
test-full: setup
	$(VENV)/bin/python scripts/time_notebooks.py --budget-s 300

# For iteration: the unit tests only (no notebooks), in small mode.
test-fast: setup lint
	LABKIT_SMALL=1 $(VENV)/bin/python -m pytest -q -m "not slow" tests

strip: setup
	$(VENV)/bin/python scripts/check_notebooks.py --strip notebooks

# The browser test's tools (tests/test_browser.py): Debian's chromium and playwright.
browser: setup
	bash scripts/browser_setup.sh

# An offline classroom: every wheel this platform needs, and the model's, in one folder
# (WHEELHOUSE=dir to name it); copy it to each machine, then `WHEELHOUSE=dir make lab` there.
# (setup runs without WHEELHOUSE here: the folder is what this target writes.)
wheelhouse:
	env -u WHEELHOUSE bash scripts/setup.sh
	PYTHON=$(VENV)/bin/python bash scripts/wheelhouse.sh $(or $(WHEELHOUSE),wheelhouse)

bench: setup
	$(VENV)/bin/labkit bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
