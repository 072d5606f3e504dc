"""`python -m problems transfer`: one-line refusal of mismatched shapes, the run files, resume, the
source cache, exact insertion counts, the MNIST digit tasks, the frozen-head floor, and why a
single inserted neuron trains alone."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import growth
from problems.base import Standardizer
from problems.mnist import MnistProblem
from problems.transfer import frozen_head_floor, load_pair, run_transfer, target_data
from tests.conftest import REPO
from tests.problems.test_cli import assert_one_line_error, cli


@pytest.fixture(scope="module")
def coarse_navier_stokes(tmp_path_factory):
    """A Navier–Stokes dataset observed and predicted on an 8×8 grid (the session one uses 16×16)."""
    path = tmp_path_factory.mktemp("coarse") / "ns8.h5"
    subprocess.run([sys.executable, "-m", "pde_data", "generate", "navier_stokes", "--preset", "smoke",
                    "--n-samples", "12", "--out", str(path), "grid_n=8"],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    return path


def test_mismatched_shapes_are_refused_in_one_line(datasets, coarse_navier_stokes, tmp_path):
    result = cli("transfer", "navier_stokes", "--source-data", datasets["navier_stokes"], "--target-data",
                 coarse_navier_stokes, "--method", "head", "--n-target", "4", "--out", tmp_path / "run")
    assert_one_line_error(result, "sensor count", "grid")
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


def test_unknown_method_and_too_few_samples_are_refused(datasets, tmp_path):
    ns = datasets["navier_stokes"]
    assert_one_line_error(cli("transfer", "navier_stokes", "--source-data", ns, "--target-data", ns, "--method",
                              "magic", "--n-target", "4", "--out", tmp_path / "a"), "magic")
    assert_one_line_error(cli("transfer", "navier_stokes", "--source-data", ns, "--target-data", ns, "--method",
                              "head", "--n-target", "2", "--out", tmp_path / "b"), "n-target")


def test_transfer_run_files_resume_and_source_cache(datasets, tmp_path):
    ns = datasets["navier_stokes"]
    cache = tmp_path / "source"
    first = run_transfer("navier_stokes", "topological", 6, 0, "smoke", ns, ns, tmp_path / "td", cache=cache)
    for name in ("config.json", "meta.json", "log.jsonl", "network.pt", "metrics.json"):
        assert (tmp_path / "td" / name).is_file(), name
    assert not (tmp_path / "td.partial").exists()
    assert first["n_train"] + first["n_val"] == 6 and first["n_inserted"] >= 1
    cached = (cache / "network.pt").stat().st_mtime_ns
    metrics_file = (tmp_path / "td" / "metrics.json").stat().st_mtime_ns
    assert run_transfer("navier_stokes", "topological", 6, 0, "smoke", ns, ns, tmp_path / "td", cache=cache) == first
    assert (tmp_path / "td" / "metrics.json").stat().st_mtime_ns == metrics_file  # resumed: not redone
    exact = run_transfer("navier_stokes", "random", 6, 0, "smoke", ns, ns, tmp_path / "rnd", cache=cache,
                         insertions=first["n_inserted"])
    assert exact["n_inserted"] == first["n_inserted"]
    assert (cache / "network.pt").stat().st_mtime_ns == cached  # the source network was trained once
    lora = run_transfer("navier_stokes", "lora", 6, 0, "smoke", ns, ns, tmp_path / "lora", cache=cache)
    assert lora["n_trainable"] < lora["n_parameters"]
    assert json.loads((tmp_path / "lora" / "config.json").read_text())["method"] == "lora"
    # a user's own saved network: adapted as it is; one that does not fit the data is refused in one line
    own = run_transfer("navier_stokes", "head", 6, 0, "smoke", ns, ns, tmp_path / "own",
                       source_network_path=cache / "network.pt")
    assert own["pretrained_test_rel_l2"] == first["pretrained_test_rel_l2"]
    wind = datasets["wind"]
    assert_one_line_error(cli("transfer", "wind", "--source-data", wind, "--target-data", wind, "--method", "head",
                              "--n-target", "4", "--source-network", cache / "network.pt", "--out", tmp_path / "w"),
                          "source-network", "inputs")


def test_mnist_digit_tasks(tiny_mnist):
    class TinyMnist(MnistProblem):
        checksums = tiny_mnist[1]

    problem = TinyMnist("smoke")
    source, target = load_pair(problem, tiny_mnist[0], tiny_mnist[0])
    assert set(source.y_train.tolist()) == set(range(5)) and set(target.y_train.tolist()) == set(range(5))
    assert source.info["classes"] == [0, 1, 2, 3, 4] and target.info["classes"] == [5, 6, 7, 8, 9]
    full = problem.load(tiny_mnist[0])
    assert len(source.x_train) + len(target.x_train) == len(full.x_train)
    small = target_data(source, target, 10, 0, classification=True)
    bigger = target_data(source, target, 20, 0, classification=True)
    assert torch.equal(small.x_val, bigger.x_val[:2])  # nested in N, validation rows first
    assert torch.equal(torch.cat([small.x_val, small.x_train]), torch.cat([bigger.x_val, bigger.x_train])[:10])


def test_sweep_matches_insertion_counts_and_figures_draw_it(datasets, tmp_path):
    ns = datasets["navier_stokes"]
    result = cli("transfer-sweep", "navier_stokes", "--source-data", ns, "--target-data", ns, "--preset", "smoke",
                 "--sizes", "6", "--methods", "head", "topological", "random", "--out-root", tmp_path / "transfer")
    assert result.returncode == 0, result.stderr
    runs = tmp_path / "transfer" / "navier_stokes"
    counts = {m: json.loads((runs / m / "n_6" / "seed_0" / "metrics.json").read_text())["n_inserted"]
              for m in ("topological", "random")}
    assert counts["random"] == counts["topological"] >= 1
    result = cli("figures", "--preset", "smoke", "--runs", tmp_path, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "figures" / "transfer_navier_stokes.png").is_file()
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "### navier_stokes: transfer" in summary
    table = summary.split("| method | N = 6 | trainable")[1].split("\n\n")[0]
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| head", "| topological", "| random"]
    assert "Lowest error any method that keeps the source head frozen" in summary
    paired = summary.split("minus that of topological (")[1].split("\n\n")[1]
    assert [line.split(" | ")[0] for line in paired.splitlines()[2:]] == ["| head", "| random"]
    errors = {m: json.loads((runs / m / "n_6" / "seed_0" / "metrics.json").read_text())["test_rel_l2"]
              for m in ("head", "topological")}
    assert f"{errors['head'] - errors['topological']:+.3g} ± 0 (" in paired.splitlines()[2]


def test_frozen_head_floor_is_the_projection_on_the_head_range():
    """A residual inside the head's column space is removed exactly (fraction 1); a general one only
    in its projection, weighted by the standardizer's scales, which leaves the orthogonal part."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(12, 3, generator=generator, dtype=torch.float64)
    prediction = torch.randn(5, 12, generator=generator, dtype=torch.float64)
    scaler = Standardizer(np.zeros(12), np.linspace(0.5, 2.0, 12))
    reachable = prediction + torch.randn(5, 3, generator=generator, dtype=torch.float64) @ weight.T
    floor, fraction = frozen_head_floor(weight, prediction, reachable, scaler)
    assert torch.allclose(floor, reachable) and fraction == pytest.approx(1.0)
    targets = torch.randn(5, 12, generator=generator, dtype=torch.float64)
    floor, fraction = frozen_head_floor(weight, prediction, targets, scaler)
    s = torch.as_tensor(scaler.std)
    left = s * (targets - floor)
    assert torch.allclose((s[:, None] * weight).T @ left.T, torch.zeros(3, 5, dtype=torch.float64), atol=1e-10)  # orthogonal
    assert torch.allclose((floor - prediction) @ torch.linalg.pinv(weight).T @ weight.T, floor - prediction)
    total = (s * (targets - prediction)).square().sum()
    assert fraction == pytest.approx(1 - float(left.square().sum() / total))
    assert 0 < fraction < 1


def test_an_inserted_neuron_starting_at_zero_never_trains(datasets, tmp_path):
    """σ'(0) = 0: a row of an inserted block with zero weights and bias has zero gradient, so under a
    frozen head a single-neuron block (``topological``) ends training with exactly one nonzero row;
    the multi-neuron rule (``topological_multi``) inserts blocks of the same kind through the sweep's
    command."""
    ns = datasets["navier_stokes"]
    cache = tmp_path / "source"
    for method in ("topological", "topological_multi"):
        metrics = run_transfer("navier_stokes", method, 9, 0, "smoke", ns, ns, tmp_path / method, cache=cache)
        source = growth.load(cache / "network.pt")
        net = growth.load(tmp_path / method / "network.pt")
        old = [b.linear.weight for b in source.blocks]
        inserted = [b.linear.weight for b in net.blocks if not any(torch.equal(b.linear.weight, w) for w in old)]
        assert len(inserted) == metrics["n_inserted"] >= 1
        rows = [int((w.abs().sum(1) > 0).sum()) for w in inserted]
        if method == "topological":
            assert rows == [1] * len(inserted)
        else:
            assert all(1 <= r <= net.width for r in rows)
