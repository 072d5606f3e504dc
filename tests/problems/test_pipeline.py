"""The smoke pipeline end to end: sweep (every problem × method) -> figures -> summary.md.

The fast test runs the command line in process (``python -m problems sweep`` then ``figures``) on the
session's tiny datasets with the smoke presets shrunk (2 stages of 2 epochs, width 8); the slow one
runs ``make figures`` itself with one seed into a temporary directory (real smoke datasets and
presets: what a fresh checkout's ``make figures`` does, minus the second seed).
"""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from problems import mnist
from problems.cli import main
from problems.methods import METHODS, available
from problems.registry import PROBLEMS, problem_class
from tests.conftest import REPO

FIGURES = sorted(f"{p}_{kind}.png" for p in PROBLEMS
                 for kind in ("per_layer", "methods", "loss", *problem_class(p).figures))


def summary_rows(text: str) -> dict:
    """{problem: {method: {column: cell}}} from the tables of summary.md whose first column is ``method``."""
    rows, problem, header = {}, None, None
    for line in text.splitlines():
        if line.startswith("## "):
            problem, header = line[3:].strip(), None
            rows[problem] = {}
        elif line.startswith("| method |"):
            header = [c.strip() for c in line.strip("|").split("|")]
        elif not line.startswith("|"):
            header = None  # a table ends at its first other line (the problem's report may add tables)
        elif header and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[problem][cells[0]] = dict(zip(header, cells))
    return rows


def check_outputs(out: Path, n_seeds: int) -> None:
    """Every figure exists and is a PNG; summary.md has a row with finite numbers for every
    problem × method, over ``n_seeds`` seeds."""
    # the transfer figures (problems.transfer_figures, `make figures` only) are not per-problem figures
    written = sorted(p.name for p in (out / "figures").glob("*.png") if not p.name.startswith("transfer_"))
    assert written == FIGURES
    for name in FIGURES:
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    rows = summary_rows((out / "summary.md").read_text())
    assert sorted(k for k in rows if not k.startswith("Transfer")) == sorted(PROBLEMS)  # + `make`'s transfer section
    for problem in PROBLEMS:
        offered = [m for m in METHODS if available(problem_class(problem)("smoke"), m)]
        assert sorted(rows[problem]) == sorted(offered), problem
        for method, row in rows[problem].items():
            assert row["n"] == str(n_seeds), (problem, method)
            mean = float(row[problem_class(problem).metric].split("±")[0])
            assert np.isfinite(mean), (problem, method)


def _tiny_preset(settings: dict) -> dict:
    s = json.loads(json.dumps(settings))
    s.update(epochs=4, final_blocks=2, width=8)
    for m in ("layerwise", "layerwise_srl"):
        if m in s["methods"]:  # not on the CNN/ViT problems (problems.grids)
            s["methods"][m].update(manifold_copies=3)
    if "layerwise_srl" in s["methods"]:
        s["methods"]["layerwise_srl"]["srl_stages"] = 1
    s["methods"]["nas"]["n_trials"] = 2
    return s


def test_tiny_pipeline_writes_every_figure_and_every_summary_row(datasets, tiny_mnist, tmp_path, monkeypatch):
    for name in PROBLEMS:
        cls = problem_class(name)
        monkeypatch.setattr(cls, "presets", {**cls.presets, "smoke": _tiny_preset(cls.presets["smoke"])})
    monkeypatch.setattr(mnist.MnistProblem, "checksums", tiny_mnist[1])
    monkeypatch.setenv("MNIST_DIR", str(tiny_mnist[0]))
    data_dir = {Path(p).parent for p in datasets.values()}.pop()
    runs, out = tmp_path / "runs", tmp_path / "out"
    threads = torch.get_num_threads()
    try:
        assert main(["sweep", "--preset", "smoke", "--seeds", "0", "--data-dir", str(data_dir),
                     "--out-root", str(runs)]) == 0
        assert main(["figures", "--preset", "smoke", "--runs", str(runs), "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    check_outputs(out, n_seeds=1)


@pytest.mark.slow
def test_make_figures_smoke_one_seed(tmp_path):
    mnist_dir = next((d for d in (Path(REPO) / "data/mnist", Path(REPO).parent / "shared/datasets/mnist")
                      if any(d.glob("*.gz"))), None)
    if mnist_dir is None or shutil.which("make") is None:
        pytest.skip("needs make and the MNIST files (data/mnist or ../shared/datasets/mnist)")
    out = tmp_path / "out"
    result = subprocess.run(["make", "figures", "SEEDS=0", f"DATA_DIR={tmp_path / 'data'}",
                             f"RUNS_DIR={tmp_path / 'runs'}", f"FIGURES_DIR={out}", f"MNIST_DIR={mnist_dir}"],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    check_outputs(out, n_seeds=1)
