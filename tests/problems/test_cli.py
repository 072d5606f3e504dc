"""`python -m problems run|sweep`: the files of a run, one-line errors, resuming sweeps."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from problems.heat import HeatProblem
from tests.conftest import REPO


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "problems", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def assert_one_line_error(result, *words):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_run_writes_every_file(datasets, tmp_path):
    out = tmp_path / "run"
    result = cli("run", "heat", "--method", "random", "--seed", "1", "--preset", "smoke", "--data", datasets["heat"],
                 "--out", out)
    assert result.returncode == 0, result.stderr
    for name in ("config.json", "meta.json", "log.jsonl", "metrics.json", "network.pt", "predictions.npz"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_mse", "test_rel_l2", "val_loss", "n_parameters", "n_blocks", "wall_time_s"):
        assert key in metrics
    meta = json.loads((out / "meta.json").read_text())
    assert meta["command_line"][3:5] == ["run", "heat"] and meta["seeds"]["torch"] == 1
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "epoch" for r in log) == metrics["n_epochs"] <= HeatProblem.presets["smoke"]["epochs"]
    pred = np.load(out / "predictions.npz")
    assert pred["test_prediction"].shape == pred["test_target"].shape and pred["test_target"].shape[1] == 100
    rel = np.linalg.norm(pred["test_prediction"] - pred["test_target"], axis=1)
    assert np.all(np.isfinite(rel)) and len(pred["snapshot_stage"]) == metrics["n_stages"]
    again = cli("run", "heat", "--method", "random", "--preset", "smoke", "--data", datasets["heat"], "--out", out)
    assert_one_line_error(again, "--overwrite")


@pytest.mark.parametrize("args, words", [
    (["run", "heat", "--method", "magic", "--preset", "smoke"], ["unknown method", "magic"]),
    (["run", "fluid", "--method", "random", "--preset", "smoke"], ["unknown problem", "fluid"]),
    (["run", "heat", "--method", "random", "--preset", "huge"], ["unknown preset", "huge"]),
    (["run", "heat", "--method", "random", "--preset", "smoke", "--data", "/nonexistent.h5"], ["no such file"]),
    (["run", "heat", "--method", "random", "--preset", "smoke"], ["needs --data"]),
    (["run", "heat", "--preset", "smoke"], ["--method"]),
    (["sweep", "--preset", "smoke", "--methods", "magic"], ["unknown method"]),
])
def test_user_errors_are_one_line(tmp_path, args, words):
    assert_one_line_error(cli(*args, "--out", tmp_path / "o") if args[0] == "run" else cli(*args), *words)


def test_run_out_that_is_a_file_is_refused(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("")
    assert_one_line_error(cli("run", "boston", "--method", "baseline", "--preset", "smoke", "--out", taken),
                          "not a directory")
    assert_one_line_error(cli("run", "boston", "--method", "baseline", "--preset", "smoke", "--out", taken,
                              "--overwrite"), "not a directory")
    assert taken.is_file()


def test_foreign_and_invalid_datasets_are_refused(datasets, tmp_path):
    result = cli("run", "wind", "--method", "random", "--preset", "smoke", "--data", datasets["heat"], "--out", tmp_path / "a")
    assert_one_line_error(result, "heat", "wind")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    assert_one_line_error(cli("run", "heat", "--method", "random", "--preset", "smoke", "--data", junk,
                              "--out", tmp_path / "b"), "not an HDF5 file")


def test_sweep_resumes(datasets, tmp_path):
    args = ["sweep", "--preset", "smoke", "--problems", "heat", "--methods", "baseline", "net2deeper",
            "--seeds", "0", "--data-dir", os.path.dirname(datasets["heat"]), "--out-root", tmp_path]
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "heat" / "baseline" / "seed_0" / "metrics.json").is_file()
    stamp = (tmp_path / "heat" / "baseline" / "seed_0" / "metrics.json").stat().st_mtime_ns
    second = cli(*args)
    assert second.returncode == 0 and second.stdout.count("done before") == 2, second.stdout
    assert (tmp_path / "heat" / "baseline" / "seed_0" / "metrics.json").stat().st_mtime_ns == stamp


def test_refused_overwrite_keeps_the_existing_run(datasets, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    result = cli("run", "wind", "--method", "random", "--preset", "smoke", "--data", datasets["heat"],
                 "--out", out, "--overwrite")
    assert_one_line_error(result, "heat", "wind")
    assert (out / "metrics.json").read_text() == "{}"
    assert not (tmp_path / "run.partial").exists()


def test_sweep_goes_on_after_a_crashing_run(monkeypatch, tmp_path, capsys):
    import problems.sweep as sweep_module

    calls = []

    def crash_first(problem, method, *args, **kwargs):
        calls.append(method)
        if len(calls) == 1:
            raise RuntimeError("boom\nsecond line")
        return {"test_mse": 1.0}

    monkeypatch.setattr(sweep_module, "run", crash_first)
    status = sweep_module.sweep("smoke", [0], ["boston"], ["baseline", "random"], out_root=tmp_path)
    assert status == 1 and calls == ["baseline", "random"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RuntimeError: boom" in err[0] and "second line" not in err[0]
    assert "Traceback" in (tmp_path / "sweep-errors.log").read_text()
