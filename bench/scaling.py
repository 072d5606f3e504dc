"""Scaling (issue 6): how the cost of a sample grows with the mesh, and generation with processes.

* Cost against mesh size: per problem, the median time of `ForwardModel.solve` (one process) at
  2-3 mesh sizes, and the least-squares slope of log(time) against log(dofs). The sizes are
  timed one after the other within every repeat, so load changes hit them alike. Navier–Stokes
  keeps its time step (and so the number of steps) fixed across sizes.
* Data generation with K = 1, 2, 4 MPI processes (weak scaling: samples ∝ K), each run one
  `mpirun -n K python -m bench._mpi_generate` (the real driver, HDF5 file included), K varied
  within every repeat. Timed is the driver's solve/write loop (start-up and model construction
  excluded). Reported: the efficiency loop(1) / loop(K) (1 is ideal), the speed-up of 2 processes
  over 1 in samples per second (= 2 x efficiency), and the peak resident memory per process.
  With fewer cores than processes the ranks share cores: 4 ranks on 2 cores can at best reach
  efficiency 0.5, and then measure only the cost of oversubscription. Other load on the machine
  lowers the speed-up as much as the driver's own overhead would: the load average at the start
  is reported beside it, and only a quiet machine's numbers judge the target.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from pde_data.registry import forward_model_class

# problem -> (number of dofs of a model, mesh overrides per size for smoke and full)
DOFS = {"heat": lambda m: m.n_dofs,
        "navier_stokes": lambda m: m.settings["mesh_n"] ** 2,
        "wind": lambda m: m.attributes()["n_dofs"]}
# the sources' prior and sensors exist only on the 9x9 mesh: finer heat meshes use the BiLaplacian prior
_HEAT_FINE = {"prior": "bilaplacian", "sensors": "random"}

MESHES = {
    "smoke": {"heat": [{"mesh_n": n, **_HEAT_FINE} for n in (8, 16)],
              "navier_stokes": [{"mesh_n": 8, "grid_n": 8}, {"mesh_n": 16, "grid_n": 8}],
              "wind": [{"mesh_shape": [6, 6, 4]}, {"mesh_shape": [12, 12, 8]}]},
    "full": {"heat": [{"mesh_n": n, **_HEAT_FINE} for n in (32, 64, 128)],
             "navier_stokes": [{"mesh_n": n, "grid_n": 16, "dt": 0.01} for n in (16, 32, 64)],
             "wind": [{"mesh_shape": s} for s in ([10, 10, 4], [20, 20, 8], [40, 40, 16])]},
}
# seconds of solves per size and repeat (at least MIN_CALLS calls), repeats
TIMING = {"smoke": (0.05, 2), "full": (0.5, 3)}
MIN_CALLS = 3
# problem -> samples per process; process counts; repeats
GENERATION = {
    "smoke": ({"heat": 20}, (1, 2, 4), 1),
    "full": ({"heat": 5000, "navier_stokes": 10, "wind": 24}, (1, 2, 4), 2),
}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPIRUN = os.path.join(REPO, "scripts", "mpirun")  # the project's one MPI launcher


def _preset(scale):
    return "smoke" if scale == "smoke" else "paper"


def _rng(i):
    return np.random.default_rng(np.random.SeedSequence(0, spawn_key=(i,)))


def _seconds_per_sample(model, budget):
    """Median seconds of `model.solve` over calls until `budget` seconds (>= MIN_CALLS calls)."""
    times = []
    while len(times) < MIN_CALLS or sum(times) < budget:
        start = time.perf_counter()
        model.solve(len(times), _rng(len(times)))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mesh_entry(problem, scale):
    """The log-log slope of time per sample against dofs for one problem."""
    model_class = forward_model_class(problem)
    models = [model_class(model_class.settings(_preset(scale), overrides))
              for overrides in MESHES[scale][problem]]
    dofs = np.array([DOFS[problem](m) for m in models], dtype=float)
    budget, repeats = TIMING[scale]
    for model in models:
        model.solve(0, _rng(0))  # warm-up: first factorization, caches
    slopes, seconds = [], []
    for _ in range(repeats):
        t = np.array([_seconds_per_sample(model, budget) for model in models])
        slopes.append(float(np.polyfit(np.log(dofs), np.log(t), 1)[0]))
        seconds.append(t)
    median = np.median(seconds, axis=0)
    sizes = ", ".join(f"{int(n)} dofs {s * 1e3:.3g} ms" for n, s in zip(dofs, median))
    varied = ", ".join(f"{k}={v}" for o in MESHES[scale][problem] for k, v in o.items()
                       if k in ("mesh_n", "mesh_shape"))
    return {"name": f"{problem}: time per sample against dofs, log-log slope", "value": statistics.median(slopes),
            "repeats": slopes, "unit": "slope", "target": "",
            "detail": f"{_preset(scale)} preset with {varied}; median per sample: {sizes}"}


def _start(problem, preset, n_samples, processes, out):
    """Start one `mpirun -n processes` generation run (a Popen)."""
    command = [MPIRUN, "-n", str(processes), sys.executable, "-m", "bench._mpi_generate",
               problem, preset, str(n_samples), out]
    return subprocess.Popen(command, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


def _finish(job):
    """The worker's JSON report of a started run."""
    stdout, stderr = job.communicate(timeout=900)
    if job.returncode:
        raise RuntimeError(f"{' '.join(job.args[:6])} ... failed: {stderr.strip()[-500:]}")
    report = json.loads(stdout.strip().splitlines()[-1])
    if report["n_failed"]:
        raise RuntimeError(f"{report['n_failed']} solver failures during the benchmark")
    return report


def _generate(problem, preset, n_samples, processes, directory):
    """One `mpirun -n processes` run of `n_samples`: the worker's report."""
    return _finish(_start(problem, preset, n_samples, processes, f"{directory}/{problem}-{processes}.h5"))



def generation_entries(problem, scale):
    """Weak-scaling efficiency for each K > 1, speed-up of 2 over 1, peak memory per process."""
    per_process, counts, repeats = GENERATION[scale]
    n = per_process[problem]
    runs = {k: [] for k in counts}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as directory:
        for _ in range(repeats):
            for k in counts:
                runs[k].append(_generate(problem, _preset(scale), n * k, k, directory))
    loop = {k: [r["loop_s"] for r in runs[k]] for k in counts}
    cores = os.cpu_count()
    results = []
    for k in counts[1:]:
        efficiency = [t1 / tk for t1, tk in zip(loop[1], loop[k])]
        note = f"; {k} ranks on {cores} cores: oversubscribed, shows its cost only" if k > cores else ""
        results.append({
            "name": f"{problem} generation: weak-scaling efficiency, {k} processes", "unit": "ratio",
            "value": statistics.median(efficiency), "repeats": efficiency, "target": "",
            "detail": (f"{_preset(scale)} preset, {n} samples per process; solve/write loop "
                       f"{statistics.median(loop[1]):.3g} s (1 process) vs {statistics.median(loop[k]):.3g} s"
                       f" ({k}); 1 = ideal{note}")})
    if 2 in counts:
        speedup = [2 * t1 / t2 for t1, t2 in zip(loop[1], loop[2])]
        results.append({
            "name": f"{problem} generation: samples per second, 2 processes / 1 (speed-up)", "unit": "x",
            "value": statistics.median(speedup), "repeats": speedup,
            "target": "" if scale == "smoke" else ">= 1.8",  # smoke loops last milliseconds
            "detail": (f"{_preset(scale)} preset, {n} vs {2 * n} samples, MPI-IO HDF5 writes included; "
                       f"load average {load:.1f} at the start")})
        peak = [max(r["rss_peak_mib"]) for r in runs[2]]
        results.append({
            "name": f"{problem} generation: peak memory per process, 2 processes", "unit": "MiB",
            "value": statistics.median(peak), "repeats": peak, "target": "",
            "detail": (f"max over ranks of peak RSS; after imports {max(runs[2][0]['rss_imports_mib']):.0f} MiB; "
                       f"1 process: {statistics.median(max(r['rss_peak_mib']) for r in runs[1]):.0f} MiB")})
    return results


def entries(scale):
    """Mesh-size slopes for every problem, then the generation entries (see bench/__init__.py)."""
    results = [mesh_entry(problem, scale) for problem in MESHES[scale]]
    for problem in GENERATION[scale][0]:
        results += generation_entries(problem, scale)
    return results
