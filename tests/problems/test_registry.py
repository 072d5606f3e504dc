"""The method registry: a new method is one module plus one registry line, and runs through the real
``python -m problems run`` pipeline; presets are typed (an unknown or mistyped key is one line)."""
import json

import pytest

import problems.methods as methods
from common.errors import ConfigError
from problems.cli import main
from problems.heat import HeatProblem
from problems.methods import config_for
from problems.registry import PROBLEMS, problem_class


def test_a_one_module_method_runs_through_the_pipeline(monkeypatch, datasets, tmp_path, capsys):
    monkeypatch.setitem(methods.METHODS, "exact_insertion", "tests.problems.example_method")  # the one line
    tiny = {**HeatProblem.presets["smoke"], "epochs": 4, "final_blocks": 2, "width": 8,
            "methods": {"exact_insertion": {"insertion_noise": 0.0}}}
    monkeypatch.setattr(HeatProblem, "presets", {**HeatProblem.presets, "smoke": tiny})
    out = tmp_path / "run"
    assert main(["run", "heat", "--method", "exact_insertion", "--preset", "smoke", "--data",
                 str(datasets["heat"]), "--out", str(out)]) == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "exact_insertion" and config["settings"]["insertion_noise"] == 0.0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    growth_events = [r for r in log if r["event"] == "growth"]
    assert growth_events, "the method grew the network"
    for event in growth_events:  # an exact identity block changes nothing
        assert event["loss_after"] == pytest.approx(event["loss_before"], rel=1e-12)
    assert json.loads((out / "metrics.json").read_text())["n_blocks"] == 2


@pytest.mark.parametrize("change, named", [
    ({"widht": 16}, "widht"),  # a typo in a shared key
    ({"lr": "fast"}, "lr"),  # a mistyped value
    ({"methods": {"layerwise": {"srl_stages": 2}}}, "srl_stages"),  # a key the method does not have
    ({"methods": {"layerwize": {}}}, "layerwize"),  # an unknown method
])
def test_preset_typos_are_one_line_config_errors(change, named):
    problem = HeatProblem("smoke")
    problem.settings = {**problem.settings, **change}
    with pytest.raises(ConfigError) as error:
        config_for(problem, "layerwise")
    assert named in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_every_preset_of_every_problem_is_valid_for_every_method(name):
    for preset in problem_class(name).presets:
        problem = problem_class(name)(preset)
        for method in methods.METHODS:
            config = config_for(problem, method)
            assert config.epochs > 0 and config.final_blocks >= config.n_blocks
