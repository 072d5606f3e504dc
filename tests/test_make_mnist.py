"""`make figures` on a machine without MNIST and without network: every other problem is run and
drawn, MNIST is skipped, and the command ends with one line saying what is missing and how to
provide it, and a non-zero exit (the sweeps are stood in for by finished `sweep.done` stamps)."""
import json
import os
import subprocess

from tests.conftest import REPO
from tests.problems.test_hostile import _finished_run


def test_make_figures_without_mnist_draws_the_rest_and_fails_at_the_end(tmp_path):
    runs, data = tmp_path / "runs", tmp_path / "data"
    data.mkdir()
    for problem in ("heat", "navier_stokes", "wind"):
        (data / f"{problem}.h5").write_bytes(b"")
    _finished_run(runs)
    for problem in ("heat", "navier_stokes", "wind", "boston", "navier_stokes_cnn"):
        (runs / problem).mkdir(parents=True, exist_ok=True)
        (runs / problem / "sweep.done").write_text("")
    for problem in ("navier_stokes", "wind"):  # the PDE transfer pairs, stood in for likewise
        (data / "transfer").mkdir(exist_ok=True)
        (data / "transfer" / f"{problem}.h5").write_bytes(b"")
        (runs / "transfer" / problem).mkdir(parents=True)
        (runs / "transfer" / problem / "sweep.done").write_text("")
    offline = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": ""}
    result = subprocess.run(
        ["make", "-o", ".venv/.setup-done", "figures", f"RUNS_DIR={runs}", f"DATA_DIR={data}",
         f"FIGURES_DIR={tmp_path / 'figures'}", f"MNIST_DIR={tmp_path / 'no-mnist'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, **offline})
    assert result.returncode != 0
    assert "mnist: skipped" in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: MNIST was skipped")]
    assert len(errors) == 1 and "download-mnist" in errors[0] and "MNIST_DIR" in errors[0]
    assert "Traceback" not in result.stderr
    assert (tmp_path / "figures" / "summary.md").is_file()
    assert not (runs / "mnist" / "sweep.done").exists()
    assert "mnist transfer: skipped" in result.stderr and not (runs / "transfer" / "mnist" / "sweep.done").exists()
    assert json.loads((runs / "boston" / "baseline" / "seed_0" / "metrics.json").read_text())["test_mse"] == 20.0
