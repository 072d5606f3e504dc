"""Convolution and token-wise insertion operators on the residual CNN, the ViT and a wrapped user model:
exact function preservation, the second-order prediction, Q against a finite-difference Hessian, an
explicit unfolding and the dense formula on flattened tokens, SensLI against autograd."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import growth
from growth.topological import q_blocks, subsample_rows

LOSS = torch.nn.MSELoss()
KINDS = ["cnn_pool", "cnn_field", "vit_cls", "vit_mean", "wrapped"]


class UserResNet(nn.Module):
    """A user's model: conv stem, two nn.Sequential stages of ReLU residual blocks, a pooled linear head."""

    def __init__(self, channels=2):
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        self.stage1 = nn.Sequential(UserBlock(channels))
        self.stage2 = nn.Sequential(UserBlock(channels), UserBlock(channels))
        self.head = nn.Linear(channels, 3)

    def forward(self, x):
        h = self.stage2(nn.functional.avg_pool2d(self.stage1(self.stem(x)), 2))
        return self.head(h.mean(dim=(2, 3)))


class UserBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + torch.relu(self.conv(x))


def tiny(kind="cnn_pool", n_blocks=1, channels=2, size=(5, 4), activation="td", seed=0):
    """(network, inputs, targets) in float64; ``size`` only for the CNN (the ViT takes 4×4, patches 2×2)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    if kind.startswith("cnn"):
        head = kind.split("_")[1]
        out = 3 if head == "pool" else 2
        net = growth.ResidualCNN(1, out, channels, n_blocks, size, activation=activation, head=head)
        x = torch.randn(6, 1, *size, generator=g, dtype=torch.float64)
        y = torch.randn(6, out, *(size if head == "field" else ()), generator=g, dtype=torch.float64)
        return net.double(), x, y
    x = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randn(6, 3, generator=g, dtype=torch.float64)
    if kind.startswith("vit"):
        net = growth.VisionTransformer(1, 3, (4, 4), 2, 4, n_blocks, heads=2, activation=activation,
                                       pool=kind.split("_")[1]).double()
        return net, x, y
    return growth.wrap(UserResNet().double(), ["stage1", "stage2.0", "stage2"], x[:1], activation=activation), x, y


@pytest.mark.parametrize("kind", KINDS)
def test_zero_blocks_preserve_the_function_exactly(kind):
    net, x, _ = tiny(kind, n_blocks=2)
    before = net(x)
    for location in range(len(net.locations())):
        grown = copy.deepcopy(net)
        growth.insert_residual(grown, location)
        assert torch.equal(grown(x), before), location
        op = grown.locations()[location].operator
        virtual = op.two_weight_block("td", op.identity_weight(0.8, dtype=torch.float64), dtype=torch.float64)
        with torch.no_grad():
            next(virtual.parameters())[:].normal_()  # W1 and b are free: W2 = 0 keeps the identity
        grown.insert_block(location, block=virtual)
        assert torch.equal(grown(x), before), location
        assert len(grown.locations()) == len(net.locations()) + 2


def _explicit_q(net, x, y, location, bias=False):
    """Q_r = σ''(0) Σ_{s,q} λ_{s,r,q} p p ᵀ with the patches cut out of a zero-padded state by hand."""
    (states, adjoints), = growth.states_and_adjoints(net, LOSS, x, y)
    h, lam = states[location], adjoints[location]
    c, height, width = h.shape[1:]
    k = net.kernel_size
    padded = F.pad(h, (k // 2,) * 4)
    m = c * k * k + int(bias)
    q = torch.zeros(c, m, m, dtype=h.dtype)
    for s in range(h.shape[0]):
        for i in range(height):
            for j in range(width):
                p = padded[s, :, i:i + k, j:j + k].reshape(-1)
                if bias:
                    p = torch.cat([p, p.new_ones(1)])
                for r in range(c):
                    q[r] += lam[s, r, i, j] * torch.outer(p, p)
    return net.activation.d2 * q


@pytest.mark.parametrize("bias", [False, True])
def test_q_equals_an_explicit_unfolding(bias):
    net, x, y = tiny("cnn_pool", n_blocks=1)
    blocks = q_blocks(net, LOSS, x, y, bias=bias)
    for location in range(net.n_locations):
        assert torch.allclose(blocks[location], _explicit_q(net, x, y, location, bias), rtol=1e-10, atol=1e-13)


def test_position_subsampling_weights_a_fixed_subset():
    net, x, y = tiny("cnn_pool", n_blocks=0, size=(4, 4))
    (states, adjoints), = growth.states_and_adjoints(net, LOSS, x, y)
    op = net.locations()[0].operator
    rows, lam = op.rows(states[0]), op.adjoint_rows(adjoints[0])
    keep = subsample_rows(16, 5, 3)
    expected = torch.einsum("sqr,sqi,sqj->rij", lam[:, keep], rows[:, keep], rows[:, keep]) * 16 / 5
    got = q_blocks(net, LOSS, x, y, positions=5, subsample_seed=3)[0]
    assert torch.allclose(got, expected * net.activation.d2, rtol=1e-12)
    assert torch.equal(q_blocks(net, LOSS, x, y, positions=16)[0], q_blocks(net, LOSS, x, y)[0])


@pytest.mark.parametrize("kind", KINDS)
def test_finite_difference_hessian_equals_q(kind):
    net, x, y = tiny(kind, n_blocks=1, size=(3, 3))
    location = 1
    q = q_blocks(net, LOSS, x, y)[location]
    block = growth.insert_residual(net, location)
    weight = block.scored_parameters()[0]
    n = weight.numel()

    def grad(flat):
        with torch.no_grad():
            weight.copy_(flat.view_as(weight))
        net.zero_grad()
        LOSS(net(x), y).backward()
        return weight.grad.reshape(-1).clone()

    step = 1e-5
    hessian = torch.stack([(grad(step * e) - grad(-step * e)) / (2 * step)
                           for e in torch.eye(n, dtype=torch.float64)], dim=1)
    expected = -torch.block_diag(*q)  # J(εΦ) − J(0) = −(ε²/2) Σ_r φ_rᵀ Q_r φ_r
    assert torch.allclose(hessian, hessian.T, atol=1e-7)
    assert torch.allclose(hessian, expected, rtol=1e-5, atol=1e-8 * float(q.abs().max()))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_actual_over_predicted_change_tends_to_one(bias, kind):
    net, x, y = tiny(kind, n_blocks=1, channels=3)
    base = LOSS(net(x), y).item()
    best = max(growth.topological_derivative(net, LOSS, x, y, bias=bias), key=lambda p: p.eigenvalue)
    assert best.eigenvalue > 0
    ratios = {}
    for eps in [1e-1, 1e-2, 1e-3]:
        grown = copy.deepcopy(net)
        growth.apply_proposal(grown, best.with_eps(eps))
        ratios[eps] = (LOSS(grown(x), y).item() - base) / -best.with_eps(eps).predicted_decrease
    assert abs(ratios[1e-3] - 1) < 0.01, ratios
    assert abs(ratios[1e-3] - 1) <= abs(ratios[1e-1] - 1) + 1e-12, ratios


@pytest.mark.parametrize("block,activation", [("two_weight", "td"), ("one_weight", "tanh")])
@pytest.mark.parametrize("kind", KINDS)
def test_sensli_scores_equal_gradients_of_the_extended_network(kind, block, activation):
    net, x, y = tiny(kind, n_blocks=2, activation=activation)
    fast = growth.sensitivity_scores(net, LOSS, x, y, kind=block)
    reference = growth.sensitivity_scores_reference(net, LOSS, x, y, kind=block)
    assert [p.score for p in fast] == pytest.approx([p.score for p in reference], rel=1e-10)
    assert all(p.score > 0 for p in fast)


@pytest.mark.parametrize("strategy", [growth.TopologicalStrategy(), growth.SensitivityStrategy(),
                                      growth.RandomInsertion(), growth.Net2DeeperNet()], ids=lambda s: s.name)
@pytest.mark.parametrize("kind", ["cnn_pool", "vit_cls", "wrapped"])
def test_every_strategy_grows_every_network(strategy, kind, tmp_path):
    net, x, y = tiny(kind, n_blocks=1, size=(4, 4))
    blocks = net.n_blocks
    result = growth.grow(net, strategy, (x, y), epochs_per_stage=2, max_stages=2, out_dir=tmp_path)
    assert result.net.n_blocks == blocks + 1
    fresh = UserResNet() if kind == "wrapped" else None  # a wrapped model's class is the user's code
    assert torch.equal(growth.load(tmp_path / "network.pt", model=fresh)(x), result.net(x))


def test_token_q_equals_the_dense_formula_on_flattened_tokens():
    net, x, y = tiny("vit_cls", n_blocks=2)
    blocks = q_blocks(net, LOSS, x, y, bias=True)
    (states, adjoints), = growth.states_and_adjoints(net, LOSS, x, y)
    for location, q in blocks.items():
        h = states[location].reshape(-1, net.dim)
        h = torch.cat([h, h.new_ones(h.shape[0], 1)], dim=1)
        lam = adjoints[location].reshape(-1, net.dim)
        dense = net.activation.d2 * sum(lam[i, :, None, None] * torch.outer(h[i], h[i]) for i in range(h.shape[0]))
        assert torch.allclose(q, dense, rtol=1e-10, atol=1e-14)


def test_wrap_refuses_bad_locations():
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="no submodule 'stage3'"):
        growth.wrap(UserResNet().double(), ["stage1", "stage3"], x)
    with pytest.raises(ValueError, match="exactly once, in the order given"):
        growth.wrap(UserResNet().double(), ["stage2", "stage1"], x)
    with pytest.raises(ValueError, match="repeat"):
        growth.wrap(UserResNet().double(), ["stage1", "stage1"], x)


def test_loaders_give_the_tensor_results():
    from torch.utils.data import DataLoader, TensorDataset
    net, x, y = tiny("cnn_pool", n_blocks=1)
    dataset = TensorDataset(x, y)
    exact = growth.topological_derivative(net, LOSS, x, y)
    for data in [DataLoader(dataset, batch_size=4, shuffle=True), dataset]:
        got = growth.topological_derivative(net, LOSS, data, batch_size=5)
        assert [p.score for p in got] == pytest.approx([p.score for p in exact], rel=1e-10)
        sens = growth.sensitivity_scores(net, LOSS, data)
        assert [p.score for p in sens] == pytest.approx([p.score for p in growth.sensitivity_scores(net, LOSS, x, y)],
                                                        rel=1e-10)
    subsampled = growth.topological_derivative(net, LOSS, x, y, subsample=3, subsample_seed=2)
    from_loader = growth.topological_derivative(net, LOSS, DataLoader(dataset, batch_size=2), subsample=3,
                                                subsample_seed=2)
    assert [p.score for p in from_loader] == pytest.approx([p.score for p in subsampled], rel=1e-10)


def test_the_trainer_on_a_full_batch_loader_repeats_the_tensor_run():
    from torch.utils.data import DataLoader, TensorDataset
    runs = []
    for as_loader in (False, True):
        net, x, y = tiny("cnn_pool", n_blocks=1)
        train = DataLoader(TensorDataset(x, y), batch_size=len(x)) if as_loader else (x, y)
        result = growth.grow(net, growth.TopologicalStrategy(), train, (x[:3], y[:3]), epochs_per_stage=3,
                             max_stages=2)
        runs.append([(r["event"], r.get("train_loss"), r.get("loss_after")) for r in result.history])
    assert runs[0] == runs[1]
    assert any(event == "growth" for event, *_ in runs[0])


def test_the_trainer_shuffles_a_dataset_with_its_seed():
    from torch.utils.data import TensorDataset
    histories = []
    for seed in (3, 3, 4):
        net, x, y = tiny("vit_mean", n_blocks=1)
        result = growth.grow(net, growth.RandomInsertion(), TensorDataset(x, y), batch_size=2, epochs_per_stage=2,
                             max_stages=2, seed=seed)
        histories.append([r.get("train_loss") for r in result.history if r["event"] == "epoch"])
    assert histories[0] == histories[1] != histories[2]


@pytest.mark.parametrize("kind", ["cnn_pool", "vit_cls"])
def test_adaptive_factors_rebuild_q_and_own_their_rows(kind):
    from growth.adaptive_td import OperatorQSource
    net, x, y = tiny(kind, n_blocks=1)
    source = OperatorQSource(net, LOSS, x, y, d2=net.activation.d2, bias=True)
    factors = source.factors(torch.arange(len(x)))
    exact = q_blocks(net, LOSS, x, y, bias=True)
    rows = net.locations()[0].operator.rows_per_sample
    for location, f in factors.items():
        rebuilt = torch.einsum("Rr,Ri,Rj->rij", f.weights, f.states, f.states) / len(x)
        assert torch.allclose(rebuilt, exact[location], rtol=1e-10, atol=1e-14)
        assert torch.equal(f.owner, torch.arange(len(x)).repeat_interleave(rows))
    proposals = growth.topological_derivative(net, LOSS, x, y, estimation="adaptive")  # 2k >= S: exact fallback
    assert [p.eigenvalue for p in proposals] == pytest.approx(
        [float(torch.linalg.eigvalsh(q).max()) for q in q_blocks(net, LOSS, x, y).values()], rel=1e-10)


def test_wrapping_leaves_batch_norm_statistics_alone():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(32, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net = growth.wrap(model, ["1"], torch.randn(4, 1, 4, 4))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert net.model.training and net.locations()[0].shape == (2, 4, 4)
