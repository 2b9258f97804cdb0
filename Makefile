# The two commands: `make demo` (install + main job on the bundled S&P 500) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 2

.PHONY: install demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -q -c constraints-cpu.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints-cpu.txt -e '.[test]'

demo: install
	$(BIN)/findiffusion demo --out demo_output

test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) demo_output .pytest_cache
