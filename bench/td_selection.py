"""Topological-derivative selection at a fraction of an epoch (issue 19): ratios measured in one run.

For a trained width-n, 4-block ``td`` network (teacher-student regression, 20 inputs, 10 outputs) and
each size: the selection cost (adaptive rule of :mod:`growth.adaptive_td`; fixed ``subsample=k``)
over one plain Adam epoch (batch 128, :func:`bench.growth._plain_epoch`) timed right before it, and
its *efficiency*: the exact Rayleigh quotient φᵀQφ of the chosen direction (over all S samples) over the exact max_l λ_max(Q_l), and
whether the location is the exact one. The exact λ_max of every location comes from Lanczos on all S
samples (:func:`growth.adaptive_td.lanczos_top`, ``REFERENCE_STEPS`` iterations; its largest
residual norm relative to λ_max is reported).
"""
from __future__ import annotations

import statistics
import time

import torch

import growth
from bench.growth import _plain_epoch
from growth.adaptive_td import AdaptiveRule, OperatorQSource, lanczos_top
from growth.topological import check_td_activation, topological_derivative

LOSS = torch.nn.MSELoss()
SIZES = {  # (width, samples, fixed k), seeds
    "smoke": {"sizes": [(16, 2000, (256,))], "seeds": 2},
    "full": {"sizes": [(128, 10000, (1000, 2000)), (128, 55000, (1000, 2000)), (512, 10000, ())], "seeds": 3},
}
REFERENCE_STEPS = 48
TRAIN_EPOCHS = 3


def _trained(width: int, samples: int):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = growth.ResidualMLP(20, 10, width, 4, activation="td", input_activation="tanh")
    x = torch.randn(samples, 20, generator=g)
    teacher = torch.randn(20, 10, generator=g) / 20 ** 0.5
    y = torch.tanh(x @ teacher) + 0.1 * torch.randn(samples, 10, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(TRAIN_EPOCHS):
        _plain_epoch(net, x, y, opt, g, 128)
    return net, x, y, g


def _reference(net, x, y):
    """({location: factors over all samples}, exact λ_max per location, max relative residual)."""
    factors = OperatorQSource(net, LOSS, x, y, d2=check_td_activation(net), batch_size=4096).factors(
        torch.arange(x.shape[0]))
    g = torch.Generator().manual_seed(0)
    lam, residual = {}, 0.0
    for l, f in factors.items():
        def matvec(v, f=f):
            return (f.weights * (f.states @ v.T)).T @ f.states / x.shape[0]

        start = torch.randn(net.width, net.width, generator=g).to(f.states)
        theta, _, res = lanczos_top(matvec, start, REFERENCE_STEPS, g)
        r = int(theta.argmax())
        lam[l], residual = float(theta[r]), max(residual, float(res[r] / theta[r].abs()))
    return factors, lam, residual


def _rayleigh(factors, proposal) -> float:
    f = factors[proposal.location]
    return float(((f.states @ proposal.weight.T) ** 2 * f.weights).sum(1).mean())


def _measure(net, x, y, opt, g, select, factors, lam):
    """(cost in epochs, efficiency, same location, samples used) of one selection."""
    t0 = time.perf_counter()
    _plain_epoch(net, x, y, opt, g, 128)
    t_epoch = time.perf_counter() - t0
    t0 = time.perf_counter()
    proposals = select()
    t_select = time.perf_counter() - t0
    best = max(proposals, key=lambda p: p.eigenvalue)
    top = max(lam, key=lam.get)
    return t_select / t_epoch, _rayleigh(factors, best) / lam[top], best.location == top, best.estimate["k"]


def _size_entries(width, samples, fixed_k, seeds):
    net, x, y, g = _trained(width, samples)
    frozen = torch.optim.Adam(net.parameters(), lr=0.0)  # an Adam epoch's work that leaves the network as it is
    factors, lam, residual = _reference(net, x, y)
    rows = {"adaptive": [], **{f"k={k}": [] for k in fixed_k}}
    for seed in range(seeds):
        rows["adaptive"].append(_measure(net, x, y, frozen, g, lambda: topological_derivative(
            net, LOSS, x, y, estimation="adaptive", rule=AdaptiveRule(seed=seed), batch_size=4096), factors, lam))
        for k in fixed_k:
            rows[f"k={k}"].append(_measure(net, x, y, frozen, g, lambda: topological_derivative(
                net, LOSS, x, y, subsample=k, subsample_seed=seed, batch_size=4096), factors, lam))
    where = f"width {width}, 5 locations, {samples} samples"
    out = []
    for name, values in rows.items():
        cost, eff, same, ks = zip(*values)
        detail = (f"{where}; efficiency {', '.join(f'{e:.3f}' for e in eff)} (median {statistics.median(eff):.3f}); "
                  f"same location {sum(same)}/{len(same)}; k {', '.join(map(str, ks))}; reference Lanczos "
                  f"residual ≤ {residual:.1e}·λ_max")
        adaptive = name == "adaptive"
        out.append({"name": f"growth: TD selection ({name}) / one epoch, {where}", "value": statistics.median(cost),
                    "repeats": list(cost), "unit": "ratio", "target": "<= 0.5" if adaptive else "", "detail": detail})
        out.append({"name": f"growth: TD selection ({name}) efficiency φᵀQφ/λ_max, {where}",
                    "value": statistics.median(eff), "repeats": list(eff), "unit": "ratio",
                    "target": ">= 0.95" if adaptive else "", "detail": f"same location {sum(same)}/{len(same)}"})
    return out


def entries(scale: str) -> list[dict]:
    s = SIZES[scale]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # stable timings on a shared machine
    try:
        return [e for width, samples, fixed_k in s["sizes"] for e in _size_entries(width, samples, fixed_k, s["seeds"])]
    finally:
        torch.set_num_threads(threads)
