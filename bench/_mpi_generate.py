"""Run by bench/scaling.py under mpirun: generate one dataset, report time and memory as JSON.

    mpirun -n K python -m bench._mpi_generate PROBLEM PRESET N_SAMPLES OUT [KEY=VALUE ...]

Rank 0 prints one JSON line: the driver's solve/write loop seconds (`loop_s`, without start-up and
model construction), the wall time of `generate` (`generate_s`), and every rank's peak resident
memory after imports (`rss_imports_mib`) and at the end (`rss_peak_mib`). The topic module's name
starts with an underscore, so the harness does not take it for a topic.
"""
import json
import resource
import sys
import time

from mpi4py import MPI

from pde_data.cli import parse_overrides
from pde_data.generate import generate


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv):
    problem, preset, n_samples, out, *pairs = argv
    comm = MPI.COMM_WORLD
    rss_imports = _peak_rss_mib()
    start = time.perf_counter()
    report = generate(problem, preset, out, overrides=parse_overrides(pairs), n_samples=int(n_samples),
                      overwrite=True, log=lambda line: None)
    generate_s = time.perf_counter() - start
    rss = comm.gather((rss_imports, _peak_rss_mib()), root=0)
    if comm.rank == 0:
        print(json.dumps({"loop_s": report.loop_seconds, "generate_s": generate_s, "n_failed": report.n_failed,
                          "rss_imports_mib": [r[0] for r in rss], "rss_peak_mib": [r[1] for r in rss]}))


if __name__ == "__main__":
    main(sys.argv[1:])
