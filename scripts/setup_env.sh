#!/usr/bin/env bash
# Creates the project environment: Debian's FEniCSx stack (apt-get, root only), a virtual
# environment on /usr/bin/python3 that sees it, the CPU build of torch, and this package (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="python3-dolfinx python3-dolfinx-mpc python3-h5py-mpi python3-gmsh python3-scipy \
python3-matplotlib python3-tqdm python3-pytest python3-venv python3-setuptools python3-pip openmpi-bin"
PROBE="import dolfinx, dolfinx_mpc, h5py, mpi4py, petsc4py, gmsh, scipy, matplotlib, tqdm, pytest"

if ! /usr/bin/python3 -c "$PROBE" 2>/dev/null; then
    if [ "$(id -u)" = "0" ]; then
        echo "setup: installing the Debian FEniCSx stack (apt-get) ..."
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq $APT_PACKAGES >/dev/null
    else
        echo "setup: FEniCSx (dolfinx 0.5+) is missing and this is not root, so apt-get cannot install it." >&2
        echo "setup: ask an administrator for: apt-get install $APT_PACKAGES" >&2
        echo "setup: or use conda-forge: conda create -n gpn -c conda-forge fenics-dolfinx dolfinx_mpc mpich h5py=*=mpi* gmsh scipy matplotlib tqdm pytest pytorch-cpu, then PYTHON=\$CONDA_PREFIX/bin/python make setup" >&2
        exit 1
    fi
fi

BASE_PYTHON=${PYTHON:-/usr/bin/python3}
if [ ! -x .venv/bin/python ]; then
    "$BASE_PYTHON" -m venv --system-site-packages .venv
fi
# torch==2.13.0 resolves to the local CPU wheel; a bare "torch" would pull CUDA packages.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q torch==2.13.0
.venv/bin/python -c "import optuna" 2>/dev/null || .venv/bin/pip install -q optuna
.venv/bin/pip install -q --no-deps --no-build-isolation -e .
echo "setup: environment ready in .venv"
