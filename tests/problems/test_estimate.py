"""`python -m problems estimate`: projected sweep time from a measured epoch, and its bookkeeping."""
from problems.cli import main
from problems.estimate import run_epochs
from problems.registry import problem_class


def test_epoch_budget_counts_folds_and_method_overrides():
    boston = problem_class("boston")("paper")  # cv_folds 5: five folds and the refit
    assert run_epochs(boston, "baseline") == 6 * boston.settings["epochs"]
    mnist = problem_class("mnist")("full")
    assert run_epochs(mnist, "topological") == 60 and run_epochs(mnist, "layerwise_srl") == 90


def test_estimate_prints_per_problem_and_total(capsys):
    assert main(["estimate", "--preset", "smoke", "--problems", "boston", "--methods", "baseline", "topological",
                 "--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert "estimate boston:" in out and "2 methods × 2 seeds" in out and "h in total" in out


def test_estimate_refuses_an_unknown_method_in_one_line(capsys):
    assert main(["estimate", "--preset", "smoke", "--problems", "boston", "--methods", "magic"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown method 'magic'") and err.count("\n") == 1
