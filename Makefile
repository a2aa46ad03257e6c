# Every environment goes through uv, bootstrapped with pip when missing.
# `make run` runs the pipeline on the embedded simulated detector,
# `make test` runs the test suite.
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
LAW := $(UV) run --frozen law
export UV_COMPILE_BYTECODE := 1

.PHONY: uv sync run test lint index clean-run benchmarks

# uv from pip: into the active environment, else the user site (with PEP 668
# refusing both on a Debian system Python, past its marker)
uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 \
	  || $(PYTHON) -m pip install --quiet uv 2>/dev/null \
	  || $(PYTHON) -m pip install --quiet --user uv 2>/dev/null \
	  || $(PYTHON) -m pip install --quiet --user --break-system-packages uv

sync: uv
	$(UV) sync --frozen --all-packages

index: sync
	$(LAW) index --verbose

run: index
	$(LAW) run deepclean.tasks.Pipeline

test: sync
	$(UV) run --frozen pytest -n 2 --durations=15

lint: sync
	$(UV) run --frozen pre-commit run -c toolbox/pre-commit-config.yaml --all-files

benchmarks: sync
	@for b in benchmarks/*.py; do echo "== $$b"; $(UV) run --frozen python $$b || exit 1; done
