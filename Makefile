# hit_nb entry points. The first `make` creates .venv and installs the pinned environment (constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# papermill notebooks run with parameters by tests/ and by the targets below, not by nbdev_test
NB_SKIP = '^(train|train_ensemble|train_classifier|evaluate)\.ipynb$$'

.PHONY: help venv demo figures sweep test test-slow nbtest pytest export check-sync clean-nbs outputs bench bench-sweep

# the demo: the paper's pipeline offline on the bundled digits, sized for a 2-core CPU (measured: 22.5 minutes, 10 of
# them the atlas's 21x21 plane; the goal of <= 15 is missed)
DEMO         ?= runs/demo
DEMO_EPOCHS  ?= 16
DEMO_SAMPLES ?= 2000
# the rate atlas: 2.5x a grid point's epochs; at 1.15x the step time (bench/atlas.py) that is 2.9x one point's compute
ATLAS_EPOCHS ?= $(shell echo $$(( 5 * $(DEMO_EPOCHS) / 2 )))
# make figures: which results table(s), where the figures go, a file-name prefix (e.g. svhn_ghvae_)
RESULTS ?= $(DEMO)/sweep/results.csv
TARGETS ?= $(DEMO)/targets/results.csv
ATLAS   ?= $(DEMO)/atlas/plane/results.csv
FIGDIR  ?= figures
PREFIX  ?=
# make sweep: a named grid at paper scale on every local GPU (GRID=paper: 441 runs, ~2 GPU-hours each); CLUSTER=slurm
# (or pbs) submits the runs as batch jobs from a login node, with the job's settings in SWEEP_OPTS, e.g.
# make sweep CLUSTER=slurm SWEEP_OPTS='--partition gpu --account myproject --walltime 12:00:00'
GRID    ?= paper
DATASET ?= svhn
MODEL   ?= ghvae
ROOT    ?=
CLUSTER ?=
SWEEP_OPTS ?=

help:
	@echo "make demo   - train a two-layer HVAE on the bundled offline digits (creates .venv on first use)"
	@echo "make test   - library notebook tests (nbdev_test) + integration tests (pytest)"
	@echo "make bench  - training-step speed benchmark against a reference-style step"
	@echo "make sweep GRID=paper DATASET=svhn MODEL=ghvae - train + evaluate a beta grid (hit_sweep; GPUs used when present)"
	@echo "make sweep ... CLUSTER=slurm SWEEP_OPTS='--partition gpu' - the same grid in SLURM (or pbs) batch jobs"
	@echo "make bench-sweep - sweep throughput (runs/hour) on the demo grid against the reference's way and hit_nb in a loop"

$(STAMP): setup.py settings.ini constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -c constraints.txt -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	@start=$$(date +%s); \
	OMP_NUM_THREADS=1 $(BIN)/hit_sweep --grid demo --dataset mnist5k --model ghvae --sweep_dir $(DEMO)/sweep \
	    --epochs $(DEMO_EPOCHS) --n_samples $(DEMO_SAMPLES) --workers 2 --threads 1 && \
	OMP_NUM_THREADS=1 $(BIN)/hit_target_sweep --targets 2:5,5:15 --dataset mnist5k --sweep_dir $(DEMO)/targets \
	    --n_samples $(DEMO_SAMPLES) --workers 2 --threads 1 && \
	echo "rate atlas: one beta-conditioned model for the box, $(ATLAS_EPOCHS) epochs, then the paper's 21x21 points" && \
	OMP_NUM_THREADS=1 $(BIN)/hit_train --atlas --dataset mnist5k --epochs $(ATLAS_EPOCHS) --threads 1 \
	    --out_dir $(DEMO)/atlas > /dev/null && \
	OMP_NUM_THREADS=1 $(BIN)/papermill -k python3 nbs/evaluate.ipynb $(DEMO)/atlas/evaluate.ipynb \
	    -p run_dir $(DEMO)/atlas -p n_samples $(DEMO_SAMPLES) -p targets '[[5, 15], [2, 40]]' \
	    -p plane paper -p workers 2 && \
	$(MAKE) --no-print-directory figures RESULTS=$(DEMO)/sweep/results.csv TARGETS=$(DEMO)/targets/results.csv \
	    ATLAS=$(DEMO)/atlas/plane/results.csv && \
	echo "demo done in $$(( $$(date +%s) - start )) s: runs in $(DEMO)/, figures in $(FIGDIR)/"

# every figure notebook on RESULTS, the rate-targeting figures when TARGETS exists, the atlas comparison when ATLAS
# exists (hit_nb.figures.render_all)
figures: $(STAMP)
	$(BIN)/python -c "import os; from hit_nb.figures import render_all; t, a = '$(TARGETS)', '$(ATLAS)'; \
	    render_all('$(RESULTS)', '$(FIGDIR)', prefix='$(PREFIX)', workers=2, targets=t if os.path.isfile(t) else None, \
	               atlas=a if os.path.isfile(a) else None)"

sweep: $(STAMP)
	$(BIN)/hit_sweep --grid $(GRID) --dataset $(DATASET) --model $(MODEL) $(if $(CLUSTER),--$(CLUSTER),--gpus auto) \
	    $(if $(ROOT),--root $(ROOT),) $(SWEEP_OPTS)

test: $(STAMP) nbtest pytest

nbtest: $(STAMP)
	$(BIN)/nbdev_test --n_workers 2 --skip_file_re $(NB_SKIP) --skip_folder_re '^figures$$' --timing

# both cores: one test file per worker (a file's module fixtures are built once per run); the longest files first, so
# that neither worker is left with one of them at the end
LONG_TESTS = tests/test_sweep.py tests/test_wheel.py tests/test_ensemble.py tests/test_atlas.py
pytest: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n 2 --dist loadfile --durations=40 $(LONG_TESTS) \
	    $(filter-out $(LONG_TESTS),$(sort $(wildcard tests/test_*.py)))

test-slow: $(STAMP)
	$(BIN)/nbdev_test --n_workers 2 --flags slow --skip_file_re $(NB_SKIP) --skip_folder_re '^figures$$'

export: $(STAMP)
	$(BIN)/nbdev_export

# the committed library must be exactly what the notebooks export
check-sync: export
	git diff --exit-code -- hit_nb

clean-nbs: $(STAMP)
	$(BIN)/nbdev_clean

# the library notebooks are committed with the outputs of their examples and plots (they are the documentation):
# execute them again as nbdev_test does (cells flagged slow/cuda skipped) and clean them; NB=nbs/04_bounds.ipynb for one
NB ?= $(wildcard nbs/[0-9]*.ipynb)
outputs: $(STAMP)
	$(BIN)/python -c "import sys; from hit_nb.notebooks import refresh_outputs; [refresh_outputs(p) for p in sys.argv[1:]]" $(NB)
	$(BIN)/nbdev_clean

bench: $(STAMP)
	$(BIN)/python bench/train_step.py

# sweep throughput on the demo grid (25 runs, BENCH_EPOCHS each, the demo's IS samples): run_sweep (2 workers x 1 thread,
# papermill, kept kernels) against the same runs one after another in one process, trained the reference's way / with
# hit_nb, after measuring what 2 processes can do on this machine at all (bench/throughput.py; ~15 min at 6 epochs)
BENCH_EPOCHS ?= 6
bench-sweep: $(STAMP)
	env -u OMP_NUM_THREADS $(BIN)/python bench/throughput.py --epochs $(BENCH_EPOCHS) --n_samples $(DEMO_SAMPLES)
