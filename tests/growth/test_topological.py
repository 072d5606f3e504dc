"""Topological derivative: the second-order prediction, the Hessian, the eigen-direction."""
import copy

import pytest
import torch

import growth
from growth.topological import dense_q

LOSS = torch.nn.MSELoss()


def _problem(width=6, n_blocks=2, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = growth.ResidualMLP(3, 2, width, n_blocks).double()
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return net, x, y


def _loss(net, x, y):
    with torch.no_grad():
        return float(LOSS(net(x), y))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("multi_neuron", [False, True])
def test_predicted_loss_change_ratio_tends_to_one(bias, multi_neuron):
    net, x, y = _problem()
    j0 = _loss(net, x, y)
    proposals = growth.topological_derivative(net, LOSS, x, y, bias=bias, multi_neuron=multi_neuron,
                                              batch_size=16)
    assert [p.location for p in proposals] == list(range(net.n_locations))
    for p in proposals:
        assert p.score > 0
        norm2 = p.weight.square().sum() + (0 if p.bias is None else p.bias.square().sum())
        assert float(norm2) == pytest.approx(1.0, abs=1e-12)
        errors = []
        for eps in (1e-1, 1e-2, 1e-3):
            q = p.with_eps(eps)
            assert q.predicted_decrease == pytest.approx(eps ** 2 / 2 * p.score, rel=1e-12)
            grown = copy.deepcopy(net)
            growth.apply_proposal(grown, q)
            errors.append(abs((j0 - _loss(grown, x, y)) / q.predicted_decrease - 1))
        assert errors[2] < 0.01 and errors[2] < errors[1] < errors[0], errors


def test_single_neuron_score_is_top_eigenvalue_and_multi_neuron_rule():
    net, x, y = _problem()
    q = growth.q_blocks(net, LOSS, x, y)
    single = growth.topological_derivative(net, LOSS, x, y)
    multi = growth.topological_derivative(net, LOSS, x, y, multi_neuron=True, ratio=0.3)
    for l, p in enumerate(single):
        evals = torch.linalg.eigvalsh(q[l])
        assert p.eigenvalue == pytest.approx(float(evals.max()), rel=1e-12)
        assert p.score == pytest.approx(p.eigenvalue, rel=1e-10)
        assert int((p.weight.abs().sum(1) > 0).sum()) == 1  # one neuron
        chosen = evals[evals >= 0.3 * evals.max()]
        assert multi[l].score == pytest.approx(float(chosen.mean()), rel=1e-10)
        assert multi[l].eigenvalue == p.eigenvalue


def test_eigenvector_beats_random_unit_directions():
    net, x, y = _problem(seed=3)
    j0 = _loss(net, x, y)
    eps = 1e-2
    g = torch.Generator().manual_seed(0)
    for p in growth.topological_derivative(net, LOSS, x, y):
        best = copy.deepcopy(net)
        growth.apply_proposal(best, p.with_eps(eps))
        decrease = j0 - _loss(best, x, y)
        for _ in range(20):
            w = torch.randn(6, 6, generator=g, dtype=torch.float64)
            rand = copy.deepcopy(net)
            rand.insert_block(p.location, weight=eps * w / w.norm())
            assert j0 - _loss(rand, x, y) < decrease


@pytest.mark.parametrize("bias", [False, True])
def test_finite_difference_hessian_equals_q(bias):
    """J(Φ) of the net with x + σ(Φx + b) inserted at l: its Hessian at 0 is −blockdiag(Q_{l,r})."""
    net, x, y = _problem(width=3, n_blocks=1, n=25, seed=1)
    q = growth.q_blocks(net, LOSS, x, y, bias=bias)
    m, delta = 3 + int(bias), 1e-4
    for l in range(net.n_locations):
        grown = copy.deepcopy(net)
        block = grown.insert_block(l)

        def gradient(vec):
            phi = vec.view(3, m)
            with torch.no_grad():
                block.linear.weight.copy_(phi[:, :3])
                block.linear.bias.copy_(phi[:, 3] if bias else torch.zeros(3, dtype=torch.float64))
            grown.zero_grad()
            LOSS(grown(x), y).backward()
            parts = [block.linear.weight.grad] + ([block.linear.bias.grad[:, None]] if bias else [])
            return torch.cat(parts, dim=1).reshape(-1)

        hessian = torch.stack([(gradient(delta * e) - gradient(-delta * e)) / (2 * delta)
                               for e in torch.eye(3 * m, dtype=torch.float64)], dim=1)
        assert torch.allclose(-hessian, dense_q(q[l]), atol=1e-7, rtol=1e-6), l


def test_q_accumulated_over_batches_equals_full_batch():
    net, x, y = _problem()
    full = growth.q_blocks(net, LOSS, x, y)
    batched = growth.q_blocks(net, LOSS, x, y, batch_size=7)
    for l in full:
        assert torch.allclose(full[l], batched[l], rtol=1e-12, atol=1e-15)


def test_q_is_independent_of_frozen_parameters():
    net, x, y = _problem()
    ref = growth.q_blocks(net, LOSS, x, y)
    growth.freeze(net)
    for l, q in growth.q_blocks(net, LOSS, x, y).items():
        assert torch.equal(q, ref[l])


def test_line_search_inserts_a_decreasing_block():
    net, x, y = _problem()
    j0 = _loss(net, x, y)
    best = max(growth.topological_derivative(net, LOSS, x, y), key=lambda p: p.eigenvalue)
    chosen, value = growth.line_search(net, best, lambda n: _loss(n, x, y))
    assert chosen is not None and chosen.eps > 0 and net.n_blocks == 3
    assert value == pytest.approx(_loss(net, x, y), rel=1e-14) and value < j0


def test_wrong_activation_raises():
    net = growth.ResidualMLP(2, 1, 4, 1, activation="elu")
    x, y = torch.randn(5, 2), torch.randn(5, 1)
    with pytest.raises(ValueError, match=r"σ\(0\) = σ'\(0\) = 0"):
        growth.topological_derivative(net, LOSS, x, y)
    with pytest.raises(ValueError, match="residual"):
        growth.topological_derivative(growth.PlainMLP(2, 1, 4, 1), LOSS, x, y)
    with pytest.raises(IndexError, match="out of range"):
        growth.topological_derivative(growth.ResidualMLP(2, 1, 4, 1), LOSS, x, y, locations=[2])
