# The only set-up path for mlab. Every target sets up on first use and is quick afterwards.
#   make run    start (or resume) the course
#   make test   run the whole test suite
#   make lint   ruff + mypy on src/mlab
#   make bench  side-by-side benchmarks against the real thing
#   make docs   build the course web site into site/ (open site/index.html)

PYTHON ?= python3.11
VENV   ?= .venv
# notebook: JupyterLab, a kernel and jupytext, for the notebook route (`mlab start DAY --notebook`).
# docs: MkDocs and MathJax, for the course web site (`make docs`, `mlab read DAY --web`).
# train: gin-config and tqdm, for the training loop (`mlab train`, w3d1 on).
EXTRAS ?= dev,nlp,notebook,docs,train,rl
# Where torch comes from. Empty: PyPI, whose torch for Linux on x86-64 is the CUDA build and
# brings NVIDIA's CUDA libraries (several GB) with it, GPU or not. Without an NVIDIA GPU, name
# PyTorch's CPU-only index instead (a 190 MB wheel), on a fresh set-up (`make clean` first):
#   make run TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
BIN    := $(VENV)/bin
comma  := ,
# One stamp per set of extras: asking for other extras re-installs.
STAMP  := $(VENV)/.mlab-installed-$(subst $(comma),-,$(EXTRAS))
# pytest workers: one per core, as CI has 2.
JOBS   ?= auto

.PHONY: setup run test lint bench docs studies clean

setup: $(STAMP)

# Re-installs only when the project's metadata changes (or EXTRAS does).
$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "mlab needs Python 3.11 ($(PYTHON) was not found). Install it or run 'make PYTHON=/path/to/python3.11'."; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# torch first, on its own, so that TORCH_INDEX (above) decides which build it is; the pin
	@# in pyproject.toml then keeps that build.
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	@echo "$(EXTRAS)" > $(STAMP)

run: setup
	$(BIN)/mlab start

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n $(JOBS) -q

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src/mlab

bench: setup
	$(BIN)/python -m pip install --quiet "rq==3.0.0"  # the bench extra: w3d2 compares with RQ
	$(BIN)/python -m benchmarks

# w3d4's studies, each a search on w3d2's job queue (tens of minutes each on a CPU; a rerun
# trains only the runs not yet finished). `make studies STUDIES=gpt_size` picks some.
STUDIES ?= gpt_size gpt_data gpt_dropout gpt_weight_decay gpt_batch \
	fashion_early_stopping fashion_augmentation fashion_label_smoothing fashion_weight_decay \
	fashion_early_stopping_overfit
studies: setup
	for s in $(STUDIES); do OMP_NUM_THREADS=1 nice -n 10 $(BIN)/mlab study $$s --figure docs/images/w3d4_$$s.png || exit 1; done

# Fails on any warning (a broken link, a missing page). Works from the files: no server.
docs: setup
	$(BIN)/mlab docs --out site

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info
