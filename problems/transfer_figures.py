"""Figures and summary rows of the transfer runs (:mod:`problems.transfer`), from run files only.

Reads ``ROOT/PROBLEM/METHOD/n_N/seed_S/{config,metrics}.json`` and writes, per problem,
``figures/transfer_PROBLEM.png``: the target test error against the number of target samples N
(log axis), one curve per method, mean ± std over seeds, the source network's error on the target
test set before adaptation as a dashed line, the floor of the frozen-head methods
(:func:`problems.transfer.frozen_head_floor`) dotted; beside it the trainable-parameter count of every
method. The error is ``test_rel_l2`` where the runs report it, else the classification error
1 − ``test_accuracy``, else ``test_mse``. :func:`transfer_summary` gives the same numbers as
markdown rows for ``summary.md``, with the differences to the insertion methods paired by seed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from problems.base import split_counts
from problems.run import read_each, read_metrics
from problems.transfer import TRANSFER_METHODS


def collect(root: Path) -> tuple[dict, int]:
    """({problem: {method: {N: [metrics of each seed, with its config under "config"]}}} of every
    readable finished transfer run under ``root``, the number of corrupt runs left out (each
    reported in one line on stderr)."""
    runs, corrupt = read_each(sorted(Path(root).glob("*/*/n_*/seed_*/metrics.json")), _read_run)
    found: dict = {}
    for run in runs:
        config = run["config"]
        by_n = found.setdefault(config["problem"], {}).setdefault(config["method"], {})
        by_n.setdefault(config["n_target"], []).append(run)
    return found, corrupt


def _read_run(metrics: Path) -> dict:
    """A finished transfer run's metrics with its seed and config, each checked to parse."""
    config = json.loads((metrics.parent / "config.json").read_text())
    if not isinstance(config, dict) or not {"problem", "method", "n_target", "seed"} <= set(config):
        raise ValueError(f"{metrics.parent / 'config.json'} names no problem, method, n_target and seed")
    return {**read_metrics(metrics), "seed": config["seed"], "config": config}


def setup_line(config: dict) -> str:
    """What was run: the two datasets (sizes and the generator settings that differ) and the budget."""
    s = config["settings"]
    budget = ", ".join(f"{k} {s[k]}" for k in ("width", "source_blocks", "source_epochs", "epochs", "insertions",
                                                  "rank", "lr", "lr_factors", "split") if k in s)
    source, target = config.get("source"), config.get("target")
    if not source or not target:
        return f"Run: preset {config['preset']}; {budget}."
    a, b = json.loads(source["config"]), json.loads(target["config"])
    geometry = ", ".join(f"{k} {a[k]}" for k in sorted(a) if "mesh" in k or "grid" in k)
    changed = ", ".join(f"{k} {a.get(k)} → {b.get(k)}" for k in sorted(set(a) | set(b))
                        if a.get(k) != b.get(k) and k != "n_samples")
    if source.get("base_seed") != target.get("base_seed"):
        changed = ", ".join(filter(None, [changed, f"base seed {source.get('base_seed')} → {target.get('base_seed')}"]))
    splits = [list(split_counts(d["n_samples"], tuple(s["split"]))) for d in (source, target)] if "split" in s else []
    used = (f" (split used: source {splits[0]}, target {splits[1]})"
            if any(part != list(s["split"]) for part in splits) else "")
    return (f"Run: preset {config['preset']}; source dataset {source['n_samples']} samples, target dataset "
            f"{target['n_samples']} samples, generator settings changed: {changed or 'none'}; {geometry}; "
            f"{budget}{used}.")


def error_of(metrics: dict, prefix: str = "test_") -> tuple[str, float | None]:
    """(name, value) of the run's test error (module docstring); ``prefix="pretrained_test_"`` for
    the source network's error on the target before adaptation."""
    for key in ("rel_l2", "mse"):
        if prefix + key in metrics:
            return key, metrics[prefix + key]
    if prefix + "accuracy" in metrics:
        return "classification error", 1.0 - metrics[prefix + "accuracy"]
    return "error", None


def _stats(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    return (float(v.mean()), float(v.std())) if len(v) else (float("nan"), float("nan"))


def _ordered(methods: dict) -> list:
    return [m for m in TRANSFER_METHODS if m in methods]


def draw(plt, problem: str, methods: dict, fig_dir: Path) -> None:
    fig, (ax, bar) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    name = "error"
    for method in _ordered(methods):
        sizes = sorted(methods[method])
        stats = [_stats(error_of(r)[1] for r in methods[method][n]) for n in sizes]
        name = error_of(methods[method][sizes[0]][0])[0]
        ax.errorbar(sizes, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3, label=method)
    before = [error_of(r, "pretrained_test_")[1] for rs in methods.get("head", {}).values() for r in rs]
    if any(v is not None for v in before):
        ax.axhline(_stats(before)[0], ls="--", color="gray", label="source network, not adapted")
    floor = [error_of(r, "frozen_head_floor_test_")[1] for rs in methods.get("head", {}).values() for r in rs]
    if any(v is not None for v in floor):
        ax.axhline(_stats(floor)[0], ls=":", color="black", label="floor of every frozen-head method")
    ax.set_xscale("log")
    sizes = sorted({n for by_n in methods.values() for n in by_n})
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set(xlabel="target samples N (training + validation)", ylabel=f"target test {name}",
           title=f"{problem}: transfer (mean ± std over seeds)")
    ax.legend(fontsize=7)
    names = _ordered(methods)
    counts = [_stats(r["n_trainable"] for rs in methods[m].values() for r in rs)[0] for m in names]
    bar.barh(range(len(names)), counts, color=[f"C{i}" for i in range(len(names))])
    bar.set_yticks(range(len(names)), names, fontsize=8)
    bar.set_xscale("log")
    bar.invert_yaxis()
    bar.set(xlabel="trainable parameters (mean over runs)", title="cost")
    fig.tight_layout()
    fig.savefig(fig_dir / f"transfer_{problem}.png", dpi=120)
    plt.close(fig)


def _cell(runs: list, n_seeds: int) -> str:
    """mean ± std of the runs' errors, with their count where fewer seeds than the method's finished."""
    text = "{:.4g} ± {:.3g}".format(*_stats(error_of(r)[1] for r in runs))
    return text if len(runs) == n_seeds else f"{text} ({len(runs)} seeds)"


def transfer_summary(problem: str, methods: dict) -> list[str]:
    """Markdown lines: the target test error per method and N (mean ± std, seeds), the trainable
    parameters and, for insertion methods, the mean count of inserted blocks."""
    sizes = sorted({n for by_n in methods.values() for n in by_n})
    any_run = next(iter(next(iter(methods.values())).values()))[0]
    name = error_of(any_run)[0]
    lines = [f"### {problem}: transfer, target test {name} against target samples N", "",
             setup_line(any_run["config"]), ""]
    before = [error_of(r, "pretrained_test_")[1] for rs in methods.get("head", {}).values() for r in rs]
    if any(v is not None for v in before):
        lines += ["Source network on the target test set before adaptation: {:.4g} ± {:.4g}.".format(*_stats(before)), ""]
    heads = [r for rs in methods.get("head", {}).values() for r in rs if "frozen_head_range_fraction" in r]
    if heads:
        floor = _stats(error_of(r, "frozen_head_floor_test_")[1] for r in heads)
        share = _stats(r["frozen_head_range_fraction"] for r in heads)
        lines += [f"Lowest error any method that keeps the source head frozen (topological, topological_multi, "
                  f"random) can reach: {floor[0]:.4g} ± {floor[1]:.3g} (each test residual replaced by its part "
                  f"outside the head's column space); share of the squared test residual inside that space: "
                  f"{share[0]:.3g} ± {share[1]:.2g}.", ""]
    header = ["method"] + [f"N = {n}" for n in sizes] + ["trainable parameters", "inserted blocks", "seeds"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in _ordered(methods):
        by_n = methods[method]
        runs = [r for rs in by_n.values() for r in rs]
        n_seeds = len({r["seed"] for r in runs})
        cells = [_cell(by_n[n], n_seeds) if n in by_n else "" for n in sizes]
        lines.append("| " + " | ".join([method, *cells, "{:.0f}".format(_stats(r["n_trainable"] for r in runs)[0]),
                                        "{:.2g}".format(_stats(r.get("n_inserted", 0) for r in runs)[0]),
                                        str(n_seeds)]) + " |")
    return lines + [""] + [line for reference in ("topological", "topological_multi", "topological_head")
                           for line in paired_table(methods, reference)]


def paired_table(methods: dict, reference: str) -> list[str]:
    """Markdown lines: for every other method and N, the error difference (other − ``reference``)
    paired by seed, mean ± std over the seeds both ran, and the count of seeds where ``reference`` is
    lower (positive: ``reference`` better)."""
    if reference not in methods:
        return []
    sizes = sorted(methods[reference])
    lines = [f"Paired by seed: error of each method minus that of {reference} (positive: {reference} lower), "
             f"mean ± std over seeds, and the seeds where {reference} is lower.", "",
             "| method | " + " | ".join(f"N = {n}" for n in sizes) + " |", "|" + "---|" * (len(sizes) + 1)]
    for method in _ordered(methods):
        if method == reference:
            continue
        cells = []
        for n in sizes:
            ours = {r["seed"]: error_of(r)[1] for r in methods[reference][n]}
            diff = [error_of(r)[1] - ours[r["seed"]] for r in methods[method].get(n, []) if r["seed"] in ours]
            if not diff:
                cells.append("")
                continue
            mean, std = _stats(diff)
            cells.append(f"{mean:+.3g} ± {std:.2g} ({sum(d > 0 for d in diff)}/{len(diff)})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + [""]


def transfer_section(plt, root: Path, fig_dir: Path) -> tuple[str, int]:
    """Draw every problem's transfer figure; return its summary section ("" without transfer runs)
    and the number of corrupt runs left out."""
    found, corrupt = collect(root)
    lines = []
    for problem, methods in found.items():
        draw(plt, problem, methods, fig_dir)
        lines += transfer_summary(problem, methods)
    if not lines:
        return "", corrupt
    intro = ["## Transfer to a new site or regime", "",
             f"Runs under `{root}` (`python -m problems transfer-sweep`); every method trains for the same number "
             "of epochs on the N target samples; errors in the problem's metric on the target test set.", ""]
    return "\n".join(intro + lines) + "\n", corrupt
