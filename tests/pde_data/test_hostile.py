"""The generator under hostile use: every bad input or fault is one line `error: ...`, a non-zero
exit, no traceback, no existing file changed and nothing left behind; two runs never write one
file; a resume never mixes inputs; an interrupt says how to resume."""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from pde_data import store
from pde_data.cli import main
from tests.conftest import (REPO, TOY_MAIN, file_content, launcher_keeps_output_after_signal, mpirun, own_lines,
                            run_cli)
from tests.hostile import assert_one_line_error, tree

GEN = ["generate", "toy", "--preset", "smoke"]


def refused(capsys, root, argv, named, status=None):
    """Run `python -m pde_data ARGV` in this process and check the refusal leaves `root` as it was."""
    before = tree(root)
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert_one_line_error(code, captured.err, named, captured.out)
    if status is not None:
        assert code == status
    assert tree(root) == before


@pytest.mark.parametrize("extra,named", [
    (["--seed", "-1"], "--seed must be a non-negative integer"),
    (["size=4", "size=5"], "setting 'size' is given twice"),
    (["--n-samples", "5", "n_samples=7"], "given twice (--n-samples and n_samples=)"),
    (["noise=inf"], "setting 'noise' must be finite"),
    (["noise=nan"], "setting 'noise' must be finite"),
    (["--n-samples", "1000000000000"], "are free there"),
    (["--xdmf", "/proc/no/such/dir"], "--xdmf /proc/no/such/dir: cannot create it"),
    (["--xdmf-count", "-1"], "--xdmf-count must be >= 0"),
    (["offset_file=missing.txt"], "setting 'offset_file': cannot read missing.txt"),
    (["--procs-per-sample", "3"], "does not divide"),
])
def test_bad_generate_input_is_refused_before_any_file_exists(tmp_path, monkeypatch, capsys, toy_problem,
                                                               extra, named):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("unrelated\n")
    refused(capsys, tmp_path, GEN + ["--out", "toy.h5"] + extra, named, status=2)


def test_seed_minus_one_does_not_block_seed_zero(tmp_path, monkeypatch, capsys, toy_problem):
    monkeypatch.chdir(tmp_path)
    refused(capsys, tmp_path, GEN + ["--out", "toy.h5", "--seed", "-1"], "--seed")
    assert main(GEN + ["--out", "toy.h5", "--seed", "0", "--n-samples", "3"]) == 0


def test_xdmf_naming_a_file_is_refused(tmp_path, monkeypatch, capsys, toy_problem):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fields").write_text("a file\n")
    refused(capsys, tmp_path, GEN + ["--out", "toy.h5", "--xdmf", "fields"], "--xdmf fields exists and is not a directory")


def test_out_naming_a_directory_is_refused_before_computing(tmp_path, monkeypatch, capsys, toy_problem):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "old.h5").write_bytes(b"keep")
    refused(capsys, tmp_path, GEN + ["--out", "data", "--overwrite", "solve_log=solves.log"], "data is a directory")


def test_info_on_a_directory_says_so(tmp_path, capsys):
    refused(capsys, tmp_path, ["info", tmp_path], "is a directory", status=1)


@pytest.mark.parametrize("setting,named", [
    ("speed_range=[3,1e400]", "setting 'speed_range' must be finite"),
    ("noise_std=inf", "setting 'noise_std' must be finite"),
    ("length_x=inf", "setting 'length_x' must be finite"),
    ("hill_width=-3", "hill_width"),
    ("mesh_shape=[4,4]", "mesh_shape"),
])
def test_wind_settings_must_be_finite_and_in_range(tmp_path, monkeypatch, capsys, setting, named):
    monkeypatch.chdir(tmp_path)
    refused(capsys, tmp_path, ["generate", "wind", "--preset", "smoke", "--out", "w.h5", setting], named)


@pytest.mark.parametrize("problem,setting", [
    ("heat", "noise_level=inf"), ("heat", "source=nan"), ("navier_stokes", "forcing_amplitude=-inf"),
    ("navier_stokes", "viscosity=nan"),
])
def test_every_forward_model_refuses_non_finite_floats(tmp_path, monkeypatch, capsys, problem, setting):
    monkeypatch.chdir(tmp_path)
    refused(capsys, tmp_path, ["generate", problem, "--preset", "smoke", "--out", "x.h5", setting], "must be finite")


def test_disk_estimate_counts_every_row():
    layout = {"parameters": 10, "observations": 3}
    assert store.file_size(1000, layout, {"g": np.zeros(5)}) == 8 * 1000 * 13 + 1000 + 40 + store.METADATA_BYTES


def test_changed_input_file_blocks_the_resume(tmp_path, monkeypatch, capsys, toy_problem):
    """Kill-and-resume with an edited input file would mix two inputs' rows: refused, naming it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "offset.txt").write_text("1.0\n")
    args = GEN + ["--n-samples", "4", "offset_file=offset.txt", "--out", "toy.h5"]
    assert main(args) == 0
    os.rename("toy.h5", store.partial_path("toy.h5"))  # a finished file is a valid work file
    with h5py.File(store.partial_path("toy.h5"), "r+") as f:
        f["status"][2:] = store.PENDING
    (tmp_path / "offset.txt").write_text("2.0\n")
    capsys.readouterr()
    refused(capsys, tmp_path, args, "the file named by offset_file has changed")
    (tmp_path / "offset.txt").write_text("1.0\n")
    assert main(args) == 0


def _wait_for_lines(path, n, deadline_s=60):
    deadline = time.time() + deadline_s
    while not (path.exists() and len(path.read_text().splitlines()) >= n) and time.time() < deadline:
        time.sleep(0.02)


def test_second_writer_is_refused_even_with_overwrite(tmp_path, capsys, toy_problem):
    """While one run writes F.partial, a second run on F is refused (with or without --overwrite),
    naming the first run's pid; the first run then publishes a complete file."""
    log, out = tmp_path / "solves.log", tmp_path / "toy.h5"
    args = GEN + ["--n-samples", "40", "delay_s=0.1", f"solve_log={log}", "--out", str(out)]
    first = subprocess.Popen([sys.executable, "-c", TOY_MAIN] + args, cwd=REPO, env=dict(os.environ),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lines(log, 3)
        for extra in ([], ["--overwrite"]):
            assert first.poll() is None
            code = main(args + extra)
            assert_one_line_error(code, capsys.readouterr().err,
                                  f"another run is writing {out}.partial (pid {first.pid})")
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        first.kill()
    with h5py.File(out, "r") as f:
        assert np.all(f["status"][()] == store.DONE)
    assert sorted(os.listdir(tmp_path)) == ["solves.log", "toy.h5"]


def _default_sigint():
    """A shell starts background jobs with SIGINT ignored and children inherit that; a user's
    terminal delivers Ctrl-C to a process with the default disposition, so the test restores it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("nprocs", [None, pytest.param(2, marks=pytest.mark.mpi)])
def test_ctrl_c_says_how_to_resume_and_the_same_command_finishes(tmp_path, nprocs):
    """SIGINT to the process (or to mpirun, which passes it on to the ranks): the partial file is
    kept and the same command finishes it bit for bit; the one-line advice and the ranks' cleanup are
    asserted where the launcher delivers the ranks' output after a signal (not Open MPI 5's or 6's,
    see :func:`tests.conftest.launcher_keeps_output_after_signal`)."""
    log, out, reference = tmp_path / "solves.log", tmp_path / "toy.h5", tmp_path / "reference.h5"
    # long enough (6 s of solves) that the signal always lands mid-run, however loaded the machine
    args = GEN + ["--n-samples", "200", "delay_s=0.03", f"solve_log={log}"]
    assert run_cli(args + ["--out", reference]).returncode == 0
    log.unlink()
    launcher = mpirun(nprocs) if nprocs else []
    job = subprocess.Popen(launcher + [sys.executable, "-c", TOY_MAIN] + args + ["--out", str(out)],
                           cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    _wait_for_lines(log, 5)
    assert job.poll() is None, "the run finished before it could be interrupted"
    job.send_signal(signal.SIGINT)
    stdout, stderr = job.communicate(timeout=60)
    assert job.returncode != 0
    kept = ["reference.h5", "solves.log", "toy.h5.partial"]
    if launcher_keeps_output_after_signal(nprocs):
        assert own_lines(stderr) == ["error: interrupted; run the same command again to resume"], stderr
        assert sorted(os.listdir(tmp_path)) == kept
    else:  # the ranks may be killed before they clean up, as after SIGKILL: a stale lock file may stay
        assert own_lines(stderr) == [], stderr
        assert sorted(set(os.listdir(tmp_path)) - {"toy.h5.partial.lock"}) == kept
    assert run_cli(args + ["--out", out]).returncode == 0
    assert file_content(out) == file_content(reference)


@pytest.mark.mpi
def test_bad_seed_under_mpirun_is_one_line_and_leaves_nothing(tmp_path):
    before = tree(tmp_path)
    result = run_cli(GEN + ["--out", tmp_path / "toy.h5", "--seed", "-1"], nprocs=2)
    assert result.returncode != 0
    assert own_lines(result.stderr) == ["error: --seed must be a non-negative integer, got -1"], result.stderr
    assert tree(tmp_path) == before


def test_form_compilation_keeps_the_console_to_progress_lines(tmp_path):
    """A fresh form cache makes FFCx compile; its compiler INFO lines must not reach the console."""
    result = run_cli(["generate", "heat", "--preset", "smoke", "--n-samples", "1", "mesh_n=2", "n_modes=2",
                      "prior=bilaplacian", "sensors=random",
                      "--out", tmp_path / "h.h5"], toy=False, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path / "cache"), "the forms were not compiled afresh"
    assert all(line.startswith("generate: ") for line in result.stderr.splitlines()), result.stderr


def test_file_system_without_locks_warns_in_one_line_and_generates(tmp_path, monkeypatch, capsys, toy_problem):
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert main(GEN + ["--n-samples", "3", "--out", str(tmp_path / "toy.h5")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cannot lock files" in warnings[0]
    assert sorted(os.listdir(tmp_path)) == ["toy.h5"]
