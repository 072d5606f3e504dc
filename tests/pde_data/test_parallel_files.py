"""Parallel HDF5 writing with more processes than cores (issue 6): `mpirun -n 4 --oversubscribe`
writes, for every PDE problem, the file one process writes, bit for bit. The sample counts leave
the ranks unequal shares, and heat's cheap samples make the driver batch several per round.
Mesh-parallel groups (4 ranks = 2 groups of 2, wind) agree with one process to solver tolerance.
(tests/pde_data/test_generate.py covers 2 and 3 processes with the toy model and heat.)
"""
import h5py
import numpy as np
import pytest

from tests.conftest import file_content, run_cli

CASES = {  # problem -> settings of a tiny dataset
    "heat": ["--n-samples", "50", "mesh_n=6", "prior=bilaplacian", "sensors=random"],
    "navier_stokes": ["--n-samples", "7", "mesh_n=8", "grid_n=4"],
    "wind": ["--n-samples", "7", "mesh_shape=[6,6,4]", "grid_shape=[4,4,2]"],
}


def _generate(tmp_path, problem, name, nprocs=None, extra=()):
    out = tmp_path / f"{problem}-{name}.h5"
    args = ["generate", problem, "--preset", "smoke", "--out", out, *CASES[problem], *extra]
    result = run_cli(args, nprocs=nprocs, toy=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.mpi
@pytest.mark.parametrize("problem", sorted(CASES))
def test_four_oversubscribed_processes_write_the_one_process_file(tmp_path, problem):
    one = _generate(tmp_path, problem, "one")
    four = _generate(tmp_path, problem, "four", nprocs=4)
    assert file_content(four) == file_content(one)


@pytest.mark.mpi
def test_wind_two_mesh_parallel_groups_of_two_agree_with_one_process(tmp_path):
    one = _generate(tmp_path, "wind", "one")
    groups = _generate(tmp_path, "wind", "groups", nprocs=4, extra=["--procs-per-sample", "2"])
    with h5py.File(one) as serial, h5py.File(groups) as parallel:
        assert np.array_equal(parallel["status"][()], serial["status"][()])
        for key in ("parameters", "observations_clean"):
            assert np.allclose(parallel[key][()], serial[key][()], rtol=0, atol=1e-7), key
