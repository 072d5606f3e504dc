"""`python -m pde_data`: every user error is one line on stderr, a non-zero exit, no traceback,
and leaves existing files untouched; `info` summarizes a dataset."""
import os

import h5py
import numpy as np
import pytest

from pde_data.cli import main
from tests.conftest import own_lines, run_cli

GEN = ["generate", "toy", "--preset", "smoke"]


def one_line_error(capsys, argv, expected_status=2):
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert status == expected_status
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


@pytest.mark.parametrize("argv,named", [
    (["generate", "nope", "--preset", "smoke", "--out", "x.h5"], "unknown problem 'nope'"),
    (["generate", "toy", "--preset", "huge", "--out", "x.h5"], "unknown preset 'huge'"),
    (GEN + ["--out", "x.h5", "sizes=3"], "unknown setting 'sizes'"),
    (GEN + ["--out", "x.h5", "size=big"], "invalid value 'big' for setting 'size'"),
    (GEN + ["--out", "x.h5", "n_obs=9"], "n_obs"),
    (GEN + ["--out", "x.h5", "--n-samples", "0"], "n_samples must be positive"),
    (GEN + ["--out", "x.h5", "--n-samples", "-4"], "n_samples must be positive"),
    (GEN + ["--out", "x.h5", "--n-samples", "many"], "--n-samples"),
    (GEN + ["--out", "x.h5", "--procs-per-sample", "0"], "procs-per-sample"),
    (GEN + ["--out", "x.h5", "--colour"], "--colour"),
    (GEN, "--out"),
    (GEN + ["--out", "missing/x.h5"], "cannot create missing/x.h5"),
])
def test_bad_generate_input_is_one_line(tmp_path, monkeypatch, capsys, toy_problem, argv, named):
    monkeypatch.chdir(tmp_path)
    assert named in one_line_error(capsys, argv)
    assert os.listdir(tmp_path) == []


def test_existing_output_is_refused_and_untouched(tmp_path, capsys, toy_problem):
    out = tmp_path / "toy.h5"
    assert main(GEN + ["--n-samples", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    before = (out.read_bytes(), os.stat(out).st_mtime_ns)
    assert "--overwrite" in one_line_error(capsys, GEN + ["--n-samples", "4", "--out", out])
    assert (out.read_bytes(), os.stat(out).st_mtime_ns) == before


def test_info_summarizes_a_dataset(tmp_path, capsys, toy_problem):
    out = tmp_path / "toy.h5"
    assert main(GEN + ["--n-samples", "5", "--out", str(out), "fail_every=2", "size=4"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    for expected in ("toy dataset, preset smoke, 5 samples", "3 done, 0 pending, 2 failed",
                     "/parameters", "(5, 4)", "/operators/identity", "noise_level = 0.01"):
        assert expected in text


def test_info_refuses_foreign_corrupt_text_and_missing_files(tmp_path, capsys, toy_problem):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    good = tmp_path / "good.h5"
    assert main(GEN + ["--n-samples", "3", "--out", str(good)]) == 0
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(good.read_bytes()[:3000])
    text = tmp_path / "text.h5"
    text.write_text("hello\n")
    capsys.readouterr()
    for path, named in ((foreign, "not a pde_data dataset"), (corrupt, "corrupt"),
                        (text, "not an HDF5 file"), (tmp_path / "missing.h5", "no such file")):
        before = path.read_bytes() if path.exists() else None
        assert named in one_line_error(capsys, ["info", path], expected_status=1)
        assert (path.read_bytes() if path.exists() else None) == before


@pytest.mark.parametrize("argv", [
    ["generate", "heat", "--preset", "huge", "--out", "x.h5"],
    ["generate", "heat", "--preset", "smoke", "--out", "x.h5", "mesh_n=fine"],
    ["info", "README.md"],
])
def test_real_command_prints_no_traceback(argv):
    result = run_cli(argv, toy=False)
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.mpi
def test_under_mpirun_only_rank_0_prints_and_every_rank_exits(tmp_path):
    out = tmp_path / "toy.h5"
    out.write_bytes(b"keep me")
    result = run_cli(GEN + ["--out", out], nprocs=2)
    assert result.returncode != 0
    assert own_lines(result.stderr) == [f"error: {out} exists (use --overwrite to replace it)"]
    assert out.read_bytes() == b"keep me"
