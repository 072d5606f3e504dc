"""The contract between a PDE problem and the dataset generator.

A problem module (e.g. `pde_data/heat.py`) defines `class ForwardModel(BaseForwardModel)` with

- `name`: the problem name; `presets`: {"smoke": {...}, "paper": {...}}, every setting with its
  default value (the value's type is the setting's type; `n_samples` is always present);
- `check(settings)`: raise `ConfigError` naming the key of any invalid value (classmethod); every
  float setting (also inside lists) is checked to be finite before, for every model;
- `input_files`: the settings that name input files (their contents' sha256 is part of the
  dataset's identity, so a resume after the file changed is refused);
- `__init__(settings, comm)`: build mesh, spaces, compiled forms, solvers once; `comm` is the
  communicator one sample is solved on (`MPI.COMM_SELF` for sample-parallel generation);
- `layout()`: {dataset name: row width} for the per-sample arrays, always `parameters`,
  `observations`, `observations_clean`, optionally `states`, `latent` and problem-specific ones;
- `static_arrays()`: {"geometry/...": array, "operators/...": array} written once;
- `attributes()`: {name: value} root attributes (physical settings, readable without code);
  `dataset_attributes()`: {dataset path: {attr: value}} (e.g. `grid_shape` on geometry points);
- `solve(index, rng)`: {dataset name: 1-D float64 row} for sample `index`, drawing every random
  number from `rng` (built from `SeedSequence(base_seed, spawn_key=(index,))` by the driver);
  raises `SolverFailure` when the solver does not converge. Collective on `comm`; every rank of
  `comm` returns the full rows;
- `export_xdmf(directory, index, rows)`: write the sample's fields (parameter, state) as
  finite-element functions to XDMF files in `directory` for ParaView (`--xdmf DIR`).

The driver (`pde_data.generate`) owns MPI distribution, the HDF5 store, resume and progress.
"""
import json
import math

from common.errors import ConfigError


class BaseForwardModel:
    """Settings handling shared by every forward model; subclasses add the physics."""

    name = ""
    presets = {}
    input_files = ()

    @classmethod
    def settings(cls, preset, overrides=None):
        """The preset's settings with `overrides` ({key: value or string}) applied and checked."""
        if preset not in cls.presets:
            raise ConfigError(
                f"unknown preset '{preset}' for {cls.name} (known: {', '.join(cls.presets)})")
        settings = dict(cls.presets[preset])
        for key, value in (overrides or {}).items():
            if key not in settings:
                raise ConfigError(
                    f"unknown setting '{key}' for {cls.name} (known: {', '.join(sorted(settings))})")
            settings[key] = _coerce(key, value, settings[key])
        if int(settings["n_samples"]) <= 0:
            raise ConfigError(f"n_samples must be positive, got {settings['n_samples']}")
        for key, value in settings.items():
            if not _all_finite(value):
                raise ConfigError(f"setting '{key}' must be finite, got {value!r}")
        cls.check(settings)
        return settings

    @classmethod
    def check(cls, settings):
        """Raise ConfigError for an invalid value (subclasses override)."""

    def dataset_attributes(self):
        """{dataset path: {attr: value}} attributes of datasets (default: none)."""
        return {}


def _all_finite(value):
    """False when `value` is, or a list/tuple/dict holds, a float that is inf or NaN."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(map(_all_finite, value))
    if isinstance(value, dict):
        return all(map(_all_finite, value.values()))
    return True


def _coerce(key, value, default):
    """Convert a command-line string to the type of the default value."""
    if not isinstance(value, str):
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, (list, tuple, dict)):
            return json.loads(value)
        return value
    except ValueError:
        raise ConfigError(
            f"invalid value '{value}' for setting '{key}' (expected {type(default).__name__})") from None
