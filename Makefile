# The README's two commands: `make run` and `make test`. Everything they need is installed from here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: install run documents test test-fast check lint bench-fanout bench-captions clean system-deps

install: $(STAMP)

# Reinstall only when the dependency list changes; a plain `make install` on a ready venv does nothing.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -c "from transcribe.model import ModelSettings, resolve_model_dir; print(resolve_model_dir(ModelSettings.from_env()))"
	touch $(STAMP)

# Debian's chromium (and Thai fonts) for the browser tests, since Playwright never downloads a browser of its own
# here; redis-server so the tests can start a private Redis where none answers on 6379; GStreamer's webrtcbin
# (with x264 and Opus, driven from the system python3 through python3-gi) for the real-encoder WHIP test.
GSTREAMER_PACKAGES := gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-nice gstreamer1.0-tools python3-gi gir1.2-gstreamer-1.0 \
	gir1.2-gst-plugins-bad-1.0
GSTREAMER_READY := $(shell gst-inspect-1.0 webrtcbin >/dev/null 2>&1 && gst-inspect-1.0 x264enc >/dev/null 2>&1 \
	&& gst-inspect-1.0 nicesink >/dev/null 2>&1 && /usr/bin/python3 -c "import gi" 2>/dev/null && echo yes)
APT_PACKAGES := $(if $(wildcard $(CHROMIUM)),,chromium fonts-thai-tlwg) $(if $(shell command -v redis-server),,redis-server) \
	$(if $(GSTREAMER_READY),,$(GSTREAMER_PACKAGES))
system-deps:
	@if [ -n "$(strip $(APT_PACKAGES))" ]; then \
		if command -v apt-get >/dev/null; then \
			echo "installing $(strip $(APT_PACKAGES))"; \
			(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES)) >/dev/null \
			|| echo "could not install $(strip $(APT_PACKAGES)): tests that need them will be skipped"; \
		else echo "no apt-get: install $(strip $(APT_PACKAGES)) yourself"; fi; \
	fi

run: install
	$(PY) server.py --demo

# Load (or refresh) the constitutions and Acts from ../shared/data/text into the archive at DATABASE_URL;
# idempotent: unchanged documents are skipped. A server whose collection is empty does this itself at start-up.
documents: install
	$(PY) -m archive.documents load

test: install system-deps check
	$(PY) -m pytest

# The gates that need no test run: lint, the folders' one-way layering, and the type check.
check: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

# Pure logic only (no model, browser or outside service): seconds, for the edit-test loop.
test-fast: install
	$(PY) -m pytest -m fast -q

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench-fanout: install
	$(PY) bench/fanout.py

bench-captions: install
	$(PY) bench/captions.py ../shared/data/manifest.jsonl

clean:
	rm -rf $(VENV) var .pytest_cache
