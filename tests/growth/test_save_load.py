"""Saving and loading grown networks of every kind (growth.save / growth.load, weights_only=True):
the architecture with the inserted blocks at their locations and every weight round-trip, so that the
loaded network computes bit-identical outputs; bad files are refused in one line."""
import pytest
import torch

import growth
from tests.growth.test_operators import KINDS, UserResNet, tiny

LOSS = torch.nn.MSELoss()


def _grown(kind, dtype):
    """A network of ``kind`` grown at several locations: residual blocks with random weights at the
    first and last location, a two-weight (SensLI) block in between, one parameter frozen."""
    net, x, _ = tiny(kind, n_blocks=1)
    net, x = net.to(dtype), x.to(dtype)
    g = torch.Generator().manual_seed(3)
    for location in (0, len(net.locations()) - 1):
        op = net.locations()[location].operator
        growth.insert_residual(net, location, torch.randn(op.weight_shape, generator=g, dtype=torch.float64).to(dtype),
                               torch.randn(op.n, generator=g, dtype=torch.float64).to(dtype))
    op = net.locations()[2].operator
    block = net.insert_block(2, block=op.two_weight_block("td", op.identity_weight(0.8, dtype=dtype), dtype=dtype))
    with torch.no_grad():
        block.set_parameters(*(torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype)
                               for p in (block.layers[0].weight, block.layers[0].bias, block.layers[1].weight)))
    next(net.parameters()).requires_grad_(False)
    return net, x


def _fresh(kind):
    """What load needs besides the file: a fresh instance of a wrapped model's class."""
    return UserResNet() if kind == "wrapped" else None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_grown_network_round_trips_bit_for_bit(kind, dtype, tmp_path):
    net, x = _grown(kind, dtype)
    assert net.n_blocks >= 3
    growth.save(net, tmp_path / "net.pt")
    loaded = growth.load(tmp_path / "net.pt", model=_fresh(kind))
    assert type(loaded) is type(net) and loaded.architecture() == net.architecture()
    assert [loc.name for loc in loaded.locations()] == [loc.name for loc in net.locations()]
    assert [repr(loc.operator) for loc in loaded.locations()] == [repr(loc.operator) for loc in net.locations()]
    for (n1, p1), (n2, p2) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and p1.dtype == p2.dtype and torch.equal(p1, p2)
    assert [p.requires_grad for p in loaded.parameters()] == [p.requires_grad for p in net.parameters()]
    assert torch.equal(loaded(x), net(x))
    # and it keeps growing: the loaded network is growable like the saved one
    growth.insert_residual(loaded, 1)
    assert torch.equal(loaded(x), net(x))


def test_wrapped_model_trained_and_saved_by_the_trainer_resumes_bit_for_bit(tmp_path):
    _, x, y = tiny("wrapped")

    def run(out, max_stages, resume=False):
        net = UserResNet().double() if resume else tiny("wrapped")[0]
        return growth.grow(net, growth.RandomInsertion(), (x, y), epochs_per_stage=2, max_stages=max_stages,
                           batch_size=3, seed=4, out_dir=out, resume=resume, patience=10, progress=False)

    full = run(tmp_path / "full", 3)
    run(tmp_path / "part", 2)
    resumed = run(tmp_path / "part", 3, resume=True)
    strip = lambda h: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    assert torch.equal(resumed.net(x), full.net(x))
    loaded = growth.load(tmp_path / "full" / "network.pt", model=UserResNet())
    assert loaded.n_blocks == 2 and torch.equal(loaded(x), full.net(x))


def test_wrapped_file_needs_a_fresh_model_of_its_class(tmp_path):
    net, _ = _grown("wrapped", torch.float64)
    growth.save(net, tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"holds a wrapped .*UserResNet: pass a fresh instance"):
        growth.load(tmp_path / "w.pt")
    with pytest.raises(ValueError, match="the given model is a torch.nn.modules.linear.Linear"):
        growth.load(tmp_path / "w.pt", model=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="already wrapped"):
        growth.load(tmp_path / "w.pt", model=net.model)
    with pytest.raises(ValueError, match="do not fit"):  # the same class with other sizes
        growth.load(tmp_path / "w.pt", model=UserResNet(channels=3))


@pytest.mark.parametrize("kind", ["cnn_pool", "vit_cls", "wrapped"])
def test_bad_files_are_refused_in_one_line(kind, tmp_path):
    net, _ = _grown(kind, torch.float32)
    path = tmp_path / "net.pt"
    growth.save(net, path)
    data = path.read_bytes()

    def refused(match):
        with pytest.raises(ValueError, match=match) as error:
            growth.load(path, model=_fresh(kind))
        assert "\n" not in str(error.value)

    path.write_bytes(data[: len(data) // 2])  # truncated
    refused("not a readable saved network")
    path.write_bytes(b"")
    refused("not a readable saved network")
    payload = torch.load(_resave(net, tmp_path), weights_only=True)
    first = next(iter(payload["state_dict"]))
    payload["state_dict"][first] = payload["state_dict"][first][..., :1]  # a weight of another shape
    torch.save(payload, path)
    refused(f"do not fit .*shape: {first}")
    del payload["state_dict"][first]
    torch.save(payload, path)
    refused(f"do not fit .*missing: {first}")
    payload = torch.load(_resave(net, tmp_path), weights_only=True)
    payload["architecture"]["blocks" if kind != "wrapped" else "inserted"] = 7
    torch.save(payload, path)
    refused("damaged saved")


def _resave(net, tmp_path):
    path = tmp_path / "good.pt"
    growth.save(net, path)
    return path



class _BatchNormNet(torch.nn.Module):
    """A user's model whose state holds buffers (BatchNorm running statistics, an integer counter)."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.BatchNorm2d(2))
        self.head = torch.nn.Linear(2, 3)

    def forward(self, x):
        return self.head(self.stem(x).mean(dim=(2, 3)))


def test_wrapped_model_with_buffers_round_trips(tmp_path):
    x = torch.randn(8, 1, 4, 4, dtype=torch.float64)
    net = growth.wrap(_BatchNormNet().double(), ["stem"], x[:1])
    growth.insert_residual(net, 0, torch.randn(2, 2, 3, 3, dtype=torch.float64))
    net(x)  # training mode: the running statistics move
    net.eval()
    growth.save(net, tmp_path / "bn.pt")
    loaded = growth.load(tmp_path / "bn.pt", model=_BatchNormNet()).eval()
    assert loaded.model.stem[1].num_batches_tracked.dtype == torch.int64
    assert torch.equal(loaded(x), net(x))
