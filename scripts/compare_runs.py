"""Compare the metrics of two trees of runs (e.g. Debian 12's and a Debian 13 chroot's smoke runs).

    python3 scripts/compare_runs.py RUNS_A RUNS_B

Every ``metrics.json`` under RUNS_A is paired with the one at the same relative path under RUNS_B
(a run present in only one tree is a difference). Two float metrics a, b agree when
|a - b| <= rtol * max(|a|, |b|) + ABS_FLOOR, with rtol set by the run's training dtype
(``config.json``: ``settings.dtype``) and whether both runs used the same torch build (``meta.json``:
``versions.torch``, the full string such as ``2.13.0+cpu`` or ``2.6.0+debian``):

* float64 (heat, boston): ROUNDOFF["float64"] = 1e-9 whatever the torch build. The datasets of two
  stacks differ by ~1e-14; measured: Debian 12 (pip torch 2.13.0 and 2.6.0) against Debian 13
  (pip 2.6.0, and Debian's 2.6.0) differ by at most 1.1e-10.
* float32 under the same torch build: ROUNDOFF["float32"] = 1e-6, a few float32 ulps amplified by
  training (measured: pip torch 2.6.0 against 2.13.0 on Debian 12 differ by at most 8.6e-7).
* float32 under different builds: OTHER_BUILD_FLOAT32 = 5e-2. Debian's own torch builds round float32
  differently from PyPI's (other BLAS and kernels), and a few hundred epochs amplify it; measured
  against pip's 2.13.0: Debian 13's 2.6.0 up to 5.8e-3 (an MNIST validation loss), Debian unstable's
  2.14.1 up to 1.4e-2 (a Navier-Stokes layerwise-SRL test MSE). A code change that alters the numbers shows in the float64
  problems at 1e-9 on every stack.

Integer and text metrics (``n_parameters``, ``n_blocks``, ``n_epochs``, ``stop_reason``) must be
equal; ``wall_time_s`` (a timing) is skipped. Prints the largest relative difference per dtype and
``same metrics (N numbers in M runs, ...)`` and exits 0, or one line per differing value and exits 1;
exits 2 on bad arguments. Standard library only (runs with any Python 3).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

SKIPPED = {"wall_time_s"}
ROUNDOFF = {"float64": 1e-9, "float32": 1e-6}
OTHER_BUILD_FLOAT32 = 5e-2
ABS_FLOOR = 1e-12


def torch_version(run: Path) -> str:
    """The run's torch version with its build tag (``2.13.0+cpu``, ``2.6.0+debian``)."""
    try:
        meta = json.loads((run / "meta.json").read_text(encoding="utf-8"))
        return str(meta["versions"]["torch"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def run_dtype(run: Path) -> str:
    """The run's training dtype (``settings.dtype`` of its config.json; float32 when not stated)."""
    try:
        config = json.loads((run / "config.json").read_text(encoding="utf-8"))
        return "float64" if config["settings"].get("dtype") == "float64" else "float32"
    except (OSError, ValueError, KeyError, AttributeError):
        return "float32"


def tolerance(dtype: str, torch_a: str, torch_b: str) -> float:
    """The relative tolerance of two runs' float metrics (module docstring)."""
    if dtype == "float64" or torch_a == torch_b != "unknown":
        return ROUNDOFF[dtype]
    return OTHER_BUILD_FLOAT32


def runs(root: Path) -> dict[str, Path]:
    """{relative path of the run directory: run directory} of every finished run under root."""
    return {str(m.parent.relative_to(root)): m.parent for m in sorted(root.rglob("metrics.json"))}


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def relative_difference(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), ABS_FLOOR)


def compare_run(a: Path, b: Path, rtol: float) -> tuple[list[str], list[float]]:
    """(differences as text, relative differences of the float metrics) of two runs."""
    ma, mb = (json.loads((r / "metrics.json").read_text(encoding="utf-8")) for r in (a, b))
    differences, relative = [], []
    for key in sorted(set(ma) | set(mb)):
        x, y = ma.get(key), mb.get(key)
        if key in SKIPPED:
            continue
        if is_number(x) and is_number(y) and float in (type(x), type(y)):
            relative.append(relative_difference(x, y))
            if abs(x - y) > rtol * max(abs(x), abs(y)) + ABS_FLOOR:
                differences.append(f"{key}: {x!r} vs {y!r} (relative {relative[-1]:.2e} > {rtol:g})")
        elif x != y:
            differences.append(f"{key}: {x!r} vs {y!r}")
    return differences, relative


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(Path(p).is_dir() for p in argv):
        print("error: usage: compare_runs.py RUNS_A RUNS_B (two directories of runs)", file=sys.stderr)
        return 2
    a, b = (runs(Path(p)) for p in argv)
    if not a:
        print(f"error: {argv[0]} holds no finished run (no metrics.json)", file=sys.stderr)
        return 2
    lines, largest, n_numbers, torches = [], {}, 0, set()
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            lines.append(f"{name}: only in {argv[0] if name in a else argv[1]}")
            continue
        versions = (torch_version(a[name]), torch_version(b[name]))
        dtype = run_dtype(a[name])
        torches.add(versions)
        differences, relative = compare_run(a[name], b[name], tolerance(dtype, *versions))
        lines += [f"{name} ({dtype}, torch {versions[0]} vs {versions[1]}): {d}" for d in differences]
        largest[dtype] = max([largest.get(dtype, 0.0), *relative])
        n_numbers += len(relative)
    for line in lines:
        print(f"differs: {line}")
    print("largest relative difference: " + ", ".join(f"{d} {v:.2e}" for d, v in sorted(largest.items())))
    if lines:
        return 1
    pairs = ", ".join(f"torch {x} vs {y}" for x, y in sorted(torches))
    print(f"same metrics ({n_numbers} numbers in {len(a)} runs, {pairs})")
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
