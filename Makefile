# vdwgen developer entry points (GNU make).
#   make app    -> web app on http://localhost:$(PORT)
#   make test   -> the test suite
# Both create .venv on first use: torch 2.13.0 first, then the exact pins, then the
# project itself in editable mode without dependencies.

# python3.11 when the machine has it, else python3 (which must then be 3.11).
PY ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV = .venv
PORT ?= 8501
PYTEST_ARGS ?=
# Where the app keeps run-time data; exported only when not already set.
VDWGEN_DATA_DIR ?= ./var
export VDWGEN_DATA_DIR

STAMP = $(VENV)/.installed

.PHONY: venv app test dataset clean distclean

venv: $(STAMP)

$(STAMP): requirements-torch.txt requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install -r requirements-torch.txt
	$(VENV)/bin/python -m pip install -r requirements.txt
	$(VENV)/bin/python -m pip install --no-deps -e .
	touch $@

app: venv
	$(VENV)/bin/streamlit run webapp/app.py --server.headless true \
		--server.port $(PORT) --browser.gatherUsageStats false --server.enableStaticServing true

test: venv
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

dataset: venv
	$(VENV)/bin/vdwgen dataset build --workers 2

clean:
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info

distclean: clean
	rm -rf $(VENV)
