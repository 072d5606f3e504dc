"""scripts/compare_runs.py: roundoff for float64 and for one torch build, the measured tolerance for
float32 across torch builds."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare_runs.py"
METRICS = {"test_mse": 0.25, "test_rel_l2": 0.5, "val_loss": 0.125, "n_parameters": 1196,
           "n_epochs": 300, "stop_reason": "max stages", "wall_time_s": 6.9}


def write_run(root: Path, torch: str, dtype: str = "float32", **changes) -> None:
    for name in ("heat/topological/seed_0", "wind/random/seed_1"):
        run = root / name
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({**METRICS, **changes}))
        (run / "meta.json").write_text(json.dumps({"versions": {"torch": torch, "numpy": "2.2.4"}}))
        (run / "config.json").write_text(json.dumps({"settings": {"dtype": dtype, "width": 16}}))


def compare(tmp_path: Path, torch_a: str, torch_b: str, dtype: str = "float32", **changes) -> subprocess.CompletedProcess:
    write_run(tmp_path / "a", torch_a, dtype)
    write_run(tmp_path / "b", torch_b, dtype, **changes)
    return subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "a"), str(tmp_path / "b")],
                          capture_output=True, text=True)


def test_same_torch_agrees_to_roundoff(tmp_path):
    result = compare(tmp_path, "2.13.0+cpu", "2.13.0+cpu", val_loss=0.125 * (1 + 3e-14), wall_time_s=99.0)
    assert result.returncode == 0, result.stdout
    assert "same metrics (6 numbers in 2 runs, torch 2.13.0+cpu vs 2.13.0+cpu)" in result.stdout


def test_same_torch_refuses_more_than_roundoff(tmp_path):
    result = compare(tmp_path, "2.6.0", "2.6.0", val_loss=0.125 * (1 + 1e-5))
    assert result.returncode == 1
    assert result.stdout.count("differs:") == 2 and "val_loss" in result.stdout


@pytest.mark.parametrize("relative, code", [(3.5e-3, 0), (1.4e-2, 0), (6e-2, 1)])
def test_float32_across_torch_builds_uses_the_measured_tolerance(tmp_path, relative, code):
    result = compare(tmp_path, "2.13.0+cpu", "2.6.0+debian", test_mse=0.25 * (1 + relative))
    assert result.returncode == code, result.stdout
    assert f"largest relative difference: float32 {relative / (1 + relative):.2e}" in result.stdout


def test_float64_is_held_to_roundoff_across_torch_builds(tmp_path):
    assert compare(tmp_path / "1", "2.13.0+cpu", "2.6.0+debian", "float64", test_mse=0.25 * (1 + 1e-10)).returncode == 0
    result = compare(tmp_path / "2", "2.13.0+cpu", "2.6.0+debian", "float64", test_mse=0.25 * (1 + 1e-7))
    assert result.returncode == 1 and "heat/topological/seed_0 (float64, torch 2.13.0+cpu vs 2.6.0+debian)" in result.stdout


def test_integers_and_text_must_be_equal(tmp_path):
    result = compare(tmp_path, "2.13.0+cpu", "2.6.0+debian", n_parameters=1197, stop_reason="no improvement")
    assert result.returncode == 1
    assert "n_parameters: 1196 vs 1197" in result.stdout and "stop_reason" in result.stdout


def test_a_missing_run_is_a_difference(tmp_path):
    write_run(tmp_path / "a", "2.6.0")
    write_run(tmp_path / "b", "2.6.0")
    (tmp_path / "b" / "wind/random/seed_1/metrics.json").unlink()
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "a"), str(tmp_path / "b")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "wind/random/seed_1: only in" in result.stdout


def test_bad_arguments_are_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([sys.executable, str(SCRIPT), str(empty), str(empty)], capture_output=True, text=True)
    assert result.returncode == 2 and "no finished run" in result.stderr
