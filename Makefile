# Two commands on a fresh machine: `make demo` and `make test`. Each makes its own .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: $(BIN)/activate setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,distributed]'
	touch $@

# The main job: one GRU for the five bundled clips (about 4 minutes on a 2-core CPU).
demo: $(VENV)/.runtime
	$(BIN)/specnir fit --arch gru --steps 500 --eval-every 100 -o runs/demo

# Every test (about 7 minutes on 2 cores); CI runs this.
test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

# The fast lane: everything but the tests marked slow, under a minute.
test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(VENV)/.dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) out
