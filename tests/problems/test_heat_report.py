"""The heat report (problems/heat_report.py): paired tests by hand, the table, missing runs, the hooks."""
import json
from pathlib import Path

import pytest

from problems import heat_report
from problems.figures import _summary
from problems.heat import HeatProblem


def _run(method, seed, rel_sq, mse=None, train=None, curve=()):
    log = [{"event": "stage", "stage": 0, "train_loss": train}] if train is not None else []
    return {"metrics": {"test_rel_sq": rel_sq, "test_mse": rel_sq if mse is None else mse, "val_loss": 0.5,
                        "n_parameters": 10, "n_blocks": 1, "n_epochs": 5, "wall_time_s": 1.0},
            "config": {"problem": "heat", "method": method, "seed": seed, "dataset": None,
                       "settings": {"split": [50, 20, 500], "width": 100}},
            "stages": {"growth": [{"stage": k, "test_mse": v} for k, v in enumerate(curve)], "srl": []},
            "log": log}


def test_paired_wilcoxon_by_hand():
    # d = -1, -2, -3, -4: every sign negative, exact one-sided p = P(W+ = 0) = 1/2^4
    a, b = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 9: 0.0}, {0: 2.0, 1: 4.0, 2: 6.0, 3: 8.0}
    test = heat_report.paired_test(a, b)
    assert test.n == 4 and test.mean_difference == pytest.approx(-2.5)
    assert test.p_value == pytest.approx(1 / 16)
    # d = -1, -2, +3: W+ = 3; P(W+ <= 3) over the 8 sign patterns of ranks {1, 2, 3} = 5/8
    test = heat_report.paired_test({0: 0.0, 1: 0.0, 2: 3.0}, {0: 1.0, 1: 2.0, 2: 0.0})
    assert test.p_value == pytest.approx(5 / 8)


def test_paired_test_without_common_seeds_or_differences():
    assert heat_report.paired_test({0: 1.0}, {1: 2.0}) is None
    assert heat_report.paired_test({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}).p_value is None


def test_table_has_mean_std_ratio_and_training_error():
    runs = [_run("topological", 0, 0.6, train=0.3), _run("topological", 1, 0.8, train=0.5)]
    lines = heat_report.table([("topological", "topological", runs)])
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:6] == ["topological", "2", "0.700 ± 0.100", "0.700 ± 0.100", "0.400 ± 0.100", "0.366"]
    assert cells[6] == "test_rel_sq" and cells[7] == f"{0.7 / 0.366:.2f}"
    # layerwise is compared with the logged test MSE of z, not the relative squared error
    lines = heat_report.table([("layerwise", "layerwise", [_run("layerwise", 0, 0.5, mse=0.445)])])
    assert "| test_mse | 1.00 |" in lines[2]


def test_missing_runs_are_one_line_each():
    lines = heat_report.table([("topological", "topological", [_run("topological", 0, 0.6)]),
                               ("random", "random", []), ("baseline", "baseline", [])])
    assert lines[-1] == "Not run: random; baseline."
    text = heat_report.report({"topological": [_run("topological", 0, 0.6)]}, {})
    assert "- topological < random: not tested (no seed with runs of both)" in text
    assert "- on the sources' own samples: no runs." in text


def test_orderings_report_the_paired_test():
    methods = {"baseline": [_run("baseline", s, 0.5 + 0.01 * s) for s in range(5)],
               "forward_thinking": [_run("forward_thinking", s, 0.6 + 0.02 * s) for s in range(5)]}
    line = next(x for x in heat_report.orderings(methods) if x.startswith("- baseline < forward_thinking"))
    assert "holds" in line and "over 5 seeds" in line and f"p = {1 / 32:.3g}" in line


def test_curve_lines_give_the_ratio_to_the_logged_curve():
    runs = [_run("layerwise", s, 0.5, curve=heat_report.LOGGED_CURVE) for s in range(2)]
    (line,) = heat_report.curve_lines("x", runs)
    assert line.endswith("1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00") and "(2 seeds)" in line


def _write_run(d: Path, run: dict) -> None:
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(run["metrics"]))
    (d / "config.json").write_text(json.dumps(run["config"]))
    (d / "stages.json").write_text(json.dumps(run["stages"]))
    (d / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in run["log"]))


def test_heat_summary_and_curves_read_the_runs_on_the_sources_samples(tmp_path):
    _write_run(tmp_path / "sources" / "heat" / "layerwise" / "seed_3",
               _run("layerwise", 3, 0.5, curve=(0.8, 0.6), train=0.2))
    curves = HeatProblem.reference_curves(tmp_path)["test_mse"]
    assert curves["published layerwise (sources' log)"] == list(heat_report.LOGGED_CURVE)
    assert curves["layerwise, sources' samples (1 seeds)"] == [0.8, 0.6]
    text = _summary("paper", tmp_path, {"heat": {"topological": [_run("topological", 0, 0.6)]}})
    assert "### Against the published table" in text
    assert "| layerwise, sources' samples | 1 | 0.500 ± 0.000 |" in text


def test_measured_gaps_are_in_the_paper_summary_only(tmp_path):
    """The hand-written measured causes (results/heat_gaps.md) survive regenerating the paper summary
    and do not appear beside smoke runs."""
    runs = {"heat": {"topological": [_run("topological", 0, 0.6)]}}
    heading = heat_report.GAPS.read_text().splitlines()[0]
    assert heading.startswith("### Why the published numbers are not reached")
    assert heading in _summary("paper", tmp_path / "paper", runs)
    assert heading not in _summary("smoke", tmp_path / "smoke", runs)
