# hit_nb entry points. The first `make` creates .venv and installs the pinned environment (constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# papermill notebooks run with parameters by tests/ and by the targets below, not by nbdev_test
NB_SKIP = '^(train|train_classifier|evaluate)\.ipynb$$'

.PHONY: help venv demo test test-slow nbtest pytest export check-sync clean-nbs bench

help:
	@echo "make demo   - train a two-layer HVAE on the bundled offline digits (creates .venv on first use)"
	@echo "make test   - library notebook tests (nbdev_test) + integration tests (pytest)"
	@echo "make bench  - training-step speed benchmark against a reference-style step"

$(STAMP): setup.py settings.ini constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -c constraints.txt -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	mkdir -p runs/demo
	$(BIN)/papermill nbs/train.ipynb runs/demo/train.ipynb -p out_dir runs/demo/mnist5k-ghvae-b2_1-b1_1
	@echo "run directory: runs/demo/mnist5k-ghvae-b2_1-b1_1 ; executed notebook: runs/demo/train.ipynb"

test: $(STAMP) nbtest pytest

nbtest: $(STAMP)
	$(BIN)/nbdev_test --n_workers 2 --skip_file_re $(NB_SKIP) --skip_folder_re '^figures$$'

pytest: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/pytest -q tests

test-slow: $(STAMP)
	$(BIN)/nbdev_test --n_workers 2 --flags slow --skip_file_re $(NB_SKIP) --skip_folder_re '^figures$$'

export: $(STAMP)
	$(BIN)/nbdev_export

# the committed library must be exactly what the notebooks export
check-sync: export
	git diff --exit-code -- hit_nb

clean-nbs: $(STAMP)
	$(BIN)/nbdev_clean

bench: $(STAMP)
	$(BIN)/python bench/train_step.py
