"""Navier–Stokes dataset: time per sample of `ForwardModel.solve` over its time steps' bare cost.

The bare cost of a sample is n_steps x (one streamfunction back-substitution + one assembly of the
advection vector + one vorticity back-substitution), on the model's own factorizations, forms and
vectors: what any CN/AB2 generator with one-time factorizations must pay. The ratio measures what
the model adds on top (prior draw and FFT interpolation, the matrix-vector products and vector
updates of each step, the constraint back-substitutions, Courant checks, observation, noise).
Sample and bare cost are timed call by call in alternation, so machine load affects them alike.
"""
import statistics

import numpy as np

from bench._timing import interleaved
from pde_data import fem
from pde_data.navier_stokes import ForwardModel

# (label, preset, samples per repeat, repeats, target). The target applies at the dataset's size;
# at the smoke size (256 dofs, ~20 µs of bare work per step) the fixed cost of the ~8 PETSc calls
# per step (~2 µs each) is of the same order, so that ratio is only reported.
SIZES = {"smoke": [("smoke preset", "smoke", 20, 3, "")],
         "full": [("paper preset", "paper", 20, 5, "<= 1.3")]}



def entries(scale):
    """One ratio entry per size (see bench/__init__.py)."""
    results = []
    for label, preset, n_calls, repeats, target in SIZES["smoke" if scale == "smoke" else "full"]:
        model = ForwardModel(ForwardModel.settings(preset))
        rngs = [np.random.default_rng(np.random.SeedSequence(0, spawn_key=(i,))) for i in range(n_calls)]
        x = model.rhs.duplicate()

        def sample(i):
            model.solve(i, rngs[i])

        def bare(i):
            for _ in range(model.n_steps):
                model.poisson.solve(model.rhs, x)
                fem.assemble_constrained_vector(model.advection, model.constraint, model.N[0])
                model.stepper.solve(model.rhs, x)

        sample(0), bare(0)  # warm-up
        ratios, per_sample = [], []
        for _ in range(repeats):
            t_sample, t_bare = interleaved(sample, bare, n_calls)
            ratios.append(t_sample / t_bare)
            per_sample.append(t_sample)
        s = model.settings
        results.append({
            "name": f"navier_stokes {label}: time per sample / its steps' bare back-substitutions + assembly",
            "value": statistics.median(ratios),
            "repeats": ratios,
            "unit": "ratio",
            "target": target,
            "detail": (f"mesh_n={s['mesh_n']} ({s['mesh_n'] ** 2} dofs), {model.n_steps} steps "
                       f"(dt={s['dt']:g}, T={s['final_time']:g}), grid_n={s['grid_n']}, "
                       f"{n_calls} samples per repeat; median "
                       f"{statistics.median(per_sample) * 1e3:.1f} ms per sample"),
        })
    return results
