# The README's two commands: `make run` and `make test`. Everything they need is installed from here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: install run test lint bench-fanout bench-captions clean browser

install: $(STAMP)

# Reinstall only when the dependency list changes; a plain `make install` on a ready venv does nothing.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -c "from transcribe.model import ensure_default_model; ensure_default_model()"
	touch $(STAMP)

# Debian's chromium for the browser tests; Playwright never downloads a browser of its own here.
browser:
	@test -x $(CHROMIUM) || (command -v apt-get >/dev/null && \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-thai-tlwg) \
		>/dev/null || echo "chromium could not be installed: browser tests will be skipped")

run: install
	$(PY) server.py --demo

test: install browser
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench-fanout: install
	$(PY) bench/fanout.py

bench-captions: install
	$(PY) bench/captions.py ../shared/data/manifest.jsonl

clean:
	rm -rf $(VENV) var .pytest_cache
