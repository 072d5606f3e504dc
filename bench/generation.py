"""Generation driver overhead: seconds per sample of the driver's solve/write loop over the bare
`ForwardModel.solve` of the same heat model, one process.

The driver adds the per-sample random generator, the HDF5 row writes and the flushes between
rounds. Each repeat times N bare solves, then `generate` of N samples (its loop only: no start-up,
no file creation), back to back, so machine load hits both alike. The 2-over-1 process speed-up
and the memory per process are in bench/scaling.py (same driver, under mpirun).
"""
import statistics
import tempfile
import time

from pde_data.generate import generate, sample_rng
from pde_data.heat import ForwardModel

SIZES = {"smoke": (100, 3), "full": (2000, 5)}  # samples per repeat, repeats


def _bare_seconds(model, n):
    start = time.perf_counter()
    for i in range(n):
        model.solve(i, sample_rng(0, i))
    return time.perf_counter() - start


def entries(scale):
    """One ratio entry (see bench/__init__.py)."""
    n, repeats = SIZES["smoke" if scale == "smoke" else "full"]
    model = ForwardModel(ForwardModel.settings("paper", {"n_samples": n}))
    model.solve(0, sample_rng(0, 0))  # warm-up
    ratios, bare, driver = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-generation-") as directory:
        for r in range(repeats):
            bare.append(_bare_seconds(model, n))
            report = generate("heat", "paper", f"{directory}/heat{r}.h5", n_samples=n, log=lambda line: None)
            driver.append(report.loop_seconds)
            ratios.append(driver[-1] / bare[-1])
    return [{"name": "heat generation: driver loop per sample / bare model.solve", "unit": "ratio",
             "value": statistics.median(ratios), "repeats": ratios, "target": "<= 1.3",
             "detail": (f"paper preset (9x9 mesh), {n} samples, 1 process; median per sample "
                        f"{statistics.median(driver) / n * 1e3:.3g} ms driver vs "
                        f"{statistics.median(bare) / n * 1e3:.3g} ms bare")}]
