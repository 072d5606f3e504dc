"""The trainer's divergence guard and safe loading: a diverging epoch is rolled back with a lower
learning rate and logged, persistent divergence fails in one line, and a crafted pickle in a
network or checkpoint file is refused without running its code."""
import math
import pickle

import pytest
import torch

import growth
from growth.divergence import TrainingDiverged


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return x, x[:, :1] * 2.0 - x[:, 1:2]


def _net(seed=0):
    torch.manual_seed(seed)
    return growth.ResidualMLP(3, 1, 16, 1).double()


def _sgd(lr):
    return lambda params: torch.optim.SGD(params, lr=lr)


def test_exploding_learning_rate_is_rolled_back_lowered_and_logged(tmp_path):
    """SGD with lr 10 on this least-squares fit explodes within epochs; the guard rolls back and
    retries at lr 1, then 0.1, which converge: every logged loss is finite."""
    x, y = _data()
    result = growth.grow(_net(), growth.FixedBaseline(), (x, y), _data(32, 1), epochs_per_stage=30, max_stages=1,
                         optimizer=_sgd(10.0), out_dir=tmp_path, progress=False)
    events = [r for r in result.history if r["event"] == "divergence"]
    assert 1 <= len(events) <= 3
    assert events[0]["lr"] == [pytest.approx(1.0)]
    epochs = [r for r in result.history if r["event"] == "epoch"]
    assert len(epochs) == 30 and all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in epochs)
    assert result.val_loss < 1.0
    logged = (tmp_path / "log.jsonl").read_text()
    assert '"event": "divergence"' in logged and "NaN" not in logged and "Infinity" not in logged


def test_persistent_divergence_fails_in_one_line_after_bounded_retries():
    x, y = _data()
    y[3] = math.inf  # every epoch's loss is inf: no learning rate helps
    records = []
    with pytest.raises(TrainingDiverged) as error:
        growth.grow(_net(), growth.FixedBaseline(), (x, y), None, epochs_per_stage=5, max_stages=1,
                    optimizer=_sgd(0.01), callback=lambda record, net: records.append(record), progress=False)
    assert "\n" not in str(error.value) and "after 3 roll-backs" in str(error.value)
    assert [r["retry"] for r in records if r["event"] == "divergence"] == [1, 2, 3]
    assert not any(r["event"] == "epoch" for r in records)


def test_healthy_training_is_unchanged_by_the_guard():
    """Same run twice: identical parameters (the guard copies state but never alters it)."""
    x, y = _data()
    nets = [growth.grow(_net(), growth.FixedBaseline(), (x, y), None, epochs_per_stage=5, max_stages=1,
                        progress=False).net for _ in range(2)]
    plain = _net()
    opt = torch.optim.Adam(plain.parameters(), lr=1e-3)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.mse_loss(plain(x), y).backward()
        opt.step()
    for a, b, c in zip(nets[0].parameters(), nets[1].parameters(), plain.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)


class _Payload:
    """Unpickling this runs `open(marker, "w")`: what a crafted network.pt would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("what", ["network", "checkpoint"])
def test_crafted_pickle_is_refused_without_running_it(tmp_path, what):
    marker = tmp_path / "pwned"
    path = tmp_path / "network.pt" if what == "network" else tmp_path / "checkpoints" / "stage_000.pt"
    path.parent.mkdir(exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"net": _Payload(marker), "format": "growth.network"}, f, protocol=2)
    with pytest.raises(ValueError, match="refused unread, weights_only=True"):
        if what == "network":
            growth.load(path)
        else:
            growth.grow(None, growth.FixedBaseline(), _data(), None, out_dir=tmp_path, resume=True, progress=False)
    assert not marker.exists()
