"""Timing helpers shared by the benchmark topics."""
import time

import numpy as np


def interleaved(first, second, n):
    """Median seconds per call of `first(i)` and of `second(i)`, timed call by call in
    alternation (i = 0..n-1): load changes on a shared machine hit both alike, and the medians
    ignore the calls that another process interrupted."""
    times = np.empty((n, 2))
    for i in range(n):
        t0 = time.perf_counter()
        first(i)
        t1 = time.perf_counter()
        second(i)
        times[i] = t1 - t0, time.perf_counter() - t1
    return tuple(np.median(times, axis=0))
