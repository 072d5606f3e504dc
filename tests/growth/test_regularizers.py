"""Regularizers: Φm against the brute-force double sum and finite differences, thresholding counts,
schedule, k-means and the noisy-copies set."""
import numpy as np
import pytest
import torch
from torch import nn

from growth.regularizers import (
    Groups, Kernel, L1, Manifold, PhysicsPenalty, StageSchedule, active_fractions,
    hard_threshold, kmeans, noisy_copies,
)


def brute_force(a, beta):
    """(1/M²) Σ_i Σ_j β_ij ‖a_i − a_j‖² with explicit loops."""
    m = a.shape[0]
    total = 0.0
    for i in range(m):
        for j in range(m):
            total = total + beta[i, j] * ((a[i] - a[j]) ** 2).sum()
    return total / m ** 2


def group_beta(labels):
    labels = torch.as_tensor(labels)
    return (labels[:, None] == labels[None, :]).double()


torch.manual_seed(0)
X = torch.randn(12, 3, dtype=torch.float64)
MAP = nn.Sequential(nn.Linear(3, 4), nn.Tanh()).double()

SOURCES = {
    "labels": lambda: Manifold.from_labels(X, [0, 1, 2, 0, 1, 2, 0, 0, 5, 5, 1, 7]),
    "clusters": lambda: Manifold.from_clusters(X, n_clusters=3, seed=1),
    "kernel": lambda: Manifold.from_kernel(X, bandwidth=1.3),
    "kernel_knn": lambda: Manifold.from_kernel(X, bandwidth=0.7, k_nearest=3),
    "asymmetric_kernel": lambda: Manifold(X, Kernel(torch.rand(12, 12, dtype=torch.float64))),
    "noisy_copies": lambda: Manifold.from_noisy_copies(X[:4], n_copies=3, noise=0.01, seed=2),
}


def beta_of(manifold):
    sim = manifold.similarity
    return group_beta(sim.labels) if isinstance(sim, Groups) else sim.beta


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_manifold_equals_brute_force_double_sum(source):
    manifold = SOURCES[source]()
    value = manifold(MAP)
    expected = brute_force(MAP(manifold.inputs), beta_of(manifold))
    assert value.item() == pytest.approx(expected.item(), rel=1e-12, abs=1e-14)
    assert value.item() > 0


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_manifold_gradient_matches_finite_differences(source):
    manifold = SOURCES[source]()
    a0 = MAP(manifold.inputs).detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: Manifold.penalty(a, manifold.similarity), (a0,))


def test_manifold_subsample_is_exact_on_the_drawn_points():
    manifold = Manifold.from_labels(X, [0, 1] * 6, subsample=5, seed=3)
    value = manifold(MAP)
    index = torch.randperm(12, generator=torch.Generator().manual_seed(3))[:5]
    beta = group_beta(torch.tensor([0, 1] * 6)[index])
    assert value.item() == pytest.approx(brute_force(MAP(X[index]), beta).item(), rel=1e-12)


def test_manifold_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="12 inputs but similarity over 3"):
        Manifold(X, Groups([0, 1, 0]))


def test_noisy_copies_groups_and_noise_level():
    x = torch.randn(5, 200, dtype=torch.float64)
    copies, groups = noisy_copies(x, n_copies=50, noise=0.01, seed=0)
    assert copies.shape == (250, 200) and groups.tolist() == sorted(list(range(5)) * 50)
    rel = (copies - x[groups]).std(dim=1) / x[groups].std(dim=1)
    assert rel.mean().item() == pytest.approx(0.01, rel=0.05)


def test_kmeans_recovers_separated_clusters_and_is_deterministic():
    rng = np.random.RandomState(0)
    centers = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 20]], dtype=float)
    truth = np.repeat(np.arange(5), 30)
    x = centers[truth] + 0.5 * rng.randn(150, 2)
    labels = kmeans(x, 5, seed=4)
    # same partition up to renaming of the clusters
    assert len({(t, l) for t, l in zip(truth, labels)}) == 5
    np.testing.assert_array_equal(labels, kmeans(x, 5, seed=4))


def test_hard_threshold_counts_match_reported_fractions():
    torch.manual_seed(1)
    layers = {"block": nn.Linear(6, 6), "head": nn.Linear(6, 2)}
    with torch.no_grad():
        for m in layers.values():
            for p in m.parameters():
                p.mul_(torch.rand_like(p) < 0.5).add_(1e-5 * torch.randn_like(p))  # half tiny
    fractions = hard_threshold(layers, tol=1e-4)
    for name, m in layers.items():
        flat = torch.cat([p.flatten() for p in m.parameters()])
        n_zero = int((flat == 0).sum())
        assert n_zero > 0
        assert n_zero == round((1 - fractions[name]) * flat.numel())
        assert (flat.numel() - n_zero) / flat.numel() == fractions[name]
        assert flat[flat != 0].abs().min() > 1e-4
    assert active_fractions(layers) == fractions


def test_l1_and_physics_penalty_are_weighted():
    p = [torch.tensor([1.0, -2.0]), torch.tensor([[0.5]])]
    assert L1(0.1)(p).item() == pytest.approx(0.35)
    phys = PhysicsPenalty(lambda pred, batch: ((pred - batch) ** 2).sum(), weight=3.0)
    assert phys(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])).item() == pytest.approx(15.0)


def test_stage_schedule():
    s = StageSchedule(gamma0=0.06, rho=0.5)
    assert s(2) == pytest.approx(0.06) and s(4) == pytest.approx(0.015)
    assert s.for_block(1) == s(2)
    assert StageSchedule(1.0, 1.5)(3) == pytest.approx(1.5)
