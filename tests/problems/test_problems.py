"""Every problem loads, splits deterministically and trains a tiny network with every method."""
import json

import numpy as np
import pytest
import torch

from problems import mnist
from problems.methods import METHODS, available, train
from problems.registry import PROBLEMS, problem_class


def tiny(problem):
    """Shrink the smoke preset further: 2 stages of 1 epoch, 2 NAS trials, 1 SRL stage."""
    s = problem.settings = json.loads(json.dumps(problem.settings))
    s.update(epochs=4, final_blocks=2, width=8)
    for m in ("layerwise", "layerwise_srl"):
        if m in s["methods"]:  # not on the CNN/ViT problems (problems.grids)
            s["methods"][m].update(manifold_copies=3)
    if "layerwise_srl" in s["methods"]:
        s["methods"]["layerwise_srl"]["srl_stages"] = 1
    s["methods"]["nas"]["n_trials"] = 2
    return problem


class TinyMnist(mnist.MnistProblem):
    checksums = None  # set per test from the fixture


def load_problem(name, datasets, tiny_mnist):
    """(problem on its smoke preset, its data path): the MNIST problems on the tiny IDX files, the
    others on the session's dataset of the problem they read."""
    cls = problem_class(name)
    if issubclass(cls, mnist.MnistProblem):
        return type(f"Tiny{cls.__name__}", (cls,), {"checksums": tiny_mnist[1]})("smoke"), tiny_mnist[0]
    return cls("smoke"), datasets.get(cls.dataset or name)


@pytest.fixture
def loaded(request, datasets, tiny_mnist):
    problem, path = load_problem(request.param, datasets, tiny_mnist)
    return problem, path, problem.load(path)


@pytest.mark.parametrize("loaded", list(PROBLEMS), indirect=True)
def test_load_and_split_are_deterministic_and_disjoint(loaded):
    problem, path, data = loaded
    again = problem.load(path)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(data, name), getattr(again, name)), name
    train, val, test = (set(split.index) for split in (data.train, data.val, data.test))
    assert len(train & val) == 0
    if not isinstance(problem, mnist.MnistProblem):  # its test set is a separate file
        assert len(test & (train | val)) == 0
    assert len(data.x_train) == len(data.y_train) > 0 and len(data.x_val) > 0 and len(data.x_test) > 0


@pytest.mark.parametrize("loaded", list(PROBLEMS), indirect=True)
def test_every_method_trains(loaded):
    problem, _, data = loaded
    tiny(problem)
    for method in (m for m in METHODS if available(problem, m)):
        records = []
        result = train(problem, data, method, 0, "cpu", lambda r, m: records.append(r))
        with torch.no_grad():
            out = result.model(data.x_test)
        metrics = problem.metrics(out, data)
        assert all(np.isfinite(v) for v in metrics.values()), (method, metrics)
        assert any(r["event"] == "epoch" for r in records), method
        assert sum(r["event"] == "epoch" for r in records) <= problem.settings["epochs"], method


def test_mnist_download_failure_is_one_user_error_and_leaves_nothing_behind(tmp_path):
    from common.errors import UserError

    with pytest.raises(UserError, match="cannot download train-images"):
        mnist.download(tmp_path, mirror="http://127.0.0.1:9/")  # the discard port: refused at once
    assert not list(tmp_path.iterdir())  # no partial file in an existing directory ...
    with pytest.raises(UserError, match="cannot download train-images"):
        mnist.download(tmp_path / "data" / "mnist", mirror="http://127.0.0.1:9/")
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]  # ... and no empty directory it created


def test_cross_validation_resplits_every_per_sample_array(tiny_mnist):
    """Pooling training + validation and cutting a fold keeps inputs, targets, sample indices and the
    labels extra row-aligned (the labels are the targets for MNIST), and the fold partitions the pool."""
    TinyMnist.checksums = tiny_mnist[1]
    data = TinyMnist("smoke").load(tiny_mnist[0])
    pooled = data.pooled()
    assert len(pooled.val) == 0 and len(pooled.train) == len(data.train) + len(data.val)
    fold = np.arange(3, len(pooled.train), 4)
    cut = pooled.with_validation(fold)
    for split in (pooled.train, cut.train, cut.val):
        assert np.array_equal(split.extras["labels"], split.targets.numpy())
    assert sorted(np.concatenate([cut.train.index, cut.val.index])) == sorted(pooled.train.index)
    np.testing.assert_array_equal(cut.val.index, pooled.train.index[fold])
    torch.testing.assert_close(cut.val.inputs, pooled.train.inputs[torch.as_tensor(fold)])
