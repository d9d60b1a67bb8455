# alpharl-trainer: every entry point a user or CI needs. `make` = install + the main job; `make test` = install + tests.
PY ?= python3
PIP ?= $(PY) -m pip
export PYTHONUNBUFFERED := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: all install install-deepspeed install-vllm run tiny-model test test-all test-vllm lint bench reproduce clean

all: install run

# torch==2.13.0 resolves to the CPU wheel on this machine; on a GPU machine install a CUDA torch 2.13.0 first.
install:
	$(PIP) install --quiet -e ".[test,deepspeed]"

install-vllm:
	$(PIP) uninstall -y torchvision torchaudio torchcodec || true
	$(PIP) install --quiet -e ".[vllm]"

tiny-model:
	$(PY) -m alpharl_trainer make-tiny

# The main job: a tiny GRPO run with AlphaRL (snapshots, forecast, acceptance, hot-swap) on CPU.
run: tiny-model
	$(PY) -m alpharl_trainer train recipes/tiny/grpo.yaml

test: install
	$(PY) -m pytest -m "not slow and not vllm" -q

test-all: install
	$(PY) -m pytest -m "not vllm" -q

test-vllm: install-vllm
	$(PY) -m pytest -m vllm -q

lint:
	$(PY) -m ruff check alpharl_trainer tests benchmarks
	$(PY) -m ruff format --check alpharl_trainer tests benchmarks

bench:
	$(PY) benchmarks/run_all.py

reproduce: tiny-model
	$(PY) -m alpharl_trainer reproduce recipes/reproduce/default.yaml

clean:
	rm -rf .cache build *.egg-info .pytest_cache
