"""Wind over terrain (docs/methods.md §B, §E): 10 noisy mast measurements (u, v, w) -> the velocity on a
uniform terrain-following 3-D grid.

Dataset (:mod:`pde_data.wind`): the mass-consistent diagnostic wind model; /parameters holds the
velocity [m/s] at the grid points (nx, ny, nz) in C order, point-major (u, v, w); grid point (i, j, k)
is at x_i = (i + ½)Δx, y_j = (j + ½)Δy, z = h(x_i, y_j) + (k + 1)Δζ (h the ground, Δζ = grid_top/nz).

Targets are standardized per velocity component (one mean and standard deviation for all u, one
for v, one for w: the vertical component is an order of magnitude smaller). ``test_mse`` is the mean
squared error per velocity component [m²/s²]; ``test_rel_l2`` the mean over test samples of
‖û − u‖₂ / ‖u‖₂ over all grid values. The figures show the wind speed |u|.

Physics term (:func:`divergence`): mass conservation ∇·u = 0 by finite differences in the
terrain-following coordinates (x, y, ζ = z − h(x, y)), in which

    ∇·u = ∂u/∂x|_ζ − h_x ∂u/∂ζ + ∂v/∂y|_ζ − h_y ∂v/∂ζ + ∂w/∂ζ,

each derivative by second-order central differences inside and first-order one-sided ones at the
grid's faces (``torch.gradient``), h_x and h_y the same differences of the ground heights h(x_i, y_j).
This is an approximation: the dataset's velocity is divergence-free in the finite-element sense
(weakly, on the tetrahedral mesh: test functions against P1 hat functions), not in this grid sense,
so the true field's grid divergence is small but not zero (its size relative to the terms it is
made of is measured in tests/problems/test_wind.py). The penalty is the nondimensional
mean((Δx ∇·u / s)²), s the training standard deviation of the horizontal velocity.

Budget. The paper preset trains for 60 epochs in total (10 per stage) on 1,500 samples: the whole
paper pipeline has to run in under an hour on 2 CPU cores. The sources do not state their sizes.
"""
from __future__ import annotations

import numpy as np
import torch

from problems.base import Data, Problem, Standardizer, dataset_split, read_dataset

_LAYERWISE = {"activation": "elu", "input_activation": None, "alpha": 0.0, "manifold": "noisy_copies",
              "manifold_copies": 10, "manifold_noise": 0.01, "gamma0": 1e-3, "rho": 1.5,
              "physics": "divergence", "physics_weight": 1.0, "threshold": 1e-4}
# paper: Φm on 1,000 of the 15,000 noisy copies per step (all of them cost ~9 s per epoch)
_PAPER_LAYERWISE = {**_LAYERWISE, "manifold_subsample": 1000}


class Grid:
    """Geometry of the terrain-following grid: spacings Δx, Δy, Δζ [m] and ground slopes h_x, h_y."""

    def __init__(self, points: np.ndarray, shape):
        self.shape = tuple(int(n) for n in shape)
        p = points.reshape(*self.shape, 3)
        self.dx = float(p[1, 0, 0, 0] - p[0, 0, 0, 0]) if self.shape[0] > 1 else 1.0
        self.dy = float(p[0, 1, 0, 1] - p[0, 0, 0, 1]) if self.shape[1] > 1 else 1.0
        self.dzeta = float(p[0, 0, 1, 2] - p[0, 0, 0, 2]) if self.shape[2] > 1 else float(p[0, 0, 0, 2])
        ground = p[:, :, 0, 2] - self.dzeta
        self.ground = ground
        self.h_x = np.gradient(ground, self.dx, axis=0, edge_order=1)
        self.h_y = np.gradient(ground, self.dy, axis=1, edge_order=1)

    def divergence(self, velocity: torch.Tensor) -> torch.Tensor:
        """∇·u [1/s] at every grid point, (B, nx, ny, nz), from point-major velocities (B, 3·n) [m/s]."""
        u = velocity.reshape(velocity.shape[0], *self.shape, 3)

        def d(f, spacing, dim):
            return torch.gradient(f, spacing=spacing, dim=dim, edge_order=1)[0]

        hx = torch.as_tensor(self.h_x, dtype=u.dtype, device=u.device)[None, :, :, None]
        hy = torch.as_tensor(self.h_y, dtype=u.dtype, device=u.device)[None, :, :, None]
        ux, uy, uz = u[..., 0], u[..., 1], u[..., 2]
        return (d(ux, self.dx, 1) - hx * d(ux, self.dzeta, 3) + d(uy, self.dy, 2) - hy * d(uy, self.dzeta, 3)
                + d(uz, self.dzeta, 3))


class WindProblem(Problem):
    name = "wind"
    kind = "field"
    figures = ("fields",)
    field_label, error_label, domain = "wind speed |u| [m/s]", "|û − u| [m/s]", "lowest grid level"
    notes = ("No published numbers are available for the wind problem. Paper preset: 1,500 training "
             "samples and 60 epochs (the sources state neither).")
    presets = {
        "smoke": {"threads": 1, "split": (140, 20, 40), "width": 32, "n_blocks": 1, "final_blocks": 3, "epochs": 150,
                  "lr": 3e-3, "batch_size": None, "patience": 2, "min_rel_improvement": 0.0, "dtype": "float32",
                  "methods": {"layerwise": _LAYERWISE, "layerwise_srl": {**_LAYERWISE, "srl_stages": 2},
                              "nas": {"n_trials": 3}}},
        "paper": {"split": (1500, 250, 250), "width": 128, "n_blocks": 1, "final_blocks": 6, "epochs": 60,
                  "lr": 1e-3, "batch_size": 64, "patience": 2, "min_rel_improvement": 0.0, "dtype": "float32",
                  "methods": {"layerwise": _PAPER_LAYERWISE, "layerwise_srl": {**_PAPER_LAYERWISE, "srl_stages": 3},
                              "nas": {"n_trials": 4}}},
    }
    # every one of the 2,000 samples, 50 epochs per stage; stages end on the validation plateau
    presets["full"] = {**presets["paper"], "split": (1600, 200, 200), "epochs": 300}

    def load(self, path) -> Data:
        dataset = read_dataset(path, self.name)
        data = dataset_split(self, dataset, dataset.rows("parameters"), _component_scaler)
        shape = dataset.array_attrs["geometry/parameter_points"]["grid_shape"]
        data.info["grid"] = Grid(dataset.arrays["geometry/parameter_points"], shape)
        return data

    def physics(self, data: Data, name: str):
        """``"divergence"``: mean over batch and grid of (Δx ∇·û / s)² (module docstring)."""
        if name != "divergence":
            raise ValueError(f"wind has the physics term 'divergence', not {name!r}")
        grid, scaler = data.info["grid"], data.target_scaler
        scale = grid.dx / float(scaler.std[:2].mean())

        def divergence(predictions, batch):
            return ((scale * grid.divergence(scaler.inverse(predictions))) ** 2).mean()

        return divergence

    def draw_field(self, ax, values, data, level: int = 0, **kw):
        """Wind speed |u| [m/s] on the horizontal grid slice ``level`` (height (level+1)Δζ above ground)."""
        grid = data.info["grid"]
        speed = np.linalg.norm(np.asarray(values).reshape(*grid.shape, 3), axis=-1)[:, :, level]
        nx, ny, _ = grid.shape
        return ax.imshow(speed.T, origin="lower", extent=(0, nx * grid.dx, 0, ny * grid.dy), **kw)


def _component_scaler(rows: np.ndarray) -> Standardizer:
    """One mean and standard deviation per velocity component, repeated over the grid points."""
    components = rows.reshape(-1, 3)
    n_points = rows.shape[1] // 3
    std = components.std(0)
    return Standardizer(np.tile(components.mean(0), n_points), np.tile(np.where(std > 0, std, 1.0), n_points))
