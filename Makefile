# `make demo` and `make test` set up .venv on a fresh machine (or when pyproject.toml or
# constraints.txt changed since the last install), then run. An existing .venv is updated in
# place, never re-created.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vitstem-installed
PYTEST_ARGS ?= -n 2

.PHONY: setup demo test bench wheel clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m vitstem demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m vitstem bench vit_base_patch16_224 --batch 1 8 --threads 1 2

# dist/vitstem-VERSION-py3-none-any.whl, built with the setuptools already in .venv (nothing downloaded).
wheel: $(STAMP)
	$(PY) -m pip wheel --no-deps --no-build-isolation --quiet -w dist .

clean:
	rm -rf build dist *.egg-info demo-output
