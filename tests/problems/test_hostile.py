"""`python -m problems` under hostile use: unusable datasets (work files, pending rows, NaN or inf,
missing operators), bad seeds, corrupt run outputs and interrupts are each one line `error: ...`,
a non-zero exit, no traceback, no existing file changed and no `.partial` left behind."""
import json
import shutil

import h5py
import numpy as np
import pytest

from pde_data import store
from problems.cli import main
from tests.hostile import assert_one_line_error, tree

RUN = ["run", "heat", "--method", "baseline", "--preset", "smoke"]


def refused(capsys, root, argv, named):
    before = tree(root)
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.err, named, captured.out)
    assert tree(root) == before


@pytest.fixture
def heat_copy(datasets, tmp_path):
    """A writable copy of the session's small heat dataset."""
    path = tmp_path / "data" / "heat.h5"
    path.parent.mkdir()
    shutil.copy(datasets["heat"], path)
    return path


def test_negative_seed_is_refused(tmp_path, capsys):
    refused(capsys, tmp_path, ["run", "boston", "--method", "nas", "--seed", "-1", "--preset", "smoke",
                               "--out", tmp_path / "run"], "--seed must be a non-negative integer")


def test_generator_work_file_is_refused(heat_copy, tmp_path, capsys):
    partial = heat_copy.rename(store.partial_path(heat_copy))
    refused(capsys, tmp_path, RUN + ["--data", partial, "--out", tmp_path / "run"], "work file of an unfinished")


def test_pending_rows_are_refused_with_the_counts(heat_copy, tmp_path, capsys):
    with h5py.File(heat_copy, "r+") as f:
        f["status"][5:8] = store.PENDING
        f["status"][8] = store.FAILED
    refused(capsys, tmp_path, RUN + ["--data", heat_copy, "--out", tmp_path / "run"],
            "(36 done, 3 pending, 1 failed)")


@pytest.mark.parametrize("dataset,value,named", [
    ("observations", np.nan, "/observations holds 3 non-finite values"),
    ("observations", np.inf, "/observations holds 3 non-finite values"),
    ("latent", -np.inf, "the targets (from /parameters or /latent) holds 3 non-finite values"),
])
def test_non_finite_data_in_the_rows_used_is_refused(heat_copy, tmp_path, capsys, dataset, value, named):
    from problems.base import split_counts, split_indices
    from problems.heat import HeatProblem

    problem = HeatProblem("smoke")
    with h5py.File(heat_copy, "r+") as f:
        rows = f[dataset][()]
        train, _, _ = split_indices(len(rows), split_counts(len(rows), problem.settings["split"]), problem.split_seed)
        rows[train[:3], [0, 1, 0]] = value
        f[dataset][...] = rows
    refused(capsys, tmp_path, RUN + ["--data", heat_copy, "--out", tmp_path / "run"], named)


def test_schema_valid_file_without_operators_is_refused(heat_copy, tmp_path, capsys):
    with h5py.File(heat_copy, "r+") as f:
        del f["operators"]
    refused(capsys, tmp_path, RUN + ["--data", heat_copy, "--out", tmp_path / "run"], "has no /operators/")


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_interrupt_is_one_line_and_leaves_no_partial_run(tmp_path, capsys, monkeypatch, command):
    import problems.methods
    import problems.run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(problems.run, "train", interrupted)
    monkeypatch.setattr(problems.methods, "train", interrupted)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    before = tree(tmp_path)
    if command == "run":
        argv = ["run", "boston", "--method", "baseline", "--preset", "smoke", "--out", tmp_path / "run", "--overwrite"]
    else:
        argv = ["sweep", "--preset", "smoke", "--problems", "boston", "--methods", "baseline", "--out-root", tmp_path]
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.err, "interrupted; ", captured.out)
    assert code == 130
    if command == "run":
        assert tree(tmp_path) == before
    assert not list(tmp_path.rglob("*.partial"))


def _finished_run(root, problem="boston", method="baseline", seed=0):
    """A run directory as `run` writes it (the files figures and sweep read)."""
    d = root / problem / method / f"seed_{seed}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"problem": problem, "method": method, "seed": seed, "preset": "smoke",
                                              "dataset": None, "settings": {"width": 4, "epochs": 1}}))
    (d / "metrics.json").write_text(json.dumps({"test_mse": 20.0 + seed, "n_parameters": 10, "n_blocks": 1}))
    (d / "stages.json").write_text(json.dumps({"growth": [], "srl": []}))
    (d / "log.jsonl").write_text(json.dumps({"event": "epoch", "stage": 0, "epoch": 1, "train_loss": 1.0,
                                             "val_loss": 1.0, "wall_time_s": 0.1}) + "\n")
    return d


@pytest.mark.parametrize("content", ["", '{"test_mse": 1.', '{"test_mse": NaN}', "[]", '{"val_loss": 1.0}'])
def test_corrupt_metrics_is_not_a_finished_run(tmp_path, content):
    from problems.run import is_done

    d = _finished_run(tmp_path)
    config = json.loads((d / "config.json").read_text())
    assert is_done(d, config)
    (d / "metrics.json").write_text(content)
    assert not is_done(d, config)


def test_figures_reports_a_corrupt_run_and_draws_the_rest(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        _finished_run(runs, seed=seed)
    bad = _finished_run(runs, seed=2)
    (bad / "metrics.json").write_text('{"test_mse": 3')
    code = main(["figures", "--preset", "smoke", "--runs", str(runs), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert code != 0 and len(errors) == 1 and "seed_2 left out" in errors[0]
    assert "Traceback" not in captured.err + captured.out  # (a library WARNING line may accompany it)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "20.5" in summary  # the mean of the two readable seeds


@pytest.mark.parametrize("content,redone", [('{"test_mse": 1.0}', False), ('{"test_mse": 1.', True),
                                            ("", True), ('{"test_mse": Infinity}', True)])
def test_sweep_redoes_a_run_whose_metrics_are_corrupt(tmp_path, monkeypatch, content, redone):
    import problems.sweep as sweep_module
    from problems.run import run_config

    d = tmp_path / "boston" / "baseline" / "seed_0"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(run_config("boston", "baseline", 0, "smoke", None)))
    (d / "metrics.json").write_text(content)
    calls = []
    monkeypatch.setattr(sweep_module, "run", lambda *args, **kwargs: calls.append(args) or {"test_mse": 2.0})
    assert sweep_module.sweep("smoke", [0], ["boston"], ["baseline"], out_root=tmp_path) == 0
    assert bool(calls) == redone


def test_failed_rows_that_a_run_leaves_out_are_counted(heat_copy, capsys):
    from problems.heat import HeatProblem
    from problems.run import _note_failed_rows

    with h5py.File(heat_copy, "r+") as f:
        f["status"][[3, 9]] = store.FAILED
    _note_failed_rows(heat_copy, HeatProblem("smoke"))
    assert capsys.readouterr().err == f"note: {heat_copy}: 2 rows whose solve failed (status 2) are left out\n"


def _finished_transfer_run(root, seed, method="head", n_target=10):
    """A transfer run directory as `transfer` writes it (the files figures read)."""
    d = root / "transfer" / "wind" / method / f"n_{n_target}" / f"seed_{seed}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"problem": "wind", "method": method, "n_target": n_target,
                                              "seed": seed, "preset": "smoke", "settings": {"epochs": 1}}))
    (d / "metrics.json").write_text(json.dumps({"test_rel_l2": 0.25 + seed / 10, "pretrained_test_rel_l2": 0.5,
                                               "n_trainable": 10, "n_inserted": 0}))
    return d


def test_figures_reports_a_corrupt_transfer_run_and_draws_the_rest(tmp_path, capsys):
    runs = tmp_path / "runs"
    _finished_run(runs)
    for seed in (0, 1):
        _finished_transfer_run(runs, seed)
    (_finished_transfer_run(runs, 2) / "config.json").write_text('{"problem": "wind"')
    code = main(["figures", "--preset", "smoke", "--runs", str(runs), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert code != 0 and len(errors) == 1 and "seed_2 left out" in errors[0]
    assert "Traceback" not in captured.err + captured.out
    assert "0.3" in (tmp_path / "out" / "summary.md").read_text().split("### wind: transfer")[1]  # mean of seeds 0, 1
