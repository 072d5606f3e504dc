# The Debian packages of the project (sourced by scripts/setup_env.sh; the chroot cache of
# scripts/debian_chroot.sh is keyed on this file, so changing a list rebuilds the cached chroots).
APT_PACKAGES="python3-dolfinx python3-dolfinx-mpc python3-h5py-mpi python3-gmsh python3-scipy \
python3-matplotlib python3-tqdm python3-pytest python3-venv python3-setuptools python3-pip openmpi-bin"
# Debian's torch is used where it is at least TORCH_MIN (Debian 13: 2.6; Debian 12's 1.13 is not):
# 2.6 is the oldest torch the suite was run on. Elsewhere pip installs TORCH_PIP (CPU build, see setup_env.sh).
TORCH_MIN=2.6
TORCH_PIP=2.13.0
APT_TORCH_PACKAGES="python3-torch python3-optuna"
