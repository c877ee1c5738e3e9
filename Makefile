# vdwgen developer entry points (GNU make).
#   make app    -> web app on http://localhost:$(PORT)
#   make test   -> the test suite (also runs `make browser`)
#   make lint   -> ruff over the checkout (the rules are in pyproject.toml)
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

.PHONY: venv browser app test lint dataset clean distclean

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
		--server.port $(PORT) --browser.gatherUsageStats false --server.enableStaticServing true \
		--client.toolbarMode viewer

# Debian's chromium drives the real-browser test (tests/webapp/test_browser.py, through
# Playwright with executable_path=/usr/bin/chromium). Nothing to do when it is there; as
# root with apt-get, install it (no recommends: its dependency libfontconfig1 brings a font
# through fontconfig-config, and the test needs no X server, GPU or sound). Otherwise say
# how to install it: the browser test then skips, but fails under CI=true (.ci/run).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(CHROMIUM)" ] || command -v chromium >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser: installing Debian's chromium for tests/webapp/test_browser.py (apt-get)"; \
		if apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends chromium >/dev/null; then \
			echo "browser: installed $$($(CHROMIUM) --version 2>/dev/null)"; \
		else \
			echo "browser: apt-get could not install chromium, the browser test will skip" \
				"(and fail under CI=true)"; \
		fi; \
	else \
		echo "browser: no $(CHROMIUM), the browser test will skip; install it with" \
			"'sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium'"; \
	fi

test: venv browser
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# ruff is pinned in requirements.txt, so the venv has it.
lint: venv
	$(VENV)/bin/ruff check .

dataset: venv
	$(VENV)/bin/vdwgen dataset build --workers 2

clean:
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info

distclean: clean
	rm -rf $(VENV)
