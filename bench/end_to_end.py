"""End to end (issue 6): wall time of `make figures` at smoke scale, from nothing.

At full scale this runs the Makefile's pipeline `make data`, `make results`, `make figures`
(SCALE=smoke, NP=1) into a fresh temporary directory (DATA_DIR, RUNS_DIR and FIGURES_DIR
overridden, so nothing in data/ or results/ is reused or touched) and reports the total with the
three stages in the detail. It takes minutes, so at smoke scale the entry is skipped.
"""
import os
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("data", "results", "figures")
NAME = "end to end: make figures SCALE=smoke from nothing, wall time"


def entries(scale):
    """One entry: total seconds of the three make stages (skipped at smoke scale)."""
    if scale == "smoke":
        return [{"name": NAME, "value": float("nan"), "repeats": [], "unit": "s", "target": "",
                 "detail": "skipped at smoke scale (takes minutes); measured by `make bench`"}]
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        dirs = [f"DATA_DIR={tmp}/data", f"RUNS_DIR={tmp}/runs", f"FIGURES_DIR={tmp}/figures"]
        for stage in STAGES:
            start = time.perf_counter()
            result = subprocess.run(["make", "-s", stage, "SCALE=smoke", "NP=1", *dirs], cwd=REPO,
                                    capture_output=True, text=True)
            if result.returncode:
                raise RuntimeError(f"make {stage} failed: {result.stderr.strip()[-500:]}")
            seconds[stage] = time.perf_counter() - start
    total = sum(seconds.values())
    split = ", ".join(f"{stage} {s:.0f} s" for stage, s in seconds.items())
    return [{"name": NAME, "value": total, "repeats": [total], "unit": "s", "target": "",
             "detail": f"NP=1, SEEDS of the Makefile; {split}"}]
