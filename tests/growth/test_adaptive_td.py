"""Adaptive topological-derivative estimation (growth.adaptive_td): Lanczos against eigh, the factor
interface against the exact blocks, the stopping rule's promise on synthetic Q of known spectrum over
many seeds, an unbiased held-out score, and the exact result bit for bit when k would reach S."""
import math

import pytest
import torch

import growth
from growth.adaptive_td import (AdaptiveRule, OperatorQSource, Factors, adaptive_estimate, exact_cost_in_epochs,
                                lanczos_top)
from growth.topological import check_td_activation, q_blocks, topological_derivative
from growth.trainer import Context

LOSS = torch.nn.MSELoss()


@pytest.fixture(autouse=True)
def one_thread():
    """Small products: one thread is faster, and steadier on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class PlantedSource:
    """A finite population of S samples whose Q has a planted spectrum: h_s = D^½ ξ_s and weights
    w_{s,r} = a_{l,r} + σ ζ_{s,r} (ξ, ζ standard normal), so Q_{l,r} ≈ a_{l,r} D; the exact Q is the
    population mean, computed densely."""

    def __init__(self, seed: int, n_samples: int = 16384, sigma: float = 0.7):
        g = torch.Generator().manual_seed(1000 + seed)
        self.n_samples, self.locations = n_samples, [0, 1]
        spectrum = torch.tensor([1.0, 0.9, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
        # the best neuron (1.0), a near tie within the tolerance (0.98) and a clear loser (0.85)
        scale = {0: torch.tensor([1.0, 0.85, 0.3, -0.5]), 1: torch.tensor([0.98, 0.2, 0.1, -1.0])}
        self.states, self.weights = {}, {}
        for l in self.locations:
            xi = torch.randn(n_samples, len(spectrum), generator=g, dtype=torch.float64)
            self.states[l] = xi * spectrum.sqrt()
            noise = torch.randn(n_samples, 4, generator=g, dtype=torch.float64)
            self.weights[l] = scale[l].double() + sigma * noise

    def factors(self, rows):
        return {l: Factors(self.states[l][rows], self.weights[l][rows]) for l in self.locations}

    def exact(self, l):
        h, w = self.states[l], self.weights[l]
        return torch.einsum("sr,si,sj->rij", w, h, h) / self.n_samples


def _rayleigh(q, row, vector):
    return float(vector @ q[row] @ vector)


def test_lanczos_top_pair_matches_eigh():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 30, 30, generator=g, dtype=torch.float64)
    a = a + a.mT
    theta, vectors, residual = lanczos_top(lambda v: torch.einsum("rij,rj->ri", a, v),
                                           torch.randn(5, 30, generator=g, dtype=torch.float64), 30, g)
    top = torch.linalg.eigvalsh(a)[:, -1]
    assert torch.allclose(theta, top, rtol=1e-10, atol=1e-10)
    assert torch.allclose(torch.einsum("rij,rj->ri", a, vectors), theta[:, None] * vectors, atol=1e-8)
    assert float(residual.max()) < 1e-8


def test_dense_factors_reproduce_the_exact_blocks():
    net, x, y = _network(300)
    source = OperatorQSource(net, LOSS, x, y, d2=check_td_activation(net), bias=True, batch_size=128)
    factors = source.factors(torch.arange(300))
    exact = q_blocks(net, LOSS, x, y, bias=True)
    for l, f in factors.items():
        q = torch.einsum("sr,si,sj->rij", f.weights, f.states, f.states) / 300
        assert torch.allclose(q, exact[l], rtol=1e-9, atol=1e-12)


def test_promise_holds_on_planted_spectra_over_many_seeds():
    rule = dict(tolerance=0.05, initial=128, lanczos_steps=8, warm_steps=8)
    realized, promised, stopped, z_scores = [], [], 0, []
    trials = 30
    for seed in range(trials):
        source = PlantedSource(seed)
        result = adaptive_estimate(source, AdaptiveRule(**rule, seed=seed))
        if result is None:
            continue
        stopped += 1
        exact = {l: source.exact(l) for l in source.locations}
        best = max(float(torch.linalg.eigvalsh(q).max()) for q in exact.values())
        value = _rayleigh(exact[result.location], result.row, result.vector)
        realized.append(value / best)
        promised.append(result.efficiency)
        z_scores.append((result.score - value) / result.score_error)
    assert stopped >= 0.6 * trials  # it does stop before k = S here (else the test would say nothing)
    assert all(p >= 0.95 for p in promised)
    held = sum(r >= p for r, p in zip(realized, promised)) / len(realized)
    assert held >= 0.95
    # the held-out score is an unbiased estimate of the chosen direction's exact Rayleigh quotient
    mean_z = sum(z_scores) / len(z_scores)
    assert abs(mean_z) < 3 / math.sqrt(len(z_scores)) + 0.1
    assert sum(abs(z) < 2 for z in z_scores) / len(z_scores) >= 0.85


def _network(n, width=6, seed=3):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = growth.ResidualMLP(3, 2, width, 2).double()
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.sin(x[:, :2]) + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return net, x, y


def test_small_data_is_the_exact_computation_bit_for_bit():
    net, x, y = _network(400)  # 2·k_0 = 512 > S: the estimator hands over to the exact blocks
    exact = topological_derivative(net, LOSS, x, y)
    for estimation in ("adaptive", "auto"):
        got = topological_derivative(net, LOSS, x, y, estimation=estimation)
        assert [p.location for p in got] == [p.location for p in exact]
        assert all(torch.equal(a.weight, b.weight) and a.score == b.score for a, b in zip(got, exact))
        assert got[0].estimate == {"method": "exact", "k": 400}


def test_auto_follows_the_flop_model_and_refuses_what_it_cannot_certify():
    net, x, y = _network(1200, width=6)
    weights = sum(p.numel() for p in net.parameters())
    assert exact_cost_in_epochs(net, [0, 1, 2]) == pytest.approx(3 * 2 * 6 ** 3 / (6 * weights))
    with pytest.raises(ValueError, match="multi_neuron"):
        topological_derivative(net, LOSS, x, y, estimation="adaptive", multi_neuron=True)
    with pytest.raises(ValueError, match="estimation"):
        topological_derivative(net, LOSS, x, y, estimation="sometimes")
    assert topological_derivative(net, LOSS, x, y, estimation="auto", multi_neuron=True)[0].estimate["method"] == "exact"


def test_growth_record_logs_the_estimate():
    net, x, y = _network(3000, width=8)
    ctx = Context(0, 0, (x, y), None, LOSS, 3000, torch.device("cpu"), torch.Generator())
    event = growth.TopologicalStrategy(estimation="adaptive").grow(net, ctx)
    estimate = event["estimate"]
    assert estimate["method"] in ("adaptive", "exact") and 0 < estimate["k"] <= 3000
    if estimate["method"] == "adaptive":
        assert estimate["efficiency_bound"] >= 0.95 and estimate["score_error"] > 0
