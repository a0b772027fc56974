# `make demo` and `make test` set up .venv on a fresh machine (or when pyproject.toml or
# constraints.txt changed since the last install), then run. An existing .venv is updated in
# place, never re-created. The edge engines also need web/node_modules (npm ci from the lockfile,
# again only when web/package-lock.json changed) and Debian's chromium for the browser test
# (installed with apt-get when missing and running as root; otherwise the set-up says so and stops).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vitstem-installed
PYTEST_ARGS ?= -n 2

NODE_STAMP := web/node_modules/.vitstem-installed

.PHONY: setup browser demo test test-fast bench wheel clean

setup: $(STAMP) $(NODE_STAMP) browser

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,test]'
	@touch $(STAMP)

$(NODE_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	  else echo "chromium is missing: run 'apt-get install chromium' as root (the browser test needs it)" >&2; exit 1; fi; }

demo: $(STAMP)
	$(PY) -m vitstem demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything but the tests marked slow (full-size presets, sweeps, edge engines, whole models, subprocess CLIs).
test-fast: setup
	$(PY) -m pytest $(PYTEST_ARGS) -m "not slow"

bench: $(STAMP)
	$(PY) -m vitstem bench vit_base_patch16_224 --batch 1 8 --threads 1 2

# dist/vitstem-VERSION-py3-none-any.whl, built with the setuptools already in .venv (nothing downloaded).
wheel: $(STAMP)
	$(PY) -m pip wheel --no-deps --no-build-isolation --quiet -w dist .

clean:
	rm -rf build dist *.egg-info demo-output web/node_modules
