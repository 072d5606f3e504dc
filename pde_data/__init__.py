"""Finite-element forward models and dataset generation (dolfinx, mpi4py, h5py; never torch)."""
