"""The benchmark harness (`make bench-smoke`): every topic runs at toy size and reports well-formed
entries, and the harness writes its table and JSON. No assertion on any timing."""
import json
import math
import os
import subprocess
import sys
import types

import pytest

from bench import __main__ as harness

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = {"name": str, "value": float, "repeats": list, "unit": str, "target": str, "detail": str}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One `python -m bench --scale smoke` run: (CompletedProcess, output directory)."""
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run([sys.executable, "-m", "bench", "--scale", "smoke", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    return result, out


def test_smoke_run_succeeds_and_writes_table_and_json(smoke):
    result, out = smoke
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "bench-smoke.json").read_text())
    assert report["scale"] == "smoke"
    assert {"cores", "cpu", "torch", "dolfinx"} <= set(report["machine"])
    table = (out / "bench-smoke.md").read_text()
    for entry in report["entries"]:
        assert entry["name"] in table


def test_every_topic_reports_entries(smoke):
    _, out = smoke
    topics = {e["topic"] for e in json.loads((out / "bench-smoke.json").read_text())["entries"]}
    assert topics == set(harness.topics())


def test_entries_are_well_formed(smoke):
    _, out = smoke
    for entry in json.loads((out / "bench-smoke.json").read_text())["entries"]:
        for key, kind in KEYS.items():
            assert isinstance(entry[key], kind if kind is not float else (int, float)), (entry["name"], key)
        if entry["detail"].startswith("skipped"):  # e.g. no CUDA: NaN, never a crash
            assert entry["repeats"] == [] and math.isnan(entry["value"])
            continue
        assert entry["repeats"], entry["name"]
        assert all(math.isfinite(v) for v in entry["repeats"] + [entry["value"]]), entry["name"]
        assert min(entry["repeats"]) <= entry["value"] <= max(entry["repeats"]), entry["name"]
        if entry["target"]:
            assert harness.target_met(entry["value"], entry["target"]) in ("yes", "no")


def test_gpu_comparison_code_path_runs_on_the_cpu():
    """Without a GPU, compare the CPU with itself: the entries are well formed and the two runs agree
    exactly (same batches, same arithmetic)."""
    torch = pytest.importorskip("torch")
    from bench import gpu

    speedup, agreement = gpu.compare(torch.device("cpu"), "smoke")
    assert speedup["value"] > 0 and len(speedup["repeats"]) == gpu.SIZES["smoke"][-1]
    assert agreement["value"] == 0.0


def test_target_met():
    assert harness.target_met(1.2, "<= 1.3") == "yes"
    assert harness.target_met(1.7, ">= 1.8") == "no"
    assert harness.target_met(5.0, "") == ""


def test_failing_topic_is_reported_not_raised(monkeypatch):
    broken = types.ModuleType("bench.broken")

    def entries(scale):
        raise RuntimeError("boom\nsecond line")

    broken.entries = entries
    monkeypatch.setitem(sys.modules, "bench.broken", broken)
    found, failed = harness.run_topic("broken", "smoke")
    assert failed
    assert found[0]["name"] == "broken: FAILED" and found[0]["detail"] == "RuntimeError: boom"
    assert math.isnan(found[0]["value"])


def test_unknown_topic_is_refused(capsys):
    assert harness.main(["--only", "nonesuch", "--out", "unused"]) == 2
    assert "nonesuch" in capsys.readouterr().err
