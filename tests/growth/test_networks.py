"""Growable networks: exact function preservation, bad use, save/load round trips."""
import pytest
import torch

import growth
from growth.blocks import TwoWeightBlock

ACTS = ["td", "elu", "tanh", "relu"]


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("input_activation", ["tanh", None])
def test_zero_block_insertion_preserves_function_exactly(activation, input_activation):
    torch.manual_seed(0)
    net = growth.ResidualMLP(4, 3, 7, 2, activation=activation, input_activation=input_activation)
    x = torch.randn(33, 4)
    before = net(x)
    for location in range(net.n_locations):
        grown = growth.ResidualMLP.from_architecture(net.architecture())
        grown.load_state_dict(net.state_dict())
        grown.insert_block(location)
        assert grown.n_blocks == 3
        assert torch.equal(grown(x), before), (activation, location)


def test_two_weight_block_with_zero_second_weight_is_identity():
    torch.manual_seed(1)
    net = growth.ResidualMLP(3, 2, 5, 1)
    x = torch.randn(10, 3)
    before = net(x)
    for location in range(net.n_locations):
        block = TwoWeightBlock(5, "td", weight=0.8 * torch.eye(5), bias=torch.randn(5))
        net.insert_block(location, block=block)
        assert torch.equal(net(x), before)


def test_taylor_data_of_activations():
    z = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    for name in ["td", "tanh"]:
        act = growth.get_activation(name)
        (d1,) = torch.autograd.grad(act(z).sum(), z, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), z)
        assert (float(act(z).detach()), float(d1.detach()), float(d2)) == pytest.approx((act.d0, act.d1, act.d2), abs=1e-15)
    assert growth.get_activation("td").admits_topological_derivative
    assert not any(growth.get_activation(a).admits_topological_derivative for a in ["elu", "tanh", "relu"])


def test_insert_block_with_values_and_hidden_states():
    net = growth.ResidualMLP(2, 1, 3, 0, activation="tanh", input_activation=None)
    w, b = torch.randn(3, 3), torch.randn(3)
    block = net.insert_block(0, weight=w, bias=b)
    assert torch.equal(block.linear.weight, w) and torch.equal(block.linear.bias, b)
    x = torch.randn(4, 2)
    h0, h1 = net.hidden_states(x)
    assert torch.allclose(h1, h0 + torch.tanh(h0 @ w.T + b))


def test_bad_use_raises_clear_errors():
    net = growth.ResidualMLP(2, 1, 4, 2)
    with pytest.raises(IndexError, match="out of range"):
        net.insert_block(3)
    with pytest.raises(IndexError, match="out of range"):
        net.insert_block(-1)
    with pytest.raises(ValueError, match="width mismatch"):
        net.insert_block(0, weight=torch.zeros(5, 5))
    with pytest.raises(ValueError, match="does not match network width"):
        net.insert_block(0, block=TwoWeightBlock(5, "td"))
    with pytest.raises(ValueError, match="unknown activation"):
        growth.ResidualMLP(2, 1, 4, 2, activation="swish")


def test_freezing_and_counting():
    net = growth.ResidualMLP(3, 2, 4, 2)
    assert growth.count_parameters(net) == (3 * 4 + 4) + 2 * (16 + 4) + (4 * 2 + 2)
    growth.freeze(net.input_layer, *net.blocks)
    assert growth.count_parameters(net, trainable_only=True) == 10
    chosen = growth.set_trainable(net, [net.blocks[1]])
    assert [p.shape for p in chosen] == [(4, 4), (4,)]
    assert growth.count_parameters(net, trainable_only=True) == 20


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_save_load_round_trip_bit_for_bit(tmp_path, dtype):
    torch.manual_seed(2)
    net = growth.ResidualMLP(3, 2, 6, 1, activation="td").to(dtype)
    net.insert_block(0, weight=torch.randn(6, 6, dtype=dtype), bias=torch.randn(6, dtype=dtype))
    net.insert_block(2, block=TwoWeightBlock(6, "td", weight=0.8 * torch.eye(6, dtype=dtype), dtype=dtype))
    growth.freeze(net.input_layer)
    growth.save(net, tmp_path / "net.pt")
    loaded = growth.load(tmp_path / "net.pt")
    assert type(loaded) is growth.ResidualMLP and loaded.architecture() == net.architecture()
    for (n1, p1), (n2, p2) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and p1.dtype == p2.dtype and torch.equal(p1, p2)
    assert [p.requires_grad for p in loaded.parameters()] == [p.requires_grad for p in net.parameters()]
    x = torch.randn(5, 3, dtype=dtype)
    assert torch.equal(loaded(x), net(x))


def test_plain_mlp_round_trip(tmp_path):
    net = growth.PlainMLP(2, 2, 4, 2, activation="tanh")
    net.insert_block(2, weight=torch.randn(4, 4))
    growth.save(net, tmp_path / "p.pt")
    loaded = growth.load(tmp_path / "p.pt")
    x = torch.randn(3, 2)
    assert type(loaded) is growth.PlainMLP and torch.equal(loaded(x), net(x))


def test_load_refuses_foreign_files(tmp_path):
    torch.save({"hello": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a saved growth network"):
        growth.load(tmp_path / "x.pt")
