"""The generation driver: seeding contract, solver failures, resume after SIGKILL, MPI identity."""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from pde_data import store
from common.errors import ConfigError, DatasetError
from pde_data.generate import generate
from tests.conftest import REPO, TOY_MAIN, mpirun, ForwardModel as Toy, file_content, run_cli


def test_rows_are_the_model_solved_with_each_samples_own_seed(tmp_path, toy_problem):
    out = str(tmp_path / "toy.h5")
    report = generate("toy", "smoke", out, overrides={"size": "5"}, n_samples=7, seed=3,
                      log=lambda line: None)
    assert report.n_computed == 7 and report.n_failed == 0
    assert not os.path.exists(store.partial_path(out))
    data = store.read(out)
    model = Toy(Toy.settings("smoke", {"size": 5, "n_samples": 7}), None)
    for i in range(7):
        expected = model.solve(i, np.random.default_rng(np.random.SeedSequence(3, spawn_key=(i,))))
        for name, row in expected.items():
            np.testing.assert_array_equal(data.arrays[name][i], row)
    assert (data.arrays["status"] == store.DONE).all()
    assert data.attrs["base_seed"] == 3 and data.attrs["config"]["size"] == 5


def test_solver_failures_are_marked_counted_and_reported(tmp_path, toy_problem):
    lines = []
    report = generate("toy", "smoke", str(tmp_path / "toy.h5"), overrides={"fail_every": "3"},
                      n_samples=8, log=lines.append)
    assert report.failed == [2, 5] and report.n_failed == 2
    data = store.read(str(tmp_path / "toy.h5"))
    assert data.arrays["status"].tolist() == [1, 1, 2, 1, 1, 2, 1, 1]
    assert np.isnan(data.arrays["parameters"][[2, 5]]).all()
    assert "2 solver failures (status 2: 2, 5)" in lines[-1]


def test_existing_output_is_refused_untouched_and_replaced_with_overwrite(tmp_path, toy_problem):
    out = tmp_path / "toy.h5"
    generate("toy", "smoke", str(out), n_samples=3, log=lambda line: None)
    before = (out.read_bytes(), os.stat(out).st_mtime_ns)
    with pytest.raises(DatasetError, match="exists"):
        generate("toy", "smoke", str(out), n_samples=4, log=lambda line: None)
    assert (out.read_bytes(), os.stat(out).st_mtime_ns) == before
    generate("toy", "smoke", str(out), n_samples=4, overwrite=True, log=lambda line: None)
    assert store.read(str(out)).attrs["n_samples"] == 4


def test_partial_file_of_another_configuration_is_refused_untouched(tmp_path, toy_problem):
    out = tmp_path / "toy.h5"
    partial = tmp_path / "toy.h5.partial"
    generate("toy", "smoke", str(out), n_samples=3, seed=1, log=lambda line: None)
    os.rename(out, partial)
    before = (partial.read_bytes(), os.stat(partial).st_mtime_ns)
    with pytest.raises(DatasetError, match=r"base_seed 1 != 2.*--overwrite"):
        generate("toy", "smoke", str(out), n_samples=3, seed=2, log=lambda line: None)
    assert (partial.read_bytes(), os.stat(partial).st_mtime_ns) == before
    generate("toy", "smoke", str(out), n_samples=3, seed=2, overwrite=True, log=lambda line: None)
    assert store.read(str(out)).attrs["base_seed"] == 2 and not partial.exists()


def test_xdmf_export_for_the_first_samples_only(tmp_path, toy_problem):
    generate("toy", "smoke", str(tmp_path / "toy.h5"), n_samples=6, xdmf_dir=str(tmp_path / "x"),
             xdmf_count=4, log=lambda line: None)
    assert sorted(os.listdir(tmp_path / "x")) == [f"toy_{i}.txt" for i in range(4)]


def test_procs_per_sample_must_divide_the_processes(tmp_path, toy_problem):
    with pytest.raises(ConfigError, match="procs-per-sample 2"):
        generate("toy", "smoke", str(tmp_path / "toy.h5"), procs_per_sample=2)


def _descendants(pid):
    """Process ids of every descendant of `pid` (from /proc)."""
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _alive(pid):
    """Whether process `pid` still runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _done_rows(path):
    with h5py.File(path, "r") as f:
        return set(np.flatnonzero(f["status"][()] != store.PENDING).tolist())


def _solved(log_path):
    with open(log_path) as log:
        return [int(line) for line in log]


@pytest.mark.parametrize("nprocs", [None, pytest.param(2, marks=pytest.mark.mpi)])
def test_sigkill_then_same_command_resumes_without_recomputing(tmp_path, nprocs):
    """Kill a run (1 process, or an mpirun job) mid-way with SIGKILL; rerun the same command."""
    log = tmp_path / "solves.log"
    out, reference = tmp_path / "toy.h5", tmp_path / "reference.h5"
    args = ["generate", "toy", "--preset", "smoke", "--n-samples", "30", "delay_s=0.04",
            "fail_every=7", f"solve_log={log}"]
    assert run_cli(args + ["--out", reference]).returncode == 0
    log.unlink()
    out.write_bytes(b"previous version")  # --overwrite must keep it until the new file is complete

    command = [sys.executable, "-c", TOY_MAIN] + args + ["--out", str(out), "--overwrite"]
    if nprocs:
        command = mpirun(nprocs) + command
    job = subprocess.Popen(command, cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (log.exists() and len(_solved(log)) >= 8) and time.time() < deadline:
        time.sleep(0.02)
    processes = [job.pid] + _descendants(job.pid)  # mpirun's ranks too: it would not take them down
    for pid in processes:
        os.kill(pid, signal.SIGKILL)
    job.wait()
    while any(_alive(pid) for pid in processes):
        time.sleep(0.01)
    assert out.read_bytes() == b"previous version"
    done = _done_rows(store.partial_path(out))
    assert 0 < len(done) < 30, "the kill should land mid-way"

    solved_before = len(_solved(log))
    result = run_cli(args + ["--out", out, "--overwrite"])
    assert result.returncode == 0, result.stderr
    assert sorted(_solved(log)[solved_before:]) == sorted(set(range(30)) - done)
    assert file_content(out) == file_content(reference)
    assert not os.path.exists(store.partial_path(out))


@pytest.mark.mpi
@pytest.mark.parametrize("nprocs,per_sample", [(2, 1), (3, 1), (2, 2)])
def test_mpi_file_is_identical_to_one_process(tmp_path, nprocs, per_sample):
    args = ["generate", "toy", "--preset", "smoke", "--n-samples", "11", "fail_every=4", "size=9"]
    assert run_cli(args + ["--out", tmp_path / "one.h5"]).returncode == 0
    result = run_cli(args + ["--out", tmp_path / "many.h5", "--procs-per-sample", per_sample], nprocs=nprocs)
    assert result.returncode == 0, result.stderr
    assert file_content(tmp_path / "many.h5") == file_content(tmp_path / "one.h5")


@pytest.mark.mpi
def test_mpi_heat_file_is_identical_to_one_process(tmp_path):
    args = ["generate", "heat", "--preset", "smoke", "--n-samples", "6", "mesh_n=6", "prior=bilaplacian", "sensors=random"]
    one = run_cli(args + ["--out", tmp_path / "one.h5"], toy=False)
    assert one.returncode == 0, one.stderr
    two = run_cli(args + ["--out", tmp_path / "two.h5"], nprocs=2, toy=False)
    assert two.returncode == 0, two.stderr
    assert file_content(tmp_path / "two.h5") == file_content(tmp_path / "one.h5")
