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


def single_threaded(fn):
    """``fn()`` with one torch thread (stable timings on a shared machine); the thread count is restored."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def alternating_ratios(numerator, denominator, repeats, clock=time.perf_counter):
    """``repeats`` ratios of the times of ``numerator()`` and ``denominator()`` on ``clock`` (wall
    time by default; ``time.process_time`` is the CPU time, which another process's load does not
    inflate, for single-threaded work), run in alternating order (neither side always runs first)."""
    ratios = []
    for k in range(repeats):
        if k % 2:
            t_num = _seconds(numerator, clock)
            t_den = _seconds(denominator, clock)
        else:
            t_den = _seconds(denominator, clock)
            t_num = _seconds(numerator, clock)
        ratios.append(t_num / t_den)
    return ratios


def _seconds(fn, clock=time.perf_counter):
    t0 = clock()
    fn()
    return clock() - t0
