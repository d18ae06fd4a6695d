# labkit: two commands do everything on a fresh clone.
#   make lab    set up, then open JupyterLab on notebooks/   (make lab HEADLESS=1 on a server)
#   make test   set up, then run the whole suite in small mode (what CI runs)
#   make test-fast  the unit tests only, for iteration
#   make wheelhouse every wheel for an offline room; then `WHEELHOUSE=wheelhouse make lab` there
VENV ?= .venv
PORT ?= 8888
HEADLESS ?=
LAB_FLAGS = $(if $(HEADLESS),--no-browser --ip=$(or $(IP),127.0.0.1) --port=$(PORT),) \
	$(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test test-fast lint check-notebooks strip bench clean browser wheelhouse

setup:
	bash scripts/setup.sh

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_FLAGS)

lint: setup
	$(VENV)/bin/ruff check labkit tests notebooks scripts conftest.py
	$(VENV)/bin/ruff format --check labkit tests scripts conftest.py

check-notebooks: setup
	$(VENV)/bin/python scripts/check_notebooks.py notebooks

test: setup lint check-notebooks browser
	LABKIT_SMALL=1 $(VENV)/bin/python -m pytest --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=900 tests notebooks

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
