"""The CNN and ViT problems (problems.grids): grids keep the dataset's numbering, the networks are the
real ones of the presets and insertions preserve their function exactly, the sweep runs them and
offers only the methods defined on the growable protocol."""
import json

import numpy as np
import pytest
import torch

import growth
from common.errors import UserError
from growth.growable import insert_residual, like
from problems.cli import main
from problems.grids import MnistCnnProblem, NavierStokesCnnProblem
from problems.methods import available, config_for, method
from problems.networks import architecture
from problems.registry import problem_class
from tests.problems.test_problems import load_problem

GRID_PROBLEMS = ("mnist_cnn", "mnist_vit", "navier_stokes_cnn")


def test_ns_grid_is_the_dataset_field_in_c_order(datasets):
    """Sample k's ω0 on the grid, read back in C order, is row k of the dataset's /parameters."""
    from pde_data.store import read

    problem = NavierStokesCnnProblem("smoke")
    data = problem.load(datasets["navier_stokes"])
    nx, ny = data.info["grid_shape"]
    assert tuple(data.x_test.shape[1:]) == (1, nx, ny) == tuple(data.y_test.shape[1:])
    fields = problem.fields(data.target_scaler.inverse(data.y_test.double().numpy()), data)
    expected = read(str(datasets["navier_stokes"])).rows("parameters")[data.test.index]
    np.testing.assert_allclose(fields, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_mnist_cnn_images_are_the_pooled_pixels(datasets, tiny_mnist):
    """mnist_cnn's 14×14 image is the 2×2 mean of mnist's standardized 28×28 pixels."""
    problem, path = load_problem("mnist_cnn", datasets, tiny_mnist)
    flat = load_problem("mnist", datasets, tiny_mnist)[0]
    flat.settings = problem.settings
    pixels = flat.load(path).x_train.reshape(-1, 14, 2, 14, 2).mean(dim=(2, 4))
    torch.testing.assert_close(problem.load(path).x_train[:, 0], pixels)


@pytest.mark.parametrize("name", GRID_PROBLEMS)
def test_insertion_preserves_the_problem_network_exactly(name, datasets, tiny_mnist):
    """At every location of the preset's network (random weights, float64), inserting the operator's
    zero residual block and SensLI's two-weight block (W2 = 0) leaves the outputs bit-for-bit equal."""
    problem, path = load_problem(name, datasets, tiny_mnist)
    data = problem.load(path)
    config = config_for(problem, "topological")
    torch.manual_seed(0)
    net = method("topological").network(config, data, config.final_blocks, architecture=architecture(problem))
    net = net.double()
    x = data.x_test[:8].double()
    with torch.no_grad():
        reference = net(x)
        for location in net.locations():
            block = insert_residual(net, location.index)
            assert torch.equal(net(x), reference), (name, location.name)
            net.remove_block(location.index)
            two = location.operator.two_weight_block(net.activation.name, **like(net))
            first = two.layers[0]
            two.set_parameters(torch.randn_like(first.weight), torch.randn_like(first.bias))  # W2 = 0
            net.insert_block(location.index, block=two)
            assert torch.equal(net(x), reference), (name, location.name, "two-weight")
            net.remove_block(location.index)
    assert block is not None


def test_sweep_runs_the_protocol_methods_and_skips_the_stack_methods(datasets, tiny_mnist, tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setattr(MnistCnnProblem, "checksums", tiny_mnist[1])
    monkeypatch.setenv("MNIST_DIR", str(tiny_mnist[0]))
    data_dir = {p.parent for p in datasets.values()}.pop()
    threads = torch.get_num_threads()
    try:
        code = main(["sweep", "--preset", "smoke", "--problems", *GRID_PROBLEMS, "--seeds", "0", "--methods",
                     "topological", "random", "layerwise", "--data-dir", str(data_dir), "--out-root", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    for name in GRID_PROBLEMS:
        assert not (tmp_path / name / "layerwise").exists()
        for m in ("topological", "random"):
            config = json.loads((tmp_path / name / m / "seed_0" / "config.json").read_text())
            assert config["settings"]["network"]["kind"] == problem_class(name)("smoke").settings["network"]["kind"]
            metrics = json.loads((tmp_path / name / m / "seed_0" / "metrics.json").read_text())
            assert metrics["n_blocks"] == config["settings"]["final_blocks"]  # grown by one block
            assert all(np.isfinite(v) for k, v in metrics.items() if k.startswith("test_"))
    assert "navier_stokes_cnn layerwise: not available" in capsys.readouterr().out


@pytest.mark.parametrize("name", GRID_PROBLEMS)
def test_stack_methods_are_refused_in_one_line(name, tmp_path, capsys):
    problem = problem_class(name)("smoke")
    assert [m for m in ("layerwise", "layerwise_srl", "forward_thinking") if available(problem, m)] == []
    code = main(["run", name, "--method", "forward_thinking", "--preset", "smoke", "--data", str(tmp_path / "x.h5"),
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code != 0 and "needs a plain MLP stack" in err and "available: topological" in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_mlp_problems_keep_their_config():
    """The MLP problems' run settings carry no network key (their finished runs stay valid)."""
    from problems.methods import settings_for

    for name in ("heat", "navier_stokes", "boston", "mnist"):
        assert "network" not in settings_for(problem_class(name)("smoke"), "topological")


def test_a_vit_stream_holds_its_transformer_layers(datasets, tiny_mnist):
    problem, path = load_problem("mnist_vit", datasets, tiny_mnist)
    problem.settings = {**problem.settings, "network": {**problem.settings["network"], "transformer_blocks": 2}}
    with pytest.raises(UserError, match="at least that many"):
        method("topological").network(config_for(problem, "topological"), problem.load(path), 1,
                                      architecture=architecture(problem))
    assert isinstance(method("baseline").network(config_for(problem, "baseline"), problem.load(path), 2,
                                                 architecture=architecture(problem)), growth.VisionTransformer)
