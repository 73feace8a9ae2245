# The two commands: `make demo` and `make test`. Both set up .venv first when needed.
# Tests run in two xdist workers with one BLAS/OpenMP thread each (the machine has 2 cores).
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench clean

setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) -m neurohw demo $(DEMO_ARGS)

test: setup
	@bash tools/system_deps.sh
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadgroup -q -rs --durations=15 $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -n 2 -q -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
