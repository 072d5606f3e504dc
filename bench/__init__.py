"""Benchmarks (`make bench`): ratios measured side by side in one run, never timed assertions.

Each topic module `bench/<topic>.py` defines `entries(scale) -> list[dict]`, scale "smoke" (toy
sizes, under a few seconds: exercised in CI by `make bench-smoke`) or "full". Each entry:

    {"name": str,            # what is compared, e.g. "heat: time per sample / bare solve"
     "value": float,         # the median over repeats
     "repeats": [float],     # every measured value (spread is reported from these)
     "unit": str,            # "ratio", "x" (speed-up), "s", "MiB", "iterations", "slope"
     "target": str,          # e.g. "<= 1.3", ">= 1.8", or "" when only reported
     "detail": str}          # sizes and settings, one line

`python -m bench [--scale smoke|full] [--only TOPIC]` runs them and writes results/bench.md/.json.
"""
