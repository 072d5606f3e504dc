"""Wind dataset: time per sample over the bare solve, and AMG-CG iterations under mesh refinement.

The bare cost is one `LinearSolver.solve` of the model's λ-problem (right-hand side assembled
into the existing vector, CG + BoomerAMG with the hierarchy built once): what any generator must
pay. The ratio measures what the forward model adds (log-profile first guess, gradient recovery,
divergence, point values, noise). Both are timed in alternating blocks in the same process.

The iteration entries solve one sample on uniformly refined meshes of the paper site (each
refinement halves every cell edge): bounded counts mean the preconditioner is mesh-independent.
"""
import statistics
import time

import numpy as np
from mpi4py import MPI

from pde_data.wind import ForwardModel

SCALES = {
    "smoke": {"ratio": ("smoke", 10, 3), "refinements": [[6, 6, 4], [12, 12, 8], [24, 24, 16]]},
    "full": {"ratio": ("paper", 10, 5),
             "refinements": [[10, 10, 4], [20, 20, 8], [40, 40, 16], [80, 80, 32]]},
}


def _block(function, n):
    """Seconds per call of `function(i)` over n calls."""
    start = time.perf_counter()
    for i in range(n):
        function(i)
    return (time.perf_counter() - start) / n


def _rng(i):
    return np.random.default_rng(np.random.SeedSequence(0, spawn_key=(i,)))


def _ratio_entry(preset, n_calls, repeats):
    model = ForwardModel(ForwardModel.settings(preset), MPI.COMM_SELF)
    rngs = [_rng(i) for i in range(n_calls)]

    def sample(i):
        model.solve(i, rngs[i])

    def bare(i):
        model.solver.solve(model.lam, assemble_matrix=False)

    sample(0), bare(0)  # warm-up
    ratios, per_sample = [], []
    for _ in range(repeats):
        rngs[:] = [_rng(i) for i in range(n_calls)]
        t_sample = _block(sample, n_calls)
        t_bare = _block(bare, n_calls)
        ratios.append(t_sample / t_bare)
        per_sample.append(t_sample)
    attrs = model.attributes()
    return {"name": f"wind {preset}: time per sample / bare AMG-CG solve",
            "value": statistics.median(ratios), "repeats": ratios, "unit": "ratio",
            "target": "<= 1.3",
            "detail": (f"mesh {model.settings_['mesh_shape']} ({attrs['n_cells']} cells, "
                       f"{attrs['n_dofs']} dofs), grid {model.settings_['grid_shape']}, "
                       f"{n_calls} samples per block; median {statistics.median(per_sample) * 1e3:.1f} "
                       "ms per sample")}


def _iteration_entries(shapes):
    results, counts = [], []
    for shape in shapes:
        model = ForwardModel(ForwardModel.settings("paper", {"mesh_shape": shape}), MPI.COMM_SELF)
        iterations = [model.solve(i, _rng(i))["iterations"][0] for i in range(3)]
        counts.append(max(iterations))
        results.append({"name": f"wind: AMG-CG iterations, mesh {'x'.join(map(str, shape))}",
                        "value": statistics.median(iterations), "repeats": iterations,
                        "unit": "iterations", "target": "",
                        "detail": (f"{model.attributes()['n_cells']} cells, "
                                   f"{model.attributes()['n_dofs']} dofs, rtol "
                                   f"{model.settings_['solver_rtol']:g}, 3 samples")})
    results.append({"name": "wind: AMG-CG iterations, finest / coarsest mesh",
                    "value": counts[-1] / counts[0], "repeats": [counts[-1] / counts[0]],
                    "unit": "ratio", "target": "<= 1.5",
                    "detail": f"max iterations per mesh: {counts}, {len(shapes) - 1} refinements"})
    return results


def entries(scale):
    """The time ratio and the iteration counts (see bench/__init__.py)."""
    config = SCALES["smoke" if scale == "smoke" else "full"]
    return [_ratio_entry(*config["ratio"])] + _iteration_entries(config["refinements"])
