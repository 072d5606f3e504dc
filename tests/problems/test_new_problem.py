"""A new PDE problem is two files (tests/problems/poisson/forward.py, problem.py) plus one line in each
registry: it generates a dataset with the real finite-element solver, trains through ``run`` and is
drawn and tabulated by ``figures``, without any other change."""
import json

import numpy as np
import pytest

import pde_data.registry
import problems.registry
from pde_data.cli import main as pde_main
from problems.cli import main


@pytest.fixture
def poisson(monkeypatch):
    monkeypatch.setitem(pde_data.registry.FORWARD_MODELS, "poisson", "tests.problems.poisson.forward")
    monkeypatch.setitem(problems.registry.PROBLEMS, "poisson", "tests.problems.poisson.problem:PoissonProblem")


def test_two_files_and_two_registry_lines_make_a_problem(poisson, tmp_path, capsys):
    with pytest.raises(SystemExit):
        pde_main(["generate", "--help"])
    assert "poisson" in capsys.readouterr().out  # the help lists the registry
    data = tmp_path / "poisson.h5"
    assert pde_main(["generate", "poisson", "--preset", "smoke", "--out", str(data)]) == 0
    runs = tmp_path / "runs"
    for method in ("topological", "baseline"):
        out = runs / "poisson" / method / "seed_0"
        assert main(["run", "poisson", "--method", method, "--preset", "smoke", "--data", str(data),
                     "--out", str(out)]) == 0, capsys.readouterr().err
        metrics = json.loads((out / "metrics.json").read_text())
        assert np.isfinite(metrics["test_rel_l2"]) and metrics["n_epochs"] > 0
    assert main(["figures", "--preset", "smoke", "--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    figures = sorted(p.name for p in (tmp_path / "out" / "figures").glob("*.png"))
    assert figures == sorted(f"poisson_{kind}.png" for kind in ("per_layer", "methods", "loss", "fields", "td_scores"))
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "## poisson" in summary and "A test problem" in summary
