"""common/mpi_rank.py: the rank, size and thread count each launcher's environment gives (Open MPI's
mpirun, MPICH/pmi2, srun's job steps, a batch script's own shell), mpi4py's answer once MPI is
initialized, and the command line's one error line from rank 0 only under srun."""
import os
import subprocess
import sys

import pytest

from common.mpi_rank import cpus_per_process, rank, rank_size
from tests.conftest import REPO, mpirun, own_lines, run_cli

SRUN_STEP = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "2", "PMIX_RANK": "1"}


@pytest.mark.parametrize("env, expected", [
    ({}, (0, 1)),
    ({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4"}, (3, 4)),
    ({"PMI_RANK": "2", "PMI_SIZE": "5"}, (2, 5)),
    (SRUN_STEP, (1, 2)),
    # a batch script's own shell: SLURM_PROCID=0 and the job's task count, but one process
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_JOB_ID": "7"}, (0, 1)),
    # mpirun inside an allocation: every rank inherits the batch shell's SLURM_PROCID=0
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8"}, (5, 8)),
])
def test_rank_and_size_from_each_launcher(env, expected):
    assert rank_size(env) == expected
    assert rank(env) == expected[0]


@pytest.mark.parametrize("env, affinity, processes, expected", [
    ({"SLURM_CPUS_PER_TASK": "4", **SRUN_STEP}, {0}, None, 4),   # --cpus-per-task=4 under CPU binding
    ({}, set(range(8)), None, 8),                                  # one process: every core of its mask
    ({"OMPI_COMM_WORLD_LOCAL_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "4"},
     set(range(8)), None, 4),                                      # two ranks on this node of four
    ({"MPI_LOCALNRANKS": "3"}, set(range(8)), None, 2),            # MPICH: floor(8 / 3)
    ({"PMI_RANK": "0", "PMI_SIZE": "4"}, {0, 1}, None, 1),         # more processes than cores: one thread
    ({}, set(range(8)), 2, 4),                                     # projected for 2 processes (estimate)
])
def test_cpus_per_process(env, affinity, processes, expected):
    assert cpus_per_process(processes, env, affinity) == expected


def test_a_plain_process_gets_its_whole_affinity_mask(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("SLURM_", "OMPI_", "PMI_", "MPI_LOCALNRANKS")):
            monkeypatch.delenv(name)
    assert rank_size() == (0, 1)
    assert cpus_per_process() == len(os.sched_getaffinity(0))


@pytest.mark.mpi
def test_initialized_mpi_is_asked_before_the_environment(tmp_path):
    """Under mpirun -n 2 with the launcher's variables removed after MPI_Init, mpi4py still answers
    (each rank writes its answer to its own file: the ranks' stdout may interleave)."""
    code = ("import os, sys; from mpi4py import MPI; "
            "[os.environ.pop(k) for k in list(os.environ) if k.startswith(('OMPI_COMM_WORLD', 'PMI_'))]; "
            "from common.mpi_rank import rank_size; r, n = rank_size(); "
            "open(os.path.join(sys.argv[1], f'rank{MPI.COMM_WORLD.rank}'), 'w').write(f'{r} {n}')")
    result = subprocess.run(mpirun(2) + [sys.executable, "-c", code, str(tmp_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [(tmp_path / f"rank{i}").read_text() for i in (0, 1)] == ["0 2", "1 2"]


@pytest.mark.parametrize("procid, lines", [("0", 1), ("1", 0)])
def test_only_rank_zero_of_an_srun_step_prints_the_error(tmp_path, procid, lines):
    """`info` initializes no MPI, so the rank comes from srun's variables."""
    result = run_cli(["info", tmp_path / "missing.h5"], env={**SRUN_STEP, "SLURM_PROCID": procid}, toy=False)
    assert result.returncode == 1
    assert len(own_lines(result.stderr)) == lines, result.stderr
