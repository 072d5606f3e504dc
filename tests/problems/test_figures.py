"""summary.md of the figures command: heat shows the relative squared error beside the published values."""
from pathlib import Path

from problems.figures import _summary
from tests.problems.test_pipeline import summary_rows


def _run(method, seed, rel, rel_sq):
    stage = {"stage": 0, "test_mse": 0.7, "test_rel_l2": rel, "test_rel_sq": rel_sq}
    return {"metrics": {"test_mse": 0.7, "test_rel_l2": rel, "test_rel_sq": rel_sq, "val_loss": 0.6,
                        "n_parameters": 10, "n_blocks": 1, "n_epochs": 5, "wall_time_s": 1.0},
            "config": {"problem": "heat", "method": method, "seed": seed, "dataset": None,
                       "settings": {"split": [50, 20, 500], "width": 30}},
            "stages": {"growth": [stage, stage], "srl": []}}


def test_heat_summary_has_the_relative_squared_error_beside_the_published_ones():
    found = {"heat": {"topological": [_run("topological", 0, 0.8, 0.3), _run("topological", 1, 0.6, 0.4)],
                      "layerwise": [_run("layerwise", 0, 0.7, 0.5)]}}
    text = _summary("paper", Path("runs"), found)
    rows = summary_rows(text)["heat"]
    assert rows["topological"]["test_rel_sq"].startswith("0.35 ± 0.05")
    assert rows["topological"]["test_rel_l2"].startswith("0.7 ± 0.1")
    assert rows["topological"]["published average relative error"] == "0.366"
    assert rows["layerwise"]["published test_mse"] == "0.445"
    assert "Test test_rel_sq at the end of each growth stage" in text
    assert "relative squared error" in text
