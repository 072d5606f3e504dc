#!/usr/bin/env bash
# Creates the project environment: Debian's FEniCSx stack (apt-get, root only), a virtual
# environment on /usr/bin/python3 that sees it, torch (Debian's where new enough, else pip's CPU
# build where no CUDA device is present), and this package (editable).
#   scripts/setup_env.sh            everything
#   scripts/setup_env.sh --system   only the apt packages (root), e.g. when building a chroot
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/apt_packages.sh

PROBE="import dolfinx, dolfinx_mpc, h5py, mpi4py, petsc4py, gmsh, scipy, matplotlib, tqdm, pytest"
TORCH_PROBE="import sys, torch; v = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2]); \
sys.exit(v < tuple(int(p) for p in '$TORCH_MIN'.split('.')))"
CPU_INDEX=https://download.pytorch.org/whl/cpu

apt_torch_is_new_enough() {   # Debian's python3-torch candidate is at least TORCH_MIN
    local v
    v=$(apt-cache policy python3-torch 2>/dev/null | awk '/Candidate:/ {print $2}')
    [ -n "$v" ] && [ "$v" != "(none)" ] && dpkg --compare-versions "$v" ge "$TORCH_MIN"
}

install_system_packages() {
    if [ "$(id -u)" != "0" ]; then
        echo "setup: FEniCSx (dolfinx 0.5+) is missing and this is not root, so apt-get cannot install it." >&2
        echo "setup: ask an administrator for: apt-get install $APT_PACKAGES" >&2
        echo "setup: or use conda-forge (README, 'Supported stacks'), then PYTHON=\$CONDA_PREFIX/bin/python make setup" >&2
        exit 1
    fi
    echo "setup: installing the Debian FEniCSx stack (apt-get) ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    local packages=$APT_PACKAGES
    apt_torch_is_new_enough && packages="$packages $APT_TORCH_PACKAGES"
    apt-get install -y -qq $packages
}

has_cuda_device() { [ -e /dev/nvidiactl ] || nvidia-smi -L >/dev/null 2>&1; }

install_torch() {   # pip's CPU build where no CUDA device is present, by PyTorch's index when reachable
    if ! has_cuda_device && .venv/bin/python -c "import urllib.request as u; u.urlopen('$CPU_INDEX/', timeout=10)" 2>/dev/null; then
        .venv/bin/pip install -q --index-url "$CPU_INDEX" "torch==$TORCH_PIP" && return
    fi
    .venv/bin/pip install -q "torch==$TORCH_PIP"
}

if [ "${1:-}" = "--system" ]; then
    install_system_packages
    exit 0
fi
BASE_PYTHON=${PYTHON:-/usr/bin/python3}
if ! "$BASE_PYTHON" -c "$PROBE" 2>/dev/null; then
    if [ -n "${PYTHON:-}" ]; then
        echo "error: $PYTHON lacks part of the FEniCSx stack ($PROBE failed)" >&2
        exit 1
    fi
    install_system_packages
fi
if [ ! -x .venv/bin/python ]; then
    "$BASE_PYTHON" -m venv --system-site-packages .venv
fi
.venv/bin/python -c "$TORCH_PROBE" 2>/dev/null || install_torch
.venv/bin/python -c "import optuna" 2>/dev/null || .venv/bin/pip install -q optuna
.venv/bin/pip install -q --no-deps --no-build-isolation -e .
echo "setup: environment ready in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
