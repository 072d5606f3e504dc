"""This process's MPI rank and size, and the CPU cores it may use, without initializing MPI.

Rank and size come from mpi4py's ``COMM_WORLD`` when MPI is already initialized in this process;
otherwise from the launcher's environment, first match wins:

- ``OMPI_COMM_WORLD_RANK``/``OMPI_COMM_WORLD_SIZE``: Open MPI's ``mpirun``;
- ``PMI_RANK``/``PMI_SIZE``: MPICH's Hydra ``mpiexec`` and ``srun --mpi=pmi2``;
- ``SLURM_PROCID``/``SLURM_STEP_NUM_TASKS``: ``srun`` under every MPI plugin (``--mpi=pmix``
  sets only ``PMIX_RANK``, with no size). ``SLURM_STEP_NUM_TASKS`` is set only inside a job step,
  so a batch script's own shell (which has ``SLURM_PROCID=0`` and the job's ``SLURM_NTASKS``) and
  ``mpirun`` started from it count as what they are, not as the job's tasks;
- else rank 0 of 1.

Launcher variables come before SLURM's because ``mpirun`` inside an allocation passes the batch
shell's ``SLURM_PROCID=0`` on to every rank.
"""
from __future__ import annotations

import os
import sys

_LAUNCHERS = (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE"),
              ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS"))
_LOCAL_SIZES = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS")


def rank_size(env=None) -> tuple[int, int]:
    """(rank, size) of this process in its MPI job; (0, 1) when it was not started as one.
    ``env``: the environment to read (default ``os.environ``, after mpi4py when MPI is initialized)."""
    mpi = sys.modules.get("mpi4py.MPI")
    if env is None and mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        return mpi.COMM_WORLD.Get_rank(), mpi.COMM_WORLD.Get_size()
    env = os.environ if env is None else env
    for rank, size in _LAUNCHERS:
        if rank in env and size in env:
            return int(env[rank]), int(env[size])
    return 0, 1


def rank(env=None) -> int:
    """This process's rank (0 outside MPI): only rank 0 prints a job's error lines."""
    return rank_size(env)[0]


def cpus_per_process(processes: int | None = None, env=None, affinity=None) -> int:
    """CPU cores one process may use for threads (at least 1).

    ``SLURM_CPUS_PER_TASK`` when SLURM set it (``--cpus-per-task``: the cores the job asked for
    each task, whatever the node's CPU binding); else the cores of the affinity mask (``affinity``,
    default this process's) divided by ``processes``, the processes sharing them (default: the
    launcher's processes on this node, else the job's size).
    """
    env = os.environ if env is None else env
    if env.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return max(1, int(env["SLURM_CPUS_PER_TASK"]))
    cores = len(os.sched_getaffinity(0) if affinity is None else affinity)
    if processes is None:
        processes = next((int(env[name]) for name in _LOCAL_SIZES if env.get(name, "").isdigit()),
                         rank_size(env)[1])
    return max(1, cores // max(1, processes))
