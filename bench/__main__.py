"""Run every benchmark topic and write results/bench.md and results/bench.json.

    python -m bench [--scale smoke|full] [--only TOPIC ...] [--out DIR]

Each topic is a module of this package with `entries(scale)` (see bench/__init__.py). A topic
that fails is reported as failed in the table and makes the exit status non-zero; the others
still run.
"""
import argparse
import datetime
import importlib
import json
import os
import pkgutil
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import bench


def topics():
    """Names of the benchmark modules in this package, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def machine():
    """Cores, CPU model and library versions, so a ratio can be read in context."""
    info = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    for name in ("numpy", "torch", "dolfinx", "petsc4py", "h5py"):
        try:
            info[name] = importlib.import_module(name).__version__
        except Exception:  # a topic needing it will report its own failure
            info[name] = "absent"
    return info


def spread(values):
    """(min, max) of the repeats, or the single value twice."""
    return (min(values), max(values)) if values else (float("nan"), float("nan"))


def run_topic(name, scale):
    """The topic's entries, or one failed entry carrying the error."""
    start = time.perf_counter()
    try:
        entries = importlib.import_module(f"bench.{name}").entries(scale)
        failed = False
    except Exception as error:  # report and go on with the other topics
        traceback.print_exc()
        entries = [{"name": f"{name}: FAILED", "value": float("nan"), "repeats": [], "unit": "",
                    "target": "", "detail": f"{type(error).__name__}: {error}".splitlines()[0]}]
        failed = True
    for entry in entries:
        entry["topic"] = name
    print(f"bench: {name} done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return entries, failed


def markdown(entries, info, scale):
    lines = [f"# Benchmarks ({scale} scale)", "",
             f"Measured {info['date']} on {info['cores']} cores ({info['cpu']}); "
             f"numpy {info['numpy']}, torch {info['torch']}, dolfinx {info['dolfinx']}, "
             f"PETSc {info['petsc4py']}, h5py {info['h5py']}. Each value is the median over the "
             "repeats; the range is min–max.", "",
             "| entry | value | range | target | met | detail |",
             "|---|---|---|---|---|---|"]
    for e in entries:
        low, high = spread(e["repeats"])
        met = target_met(e["value"], e["target"])
        lines.append(f"| {e['name']} | {e['value']:.4g} {e['unit']} | {low:.3g}–{high:.3g} | "
                     f"{e['target']} | {met} | {e['detail']} |")
    return "\n".join(lines) + "\n"


def target_met(value, target):
    """'yes'/'no' for targets like '<= 1.3' or '>= 100', '' when there is none."""
    if not target:
        return ""
    op, bound = target.split()
    ok = value <= float(bound) if op == "<=" else value >= float(bound)
    return "yes" if ok else "no"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("smoke", "full"), default="full")
    parser.add_argument("--only", nargs="*", default=None, help="topics to run (default: all)")
    parser.add_argument("--out", default="results", help="directory for bench.md and bench.json")
    args = parser.parse_args(argv)
    unknown = set(args.only or ()) - set(topics())
    if unknown:
        print(f"error: unknown benchmark topic(s) {', '.join(sorted(unknown))} "
              f"(known: {', '.join(topics())})", file=sys.stderr)
        return 2
    info = machine()
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    entries, any_failed = [], False
    for name in args.only or topics():
        topic_entries, failed = run_topic(name, args.scale)
        entries += topic_entries
        any_failed |= failed
    for e in entries:
        e.setdefault("repeats", [e["value"]])
        if e["repeats"]:
            e["value"] = statistics.median(e["repeats"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "bench" if args.scale == "full" else "bench-smoke"
    (out / f"{stem}.json").write_text(json.dumps({"machine": info, "scale": args.scale, "entries": entries}, indent=1))
    table = markdown(entries, info, args.scale)
    (out / f"{stem}.md").write_text(table)
    print(table)
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
