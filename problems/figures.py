"""``python -m problems figures --preset P``: every figure and ``summary.md``, drawn only from run files.

Reads ``RUNS/PROBLEM/METHOD/seed_S/{config,metrics,stages}.json``, ``log.jsonl`` and ``predictions.npz``
(and, for the field plots' geometry, the dataset named in config.json). Writes into OUT:

* ``figures/PROBLEM_per_layer.png``  test error after each growth stage (per method, mean over
  seeds) and after each SRL stage, the published values as horizontal marks; one panel per metric of
  :func:`_metrics` (the problem's main metric and those it compares with published values);
* ``figures/PROBLEM_methods.png``    the final test metrics per method, mean ± std over seeds, with the
  published values as marks;
* ``figures/PROBLEM_loss.png``       training and validation loss against epochs and against wall
  time (seed 0), growth events marked by vertical lines;
and, where the problem lists them in ``Problem.figures``:

* ``figures/PROBLEM_fields.png``     (``"fields"``) the predicted field of the first test sample at the
  end of every stage of the topological and layerwise methods (one seed), beside the truth, on one
  colour scale (``Problem.field_label``), and the pointwise error |prediction − truth| of the final
  stage on a second one (``Problem.error_label``), drawn by ``Problem.draw_field``;
* ``figures/PROBLEM_td_scores.png``  (``"td_scores"``) λ_max(Q_l) per location (columns) at every
  insertion (rows) of the topological method;
* ``figures/PROBLEM_error_maps.png`` (``"error_maps"``) |prediction − truth| averaged over the test set
  and the seeds, one map per method, one colour scale;
* ``summary.md``                     every number behind the figures (mean ± std over seeds, count of
  seeds) beside the published values (``Problem.published``), with the problem's ``notes`` and what its
  ``Problem.report`` adds (e.g. paired tests of published orderings).

The per-stage figure also draws the problem's ``Problem.reference_curves`` (dashed; e.g. a published
per-layer curve).

Everything problem-specific (metric, published values, labels, notes, drawing) comes from the problem's
class; this module names no problem.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.errors import UserError
from problems.methods import METHODS
from problems.registry import PROBLEMS, problem_class
from problems.run import read_each, read_metrics

PAPER_BUDGET = (
    "The paper preset is cut to run in under an hour on 2 CPU cores: each problem's `Run:` line lists "
    "what was run, and its notes say how that differs from the sources. Numbers that depend on long "
    "training (MNIST accuracies, SRL gains) therefore fall short of the published ones.")


def read_runs(root: Path) -> tuple[dict, int]:
    """({problem: {method: [run dict]}} of every readable finished run under ``root``, the number of
    corrupt runs left out, each reported in one line on stderr)."""
    runs, corrupt = read_each(sorted(root.glob("*/*/seed_*/metrics.json")), lambda m: _read_run(m.parent))
    found: dict = {}
    for run in runs:
        found.setdefault(run["config"]["problem"], {}).setdefault(run["config"]["method"], []).append(run)
    return found, corrupt


def _read_run(d: Path) -> dict:
    """A finished run's metrics, config, stages and log, each checked to parse."""
    run = {"dir": d, "metrics": read_metrics(d / "metrics.json"), "config": json.loads((d / "config.json").read_text())}
    if not isinstance(run["config"], dict) or not {"problem", "method"} <= set(run["config"]):
        raise UserError(f"{d / 'config.json'} names no problem and method")
    stages = d / "stages.json"
    run["stages"] = json.loads(stages.read_text()) if stages.is_file() else {"growth": [], "srl": []}
    run["log"] = _log(run)
    return run


def _metrics(problem, methods: dict) -> list:
    """The problem's main metric, then the other metrics of ``problem.compared`` that its runs report."""
    return [problem.metric] + [k for k in problem.compared if k != problem.metric
                               and any(k in r["metrics"] for rs in methods.values() for r in rs)]


def _published(problem, metric: str) -> dict:
    """{method: published value} to compare with ``metric``."""
    return problem.published.get(problem.compared.get(metric, metric), {})


def _mean_std(values):
    v = np.asarray([x for x in values if x is not None], dtype=float)
    return (float(v.mean()), float(v.std())) if len(v) else (float("nan"), float("nan"))


def _log(run) -> list:
    return [json.loads(line) for line in (run["dir"] / "log.jsonl").read_text().splitlines()]


def figures(preset: str, runs=None, out=None) -> int:
    """Draw the figures and write summary.md from every readable run; returns the number of corrupt
    runs left out (each reported in one line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(runs or f"results/runs/{preset}")
    out = Path(out or ("results" if preset == "paper" else f"results/{preset}"))
    found, corrupt = read_runs(root)
    if not found and not (root / "transfer").is_dir():
        raise UserError(f"no finished runs under {root} (run `make results SCALE={preset}` first)")
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for name, methods in found.items():
        problem = problem_class(name)
        metrics = _metrics(problem, methods)
        _per_layer(plt, problem, methods, metrics, fig_dir, root)
        _methods_bar(plt, problem, methods, metrics, fig_dir)
        _loss_curves(plt, problem, methods, fig_dir)
        for kind in problem.figures:
            EXTRA_FIGURES[kind](plt, problem, methods, fig_dir)
    from problems.transfer_figures import transfer_section

    transfer, transfer_corrupt = transfer_section(plt, root / "transfer", fig_dir)
    (out / "summary.md").write_text(_summary(preset, root, found) + transfer)
    print(f"wrote {fig_dir} and {out / 'summary.md'}")
    return corrupt + transfer_corrupt


def _ordered(methods: dict):
    return [m for m in METHODS if m in methods]


def _per_layer(plt, problem, methods, metrics, fig_dir, root):
    fig, axes = plt.subplots(1, len(metrics), figsize=(7 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for method in _ordered(methods):
            curves = [[s[metric] for s in r["stages"]["growth"]] + [s[metric] for s in r["stages"]["srl"][1:]]
                      for r in methods[method]]
            n = min(len(c) for c in curves)
            if n == 0:
                continue
            mean = np.mean([c[:n] for c in curves], axis=0)
            ax.plot(np.arange(1, n + 1), mean, marker="o", label=method)
        for label, values in problem.reference_curves(root).get(metric, {}).items():
            ax.plot(np.arange(1, len(values) + 1), values, ls="--", marker="x", color="black" if "published" in label
                    else None, label=label)
        for k, (method, value) in enumerate(_published(problem, metric).items()):
            ax.axhline(value, ls=":", lw=0.8, color="gray")
            # labels side by side, so that close published values stay readable
            ax.annotate(f"published {method}", (0.01 + 0.22 * (k % 4), value), xycoords=("axes fraction", "data"),
                        fontsize=7, color="gray", va="bottom")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set(xlabel="stage (growth stages, then SRL stages)", ylabel=metric,
               title=f"{problem.name}: {metric} per stage")
    axes[0, -1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(fig_dir / f"{problem.name}_per_layer.png", dpi=120)
    plt.close(fig)


def _methods_bar(plt, problem, methods, metrics, fig_dir):
    """One bar per method and metric (side by side), mean ± std over seeds; red: the published value."""
    names = _ordered(methods)
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(7 + 1.5 * (len(metrics) - 1), 3.8))
    tops = [0.0]
    for j, metric in enumerate(metrics):
        stats = [_mean_std(r["metrics"].get(metric) for r in methods[m]) for m in names]
        x = np.arange(len(names)) - 0.4 + width * (j + 0.5)
        ax.bar(x, [s[0] for s in stats], width, yerr=[s[1] for s in stats], alpha=0.75, label=metric)
        tops += [s[0] + s[1] for s in stats if np.isfinite(s[0])]
    published = {m: v for metric in metrics for m, v in _published(problem, metric).items()}
    for i, name in enumerate(names):
        if name in published:
            ax.plot([i - 0.4, i + 0.4], [published[name]] * 2, color="red", lw=2,
                    label="published" if i == min(names.index(m) for m in published if m in names) else None)
    ax.set_ylim(0, 1.3 * max(tops + list(published.values())))
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    shown = metrics[0] if len(metrics) == 1 else "relative errors"
    ax.set(ylabel=shown, title=f"{problem.name}: final {shown} (mean ± std over seeds)")
    ax.legend(fontsize=8, ncols=len(metrics) + 1, loc="upper left")
    fig.tight_layout()
    fig.savefig(fig_dir / f"{problem.name}_methods.png", dpi=120)
    plt.close(fig)


def _loss_curves(plt, problem, methods, fig_dir):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method in _ordered(methods):
        log = [r for r in _log(methods[method][0]) if "trial" not in r]
        epochs = [r for r in log if r["event"] == "epoch" and r.get("phase") != "srl"]
        if not epochs:
            continue
        x_epoch = np.arange(1, len(epochs) + 1)
        x_time = np.cumsum([r["wall_time_s"] for r in epochs])
        line, = axes[0].semilogy(x_epoch, [r["train_loss"] for r in epochs], lw=1, label=method)
        axes[0].semilogy(x_epoch, [r["val_loss"] for r in epochs], lw=1, ls="--", color=line.get_color())
        axes[1].semilogy(x_time, [r["val_loss"] for r in epochs], lw=1, color=line.get_color())
        for g in (r for r in log if r["event"] == "growth" and r.get("method") != "srl"):
            axes[0].axvline(sum(1 for e in epochs if e["stage"] <= g["stage"]), color=line.get_color(), lw=0.4, alpha=0.5)
    axes[0].set(xlabel="epoch", ylabel="loss (solid train, dashed validation)", title=f"{problem.name}: losses, seed 0")
    axes[1].set(xlabel="training wall time [s]", ylabel="validation loss")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(fig_dir / f"{problem.name}_loss.png", dpi=120)
    plt.close(fig)


def _load_geometry(problem, run):
    """(the problem, its data) of ``run`` for drawing fields; (None, None) if the dataset is gone."""
    cfg = run["config"]
    try:
        p = problem(cfg["preset"])
        return p, p.load(cfg["dataset"]["path"])
    except (UserError, OSError, KeyError, TypeError):
        return None, None


def _field_stages(plt, problem, methods, fig_dir):
    """One row per method (its first run's seed): the truth and the prediction after every stage on one
    colour scale, then |prediction − truth| of the final stage on a second one starting at 0."""
    shown = [m for m in ("topological", "layerwise") if m in methods]
    if not shown:
        return
    p, data = _load_geometry(problem, methods[shown[0]][0])
    if p is None:
        return
    preds = {m: np.load(methods[m][0]["dir"] / "predictions.npz") for m in shown}
    n_cols = 2 + max(len(preds[m]["snapshot"]) for m in shown)
    fig, axes = plt.subplots(len(shown), n_cols, figsize=(2.2 * n_cols + 1.5, 2.4 * len(shown)), squeeze=False,
                             layout="constrained")
    fields, errors = [], []
    for row, m in zip(axes, shown):
        truth, snapshots, stages = preds[m]["test_target"][0], preds[m]["snapshot"][:, 0], preds[m]["snapshot_stage"]
        panels = [(truth, "truth")] + [(v, f"stage {k}") for v, k in zip(snapshots, stages)]
        for ax, (values, title) in zip(row, panels):
            fields.append(p.draw_field(ax, values, data))
            ax.set_title(title, fontsize=10)
        errors.append(p.draw_field(row[-1], np.abs(snapshots[-1] - truth), data, cmap="magma"))
        row[-1].set_title(f"|error|, stage {stages[-1]}", fontsize=10)
        for ax in row:
            ax.margins(0)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(ax.has_data())
        row[0].set_ylabel(f"{m}, seed {methods[m][0]['config']['seed']}", fontsize=11)
    _shared_scale(fields, errors)
    fig.colorbar(fields[0], ax=axes[:, :-1], label=problem.field_label, shrink=0.9, pad=0.01)
    fig.colorbar(errors[0], ax=axes[:, -1], label=problem.error_label, shrink=0.9, pad=0.02)
    fig.suptitle(f"{problem.name}: first test sample, {problem.domain}", fontsize=12)
    fig.savefig(fig_dir / f"{problem.name}_fields.png", dpi=120)
    plt.close(fig)


def _shared_scale(fields, errors=()) -> None:
    """One colour range over the drawn ``fields`` (their min to max), and 0 to the max over ``errors``."""
    values = [np.asarray(a.get_array()) for a in fields]
    for a in fields:
        a.set_clim(min(v.min() for v in values), max(v.max() for v in values))
    for a in errors:
        a.set_clim(0.0, max(float(np.asarray(e.get_array()).max()) for e in errors))


def _td_scores(plt, problem, methods, fig_dir):
    if "topological" not in methods:
        return
    events = [r for r in _log(methods["topological"][0]) if r["event"] == "growth" and "scores" in r]
    if not events:
        return
    width = max(len(e["scores"]) for e in events)
    grid = np.full((len(events), width), np.nan)
    for i, e in enumerate(events):
        grid[i, :len(e["scores"])] = e["scores"]
    fig, ax = plt.subplots(figsize=(1 + 0.6 * width, 1 + 0.5 * len(events)))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    for i, e in enumerate(events):
        ax.plot(e["location"], i, "rx")
    ax.set(xlabel="location l", ylabel="insertion", title=f"{problem.name}: λ_max(Q_l) (x: chosen)")
    fig.colorbar(image, ax=ax, label="λ_max(Q_l)")
    fig.tight_layout()
    fig.savefig(fig_dir / f"{problem.name}_td_scores.png", dpi=120)
    plt.close(fig)


def _error_maps(plt, problem, methods, fig_dir):
    names = _ordered(methods)
    p, data = _load_geometry(problem, methods[names[0]][0])
    if p is None:
        return
    maps = {m: np.mean([np.abs((lambda z: z["test_prediction"] - z["test_target"])(np.load(r["dir"] / "predictions.npz")))
                        .mean(0) for r in methods[m]], axis=0) for m in names}
    fig, axes = plt.subplots(1, len(names), figsize=(2.1 * len(names) + 1.5, 3.4), squeeze=False, layout="constrained")
    images = []
    for ax, m in zip(axes[0], names):
        images.append(p.draw_field(ax, maps[m], data, cmap="magma"))
        ax.set_title(f"{m}\nmean {maps[m].mean():.3g}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    _shared_scale((), images)
    fig.colorbar(images[0], ax=axes[0], label=problem.error_label, shrink=0.9, pad=0.01)
    fig.suptitle(f"{problem.name}: |prediction − truth| averaged over the test set and the seeds, {problem.domain}")
    fig.savefig(fig_dir / f"{problem.name}_error_maps.png", dpi=120)
    plt.close(fig)


def _setup(methods: dict) -> str:
    """What was run: seeds, methods and the budget settings of the runs' config.json."""
    runs = [r for rs in methods.values() for r in rs]
    s = runs[0]["config"]["settings"]
    seeds = sorted({r["config"]["seed"] for r in runs})
    budget = ", ".join(f"{k} {s[k]}" for k in ("network", "split", "width", "n_blocks", "final_blocks", "epochs", "lr",
                                                  "weight_decay", "batch_size", "score_subsample", "score_estimation")
                        if k in s and (s[k] is not None or k == "batch_size"))
    dataset = runs[0]["config"].get("dataset") or {}
    size = f" of a dataset of {dataset['n_samples']} samples" if dataset.get("n_samples") else ""
    return (f"Run: seeds {', '.join(map(str, seeds))}; methods {', '.join(_ordered(methods))}; "
            f"settings (config.json){size}: {budget}.")


def _summary(preset, root, found) -> str:
    lines = [f"# Results ({preset} preset)", "",
             f"Every number is the mean ± standard deviation over the seeds (n = number of seeds) of the runs "
             f"under `{root}`; `published` is the value docs/methods.md quotes from the sources. The smoke preset "
             "uses tiny networks, datasets and budgets: its numbers check the pipeline, not the methods.", ""]
    if preset == "paper":
        lines += [PAPER_BUDGET, ""]
    for name in [p for p in PROBLEMS if p in found]:
        problem, methods = problem_class(name), found[name]
        keys = list(dict.fromkeys(k for rs in methods.values() for r in rs for k in r["metrics"]
                                  if k.startswith("test_")))
        published = problem.published
        lines += [f"## {name}", "", problem.notes, "", _setup(methods), ""]
        header = ["method", "n"] + keys + [f"published {k}" for k in published]
        header += ["val_loss", "n_parameters", "n_blocks", "epochs", "wall_time_s"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for m in _ordered(methods):
            rs = methods[m]
            cell = lambda k, f=".4g": "{:{f}} ± {:{f}}".format(*_mean_std(r["metrics"].get(k) for r in rs), f=f)  # noqa: E731
            row = [m, str(len(rs))] + [cell(k) for k in keys]
            row += [str(values.get(m, "")) for values in published.values()]
            row += [cell("val_loss"), cell("n_parameters", ".0f"), cell("n_blocks", ".1f"), cell("n_epochs", ".0f"),
                    cell("wall_time_s", ".3g")]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        extra = problem.report(methods, root)
        if extra:
            lines += [extra]
        for metric in _metrics(problem, methods):
            lines += [f"Test {metric} at the end of each growth stage (seed mean):", ""]
            for m in _ordered(methods):
                curves = [[s[metric] for s in r["stages"]["growth"]] for r in methods[m]]
                n = min((len(c) for c in curves), default=0)
                if n > 1:
                    lines.append(f"- {m}: " + ", ".join(f"{v:.4g}" for v in np.mean([c[:n] for c in curves], axis=0)))
            srl = [[s[metric] for s in r["stages"]["srl"]] for r in methods.get("layerwise_srl", [])]
            if srl and min(len(c) for c in srl) > 1:
                n = min(len(c) for c in srl)
                lines.append("- layerwise_srl, SRL stages 0..K: "
                             + ", ".join(f"{v:.4g}" for v in np.mean([c[:n] for c in srl], axis=0)))
            lines.append("")
    return "\n".join(lines) + "\n"


EXTRA_FIGURES = {"fields": _field_stages, "td_scores": _td_scores, "error_maps": _error_maps}
