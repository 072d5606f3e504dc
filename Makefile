# Growing neural networks for PDE inverse problems.
#   make figures            smoke-scale pipeline: data -> results -> figures (the main command)
#   make test               the test suite (fast tests; `make test-slow` runs everything but SLURM's)
#   make test-slurm         the SLURM batch scripts on a one-node cluster started for the test
#   make heat-paper         heat as the sources ran it: paper-preset sweep (HEAT_SEEDS) on generated
#                           data and layerwise on their imported samples (make import-heat-sources)
# Options: SCALE=smoke|paper|full  NP=<MPI processes>  SEEDS="0 1 2"  DEVICE=cpu|cuda
#          (full: the paper datasets, no budget cuts, every seed; prints its projected time first)
#          SEEDS_<problem>="0" METHODS_<problem>="baseline ..."  (one problem's seeds / methods; default
#          SEEDS and every method), e.g. SEEDS_mnist=0 for the paper-scale MNIST runs
SCALE ?= smoke
NP ?= 1
PY := .venv/bin/python
MPIRUN := $(if $(filter 1,$(NP)),,scripts/mpirun -n $(NP))

DEVICE ?= cpu
DATA_PRESET := $(if $(filter full,$(SCALE)),paper,$(SCALE))
DATA_DIR := data/$(DATA_PRESET)
# the PDE problems: the names in pde_data/registry.py (a new problem needs no edit here)
PDE_PROBLEMS := $(shell sed -n 's/^ *"\([a-z0-9_]*\)": "pde_data\..*/\1/p' pde_data/registry.py)
# MNIST and Navier–Stokes on images and grids for a residual CNN and a vision transformer (problems/grids.py)
MNIST_PROBLEMS := mnist mnist_cnn mnist_vit
PROBLEMS := $(PDE_PROBLEMS) boston $(MNIST_PROBLEMS) navier_stokes_cnn
# their compared methods beyond the smoke scale (issue 13: TD, SensLI, random insertion, Net2DeeperNet and
# the fixed final architecture; the smoke scale runs every method available on them)
GRID_METHODS := $(if $(filter smoke,$(SCALE)),,topological sensitivity random net2deeper baseline)
METHODS_mnist_cnn ?= $(GRID_METHODS)
METHODS_mnist_vit ?= $(GRID_METHODS)
METHODS_navier_stokes_cnn ?= $(GRID_METHODS)
SEEDS ?= $(if $(filter smoke,$(SCALE)),0 1,0 1 2)
RUNS_DIR := results/runs/$(SCALE)
FIGURES_DIR := $(if $(filter paper,$(SCALE)),results,results/$(SCALE))
# MNIST: data/mnist, else the team's shared copy, else downloaded into data/mnist (checksums verified)
MNIST_DIR ?= $(if $(wildcard data/mnist/*.gz),data/mnist,$(if $(wildcard ../shared/datasets/mnist/*.gz),../shared/datasets/mnist,data/mnist))
export MNIST_DIR
TRAIN_CODE := $(wildcard growth/*.py problems/methods/*.py) $(filter-out problems/figures.py problems/transfer_figures.py,$(wildcard problems/*.py))
# transfer pairs (python -m problems transfer-sweep): source = the problem's dataset, target = the same
# generator with one ordinary setting changed and fresh samples (base seed 1); MNIST: digits 0-4 -> 5-9
# (no dataset). Smoke: seed 0 only
TRANSFER_PDE := wind navier_stokes
TRANSFER_TARGET_wind := --seed 1 terrain_seed=1
TRANSFER_TARGET_navier_stokes := --seed 1 viscosity=5e-3 $(if $(filter paper,$(SCALE)),--n-samples 2000)
TRANSFER_SEEDS := $(if $(filter smoke,$(SCALE)),0,$(SEEDS))
TRANSFER_RUNS := $(foreach p,$(TRANSFER_PDE) mnist,$(RUNS_DIR)/transfer/$(p)/sweep.done)

.PHONY: setup test test-slow test-slurm data results estimate transfer figures bench bench-smoke clean
.DEFAULT_GOAL := figures

setup: .venv/.setup-done
.venv/.setup-done: scripts/setup_env.sh scripts/apt_packages.sh pyproject.toml
	bash scripts/setup_env.sh
	touch $@

test: setup
	$(PY) -m pytest -m "not slow and not slurm" -q

test-slow: setup
	$(PY) -m pytest -m "not slurm" -q

# the batch scripts of results/slurm/ on a real one-node SLURM that tests/slurm/cluster.sh starts and
# stops (as root it installs slurm-wlm and munge when missing): a few minutes on 2 cores
test-slurm: setup
	bash tests/slurm/cluster.sh $(PY) -m pytest tests/slurm -m slurm -q

data: setup $(foreach p,$(PDE_PROBLEMS),$(DATA_DIR)/$(p).h5)

# a dataset is remade when its forward model (and so its presets) changed; --overwrite keeps the
# old file until the new one is complete, and resumes an interrupted run of the same settings
$(DATA_DIR)/%.h5: pde_data/%.py | setup
	@mkdir -p $(DATA_DIR)
	$(MPIRUN) $(PY) -m pde_data generate $* --preset $(DATA_PRESET) --out $@ --overwrite

# one sweep per problem; a re-run redoes only the runs whose dataset, settings or code changed
# (the sweep skips runs whose metrics.json was made with the same configuration)
results: setup $(if $(filter full,$(SCALE)),estimate) $(foreach p,$(PROBLEMS),$(RUNS_DIR)/$(p)/sweep.done)

# the projected time of the sweep from measured per-epoch costs (run before SCALE=full's sweeps)
estimate: setup data | $(MNIST_DIR)/train-images-idx3-ubyte.gz
	$(PY) -m problems estimate --preset $(SCALE) --seeds $(SEEDS) --data-dir $(DATA_DIR) --ranks $(NP) --device $(DEVICE)

SWEEP_COMMAND = $(MPIRUN) $(PY) -m problems sweep --preset $(SCALE) --problems $* --seeds $(or $(SEEDS_$*),$(SEEDS)) $(if $(METHODS_$*),--methods $(METHODS_$*)) --data-dir $(DATA_DIR) --out-root $(RUNS_DIR) --device $(DEVICE)
define SWEEP
$(SWEEP_COMMAND)
touch $@
endef
$(foreach p,$(PDE_PROBLEMS),$(RUNS_DIR)/$(p)/sweep.done): $(RUNS_DIR)/%/sweep.done: $(DATA_DIR)/%.h5 $(TRAIN_CODE) | setup
	$(SWEEP)
$(RUNS_DIR)/boston/sweep.done: $(RUNS_DIR)/%/sweep.done: $(TRAIN_CODE) | setup
	$(SWEEP)
# the field-to-field CNN reads the navier_stokes dataset
$(RUNS_DIR)/navier_stokes_cnn/sweep.done: $(RUNS_DIR)/%/sweep.done: $(DATA_DIR)/navier_stokes.h5 $(TRAIN_CODE) | setup
	$(SWEEP)
# MNIST needs its four files (MNIST_DIR, else downloaded into data/mnist): without them and without
# network the sweep is skipped in one line, every other problem is still run and drawn, and
# `make figures` then ends with one line and a non-zero exit (MNIST_MISSING below)
$(foreach p,$(MNIST_PROBLEMS),$(RUNS_DIR)/$(p)/sweep.done): $(RUNS_DIR)/%/sweep.done: $(TRAIN_CODE) | setup
	@if [ -f $(MNIST_DIR)/train-images-idx3-ubyte.gz ] || $(PY) -m problems download-mnist --out $(MNIST_DIR); then \
	  echo '$(SWEEP_COMMAND)' && $(SWEEP_COMMAND) && touch $@; \
	else echo "$*: skipped (no MNIST files); the other problems go on" >&2; fi
data/mnist/train-images-idx3-ubyte.gz: | setup
	$(PY) -m problems download-mnist --out data/mnist
MNIST_MISSING := error: MNIST was skipped (no files in $(MNIST_DIR) and no download): put the four MNIST .gz files there (or set MNIST_DIR), or run `python -m problems download-mnist` where there is network, then `make figures` again

$(DATA_DIR)/transfer/%.h5: pde_data/%.py | setup
	@mkdir -p $(DATA_DIR)/transfer
	$(MPIRUN) $(PY) -m pde_data generate $* --preset $(DATA_PRESET) --out $@ --overwrite $(TRANSFER_TARGET_$*)

transfer: setup $(TRANSFER_RUNS)

TRANSFER_COMMAND = $(MPIRUN) $(PY) -m problems transfer-sweep $* --preset $(SCALE) --seeds $(or $(SEEDS_transfer_$*),$(TRANSFER_SEEDS)) $(if $(filter mnist,$*),,--source-data $(DATA_DIR)/$*.h5 --target-data $(DATA_DIR)/transfer/$*.h5) --out-root $(RUNS_DIR)/transfer --device $(DEVICE)
define TRANSFER_SWEEP
$(TRANSFER_COMMAND)
touch $@
endef
$(foreach p,$(TRANSFER_PDE),$(RUNS_DIR)/transfer/$(p)/sweep.done): $(RUNS_DIR)/transfer/%/sweep.done: $(DATA_DIR)/%.h5 $(DATA_DIR)/transfer/%.h5 $(TRAIN_CODE) | setup
	$(TRANSFER_SWEEP)
# MNIST's transfer pair: skipped in one line without the MNIST files, as its sweep above
$(RUNS_DIR)/transfer/mnist/sweep.done: $(RUNS_DIR)/transfer/%/sweep.done: $(TRAIN_CODE) | setup $(RUNS_DIR)/mnist/sweep.done
	@if [ -f $(MNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo '$(TRANSFER_COMMAND)' && $(TRANSFER_COMMAND) && touch $@; \
	else echo "mnist transfer: skipped (no MNIST files)" >&2; fi

figures: setup $(FIGURES_DIR)/summary.md
	@[ -f $(RUNS_DIR)/mnist/sweep.done ] || { echo '$(MNIST_MISSING)' >&2; exit 1; }

$(FIGURES_DIR)/summary.md: $(foreach p,$(PROBLEMS),$(RUNS_DIR)/$(p)/sweep.done) $(TRANSFER_RUNS) problems/figures.py problems/transfer_figures.py
	$(PY) -m problems figures --preset $(SCALE) --runs $(RUNS_DIR) --out $(FIGURES_DIR)

# heat as the sources ran it (issue 15): their own samples imported (pool noise drawn again as their
# notebook did), and the paper preset's published methods on generated data (HEAT_SEEDS) plus layerwise
# on the imported samples (runs under results/runs/paper/sources, read by the heat report); then
# `make figures SCALE=paper` draws them (problems/heat_report.py)
HEAT_SOURCES := data/sources/heat.h5
HEAT_SEEDS ?= 0 1 2 3 4 5 6 7 8 9
HEAT_METHODS ?= topological random forward_thinking baseline layerwise
.PHONY: import-heat-sources heat-paper
import-heat-sources: $(HEAT_SOURCES)
$(HEAT_SOURCES): pde_data/heat_import.py pde_data/heat_sources.py | setup
	@mkdir -p $(dir $@)
	$(PY) -m pde_data import-heat-sources --out $@ --overwrite --pool-noise regenerated
data/paper/heat.h5: pde_data/heat.py | setup
	@mkdir -p $(dir $@)
	$(MPIRUN) $(PY) -m pde_data generate heat --preset paper --out $@ --overwrite
heat-paper: setup data/paper/heat.h5 $(HEAT_SOURCES)
	$(MPIRUN) $(PY) -m problems sweep --preset paper --problems heat --seeds $(HEAT_SEEDS) --methods $(HEAT_METHODS) --data-dir data/paper --out-root results/runs/paper --device $(DEVICE)
	$(MPIRUN) $(PY) -m problems sweep --preset paper --problems heat --seeds $(HEAT_SEEDS) --methods layerwise --data-dir data/sources --out-root results/runs/paper/sources --device $(DEVICE)

bench: setup
	$(PY) -m bench --scale full

bench-smoke: setup
	$(PY) -m bench --scale smoke --out results/runs

clean:
	rm -rf data results/runs

# make test and the smoke make figures in a clean debootstrap chroot of another Debian release
# (root; the chroot is built once, ~10 min, and cached: scripts/debian_chroot.sh)
.PHONY: test-debian13 test-debian-unstable
test-debian13:
	bash scripts/debian_chroot.sh trixie
test-debian-unstable:
	bash scripts/debian_chroot.sh sid
