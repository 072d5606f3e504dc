"""SensLI scores from hooks equal gradients on an explicitly extended network."""
import pytest
import torch

import growth

LOSS = torch.nn.MSELoss()


def _problem(activation):
    torch.manual_seed(0)
    net = growth.ResidualMLP(3, 2, 5, 2, activation=activation).double()
    g = torch.Generator().manual_seed(1)
    return net, torch.randn(30, 3, generator=g, dtype=torch.float64), torch.randn(30, 2, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("kind,activation", [("two_weight", "td"), ("two_weight", "relu"),
                                             ("one_weight", "elu"), ("one_weight", "tanh")])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_hook_scores_equal_extended_network_gradients(kind, activation, batch_size):
    net, x, y = _problem(activation)
    fast = growth.sensitivity_scores(net, LOSS, x, y, kind=kind, batch_size=batch_size)
    ref = growth.sensitivity_scores_reference(net, LOSS, x, y, kind=kind)
    assert [p.location for p in fast] == list(range(net.n_locations))
    for a, b in zip(fast, ref):
        assert a.score > 0
        assert a.score == pytest.approx(b.score, rel=1e-10)


@pytest.mark.parametrize("kind", ["two_weight", "one_weight"])
def test_insertion_preserves_function(kind):
    net, x, y = _problem("elu")
    before = net(x)
    best = max(growth.sensitivity_scores(net, LOSS, x, y, kind=kind), key=lambda p: p.score)
    block = growth.apply_proposal(net, best)
    assert torch.equal(net(x), before)
    assert type(block).kind == ("two_weight" if kind == "two_weight" else "residual")


def test_one_weight_needs_nonzero_first_derivative():
    net, x, y = _problem("td")
    with pytest.raises(ValueError, match="σ'\\(0\\)"):
        growth.sensitivity_scores(net, LOSS, x, y, kind="one_weight")
    with pytest.raises(ValueError, match="kind must be"):
        growth.sensitivity_scores(net, LOSS, x, y, kind="three_weight")
