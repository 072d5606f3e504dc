"""Heat dataset: time per sample of `ForwardModel.solve` over the bare assemble-and-solve cost.

The bare cost is one `LinearSolver.solve` of the same model (matrix and load re-assembled into
the existing PETSc objects, one direct solve): what any generator must pay. The ratio measures
what the forward model adds on top (KL field, exp, sensor values, noise). Both are timed call by
call in alternation in the same process, so machine load affects them alike.
"""
import statistics

import numpy as np

from bench._timing import interleaved
from pde_data.heat import ForwardModel

SIZES = {
    "smoke": [("paper size", {"mesh_n": 9}, 100, 3)],
    "full": [("paper size", {"mesh_n": 9}, 2000, 7),
             ("64x64", {"mesh_n": 64, "n_modes": 64, "n_sensors": 100, "prior": "bilaplacian", "sensors": "random"}, 100, 7)],
}



def entries(scale):
    """One ratio entry per mesh size (see bench/__init__.py)."""
    results = []
    for label, overrides, n_calls, repeats in SIZES["smoke" if scale == "smoke" else "full"]:
        model = ForwardModel(ForwardModel.settings("smoke", overrides))
        rngs = [np.random.default_rng(np.random.SeedSequence(0, spawn_key=(i,)))
                for i in range(n_calls)]

        def sample(i):
            model.solve(i, rngs[i])

        def bare(i):
            model.solver.solve(model.state)

        sample(0), bare(0)  # warm-up: first factorization, caches
        ratios, per_sample = [], []
        for _ in range(repeats):
            t_sample, t_bare = interleaved(sample, bare, n_calls)
            ratios.append(t_sample / t_bare)
            per_sample.append(t_sample)
        results.append({
            "name": f"heat {label}: time per sample / bare assemble+solve",
            "value": statistics.median(ratios),
            "repeats": ratios,
            "unit": "ratio",
            "target": "<= 1.3",
            "detail": (f"mesh_n={model.settings['mesh_n']} ({model.n_dofs} dofs), "
                       f"n_modes={model.settings['n_modes']}, "
                       f"n_sensors={model.settings['n_sensors']}, {n_calls} samples per repeat; "
                       f"median {statistics.median(per_sample) * 1e3:.3f} ms per sample"),
        })
    return results
