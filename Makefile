# Growing neural networks for PDE inverse problems.
#   make figures            smoke-scale pipeline: data -> results -> figures (the main command)
#   make test               the test suite (fast tests; `make test-slow` runs everything)
# Options: SCALE=smoke|paper  NP=<MPI processes>  SEEDS="0 1 2"
SCALE ?= smoke
NP ?= 1
PY := .venv/bin/python
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_rmaps_base_oversubscribe := 1
MPIRUN := $(if $(filter 1,$(NP)),,mpirun -n $(NP))

DATA_DIR := data/$(SCALE)
PDE_PROBLEMS := heat

.PHONY: setup test test-slow data results figures bench bench-smoke clean
.DEFAULT_GOAL := figures

setup: .venv/.setup-done
.venv/.setup-done: scripts/setup_env.sh pyproject.toml
	bash scripts/setup_env.sh
	touch $@

test: setup
	$(PY) -m pytest -m "not slow" -q

test-slow: setup
	$(PY) -m pytest -q

data: setup $(foreach p,$(PDE_PROBLEMS),$(DATA_DIR)/$(p).h5)

$(DATA_DIR)/%.h5: | setup
	@mkdir -p $(DATA_DIR)
	$(MPIRUN) $(PY) -m pde_data generate $* --preset $(SCALE) --out $@

bench: setup
	$(PY) -m bench --scale full

bench-smoke: setup
	$(PY) -m bench --scale smoke --out results/runs

clean:
	rm -rf data results/runs
