"""Topological derivative from a fixed random subset of the samples (``subsample``): exact at k = S,
unbiased, and converging to the full Q_l as k grows at the rate of sampling without replacement."""
import math

import pytest
import torch

import growth
from growth.topological import q_blocks, subsample_rows
from growth.trainer import Context

LOSS = torch.nn.MSELoss()
S = 1200


def _problem():
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    net = growth.ResidualMLP(3, 2, 5, 2).double()
    x = torch.randn(S, 3, generator=g, dtype=torch.float64)
    y = torch.sin(x[:, :2]) + 0.1 * torch.randn(S, 2, generator=g, dtype=torch.float64)
    return net, x, y


def _stack(q: dict) -> torch.Tensor:
    return torch.stack([q[l] for l in sorted(q)])


def test_subsample_rows_fixed_by_seed_and_without_replacement():
    a, b, c = subsample_rows(100, 30, seed=1), subsample_rows(100, 30, seed=1), subsample_rows(100, 30, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(torch.unique(a)) == 30 and bool((a[1:] > a[:-1]).all())
    assert subsample_rows(100, None) is None and subsample_rows(100, 100) is None
    with pytest.raises(ValueError):
        subsample_rows(100, 0)


def test_subsample_of_every_sample_is_the_full_q():
    net, x, y = _problem()
    assert torch.equal(_stack(q_blocks(net, LOSS, x, y)), _stack(q_blocks(net, LOSS, x, y, subsample=S)))


def test_subsample_estimate_is_unbiased_and_converges_to_the_full_q():
    net, x, y = _problem()
    full = _stack(q_blocks(net, LOSS, x, y))
    scale = float(full.norm())

    def rms_error(k, n_seeds=24):
        estimates = [_stack(q_blocks(net, LOSS, x, y, subsample=k, subsample_seed=seed)) for seed in range(n_seeds)]
        errors = [float((q - full).norm()) / scale for q in estimates]
        bias = float((torch.stack(estimates).mean(0) - full).norm()) / scale
        return math.sqrt(sum(e * e for e in errors) / n_seeds), bias

    ks = (50, 200, 800)
    rms = {}
    for k in ks:
        rms[k], bias = rms_error(k)
        # the mean of 24 independent estimates varies √24× less: a bias would stand out
        assert bias < 2.5 * rms[k] / math.sqrt(24)
    # sampling without replacement: RMS error ∝ sqrt((1 − k/S) / k)
    for k_small, k_large in zip(ks, ks[1:]):
        expected = math.sqrt((1 - k_large / S) / k_large / ((1 - k_small / S) / k_small))
        assert rms[k_large] / rms[k_small] == pytest.approx(expected, rel=0.35)
    assert rms[800] < 0.25


def test_strategy_scores_locations_on_the_subsample():
    net, x, y = _problem()

    def top_eigenvalues(**kw):
        return [float(torch.linalg.eigvalsh(q).max()) for q in _stack(q_blocks(net, LOSS, x, y, **kw))]

    expected, full = top_eigenvalues(subsample=100, subsample_seed=7), top_eigenvalues()
    ctx = Context(0, 0, (x, y), None, LOSS, S, torch.device("cpu"), torch.Generator())
    event = growth.TopologicalStrategy(subsample=100, subsample_seed=7).grow(net, ctx)
    assert event["scores"] == pytest.approx(expected, rel=1e-10)
    assert event["scores"] != pytest.approx(full, rel=1e-3)
