"""``python -m problems sweep``: every problem × method × seed, resumable, shared out under MPI.

Runs are listed in a fixed order (problem, method, seed); under ``mpirun -n K`` the process of rank
r takes the runs whose position i satisfies i mod K = r (no communication: the rank and size come
from the launcher, :mod:`common.mpi_rank`, also under ``srun``), and uses the cores allotted to one
process as PyTorch threads (``--cpus-per-task`` under SLURM, else its cores / K). A run whose
directory already holds a ``metrics.json`` made with the same configuration (settings and dataset
identity) is skipped, so an interrupted sweep continues where it stopped and a changed dataset or
setting redoes exactly the runs it affects. One failing run is reported in one line (a crash's
traceback goes to ``OUT_ROOT/sweep-errors.log``) and the sweep goes on; the exit status is 1 if any
run failed.
"""
from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path

import torch

from common import mpi_rank
from common.errors import UserError
from problems.methods import available, check_method
from problems.registry import problem_class
from problems.run import is_done, run, run_config

logger = logging.getLogger(__name__)


def sweep(preset: str, seeds, problems, methods, data_dir=None, out_root=None, device: str = "cpu") -> int:
    for name in problems:
        problem_class(name)  # UserError before any run if a name is unknown
    for name in methods:
        check_method(name)
    data_dir = Path(data_dir or f"data/{preset}")
    root = Path(out_root or f"results/runs/{preset}")
    rank, size = mpi_rank.rank_size()
    torch.set_num_threads(mpi_rank.cpus_per_process())  # cores allotted, not the node's
    jobs = [(p, m, s) for p in problems for m in methods if _offered(p, m, preset) for s in seeds]
    failed = 0
    for i, (problem, method, seed) in enumerate(jobs):
        if i % size != rank:
            continue
        data = problem_class(problem).data_file(data_dir) if problem_class(problem).needs_data else None
        out = root / problem / method / f"seed_{seed}"
        label = f"[{i + 1}/{len(jobs)}] {problem} {method} seed {seed}"
        try:
            if is_done(out, run_config(problem, method, seed, preset, data)):
                logger.info(f"{label}: done before")
                continue
            t0 = time.perf_counter()
            metrics = run(problem, method, seed, preset, data, out, device, overwrite=True,
                          argv=["python", "-m", "problems", "run", problem, "--method", method, "--seed", str(seed),
                                "--preset", preset, *(["--data", str(data)] if data else []), "--out", str(out)])
            shown = {k: v for k, v in metrics.items() if k.startswith("test_")}
            logger.info(f"{label}: {time.perf_counter() - t0:.1f} s " + " ".join(f"{k}={v:.4g}" for k, v in shown.items()))
        except UserError as error:
            failed += 1
            print(f"{label}: error: {error}", file=sys.stderr, flush=True)
        except Exception as error:  # a crash of one run must not end a long sweep; keep its traceback
            failed += 1
            log = root / "sweep-errors.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as f:
                f.write(f"{label}\n{traceback.format_exc()}\n")
            print(f"{label}: failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''} "
                  f"(traceback in {log})", file=sys.stderr, flush=True)
    return 1 if failed else 0


def _offered(problem: str, method: str, preset: str) -> bool:
    """Whether the sweep runs ``method`` on ``problem`` (:func:`problems.methods.available`); one info
    line when not (a CNN or ViT problem and a method that needs an MLP stack)."""
    if available(problem_class(problem)(preset), method):
        return True
    logger.info(f"{problem} {method}: not available (the method needs a plain MLP stack), not run")
    return False
