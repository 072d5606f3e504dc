"""Layerwise strategy through the growth trainer: freezing, identity insertion, thresholding report,
schedule, refusals, saturation (Boston end to end: tests/problems/test_boston.py)."""
import pytest
import torch

from growth import PlainMLP, ResidualMLP, grow
from growth.layerwise import LayerwiseStrategy
from growth.regularizers import Manifold, PhysicsPenalty, StageSchedule


def regression_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.sin(3 * x[:, :1]) * x[:, 1:2] + 0.5 * x[:, 2:3] ** 2
    return x, y


def small_net(activation="elu", seed=0):
    torch.manual_seed(seed)
    return ResidualMLP(3, 1, 8, 1, activation=activation, input_activation=None).double()


def test_stage_freezes_earlier_layers_and_new_block_starts_as_identity():
    x, y = regression_data()
    net = small_net()
    strategy = LayerwiseStrategy(alpha=1e-4, manifold=Manifold.from_clusters(x, 3, seed=0),
                                 schedule=StageSchedule(1e-2, 0.5), physics=PhysicsPenalty(
                                     lambda pred, batch: (pred ** 2).mean(), 1e-3))
    snapshots = {}

    def at_growth(record, model):
        if record["event"] == "growth":
            assert model is net
            snapshots[record["stage"]] = {n: p.detach().clone() for n, p in net.named_parameters()}
            assert record["actual_change"] == 0.0  # the zero block is the identity, bit for bit

    result = grow(net, strategy, (x, y), epochs_per_stage=15, max_stages=3, batch_size=32, seed=0,
                  callback=at_growth, progress=False)
    assert result.stop_reason == "max stages" and net.n_blocks == 3
    assert set(snapshots) == {0, 1}
    after_stage_1 = snapshots[1]  # taken after block 3 was inserted, i.e. after stage 1 trained block 2
    for name, before in snapshots[0].items():  # state at the insertion of block 2
        now = after_stage_1[name]
        if name.startswith(("input_layer", "blocks.0.")):
            assert torch.equal(now, before), f"{name} changed while frozen"
        elif name.startswith("head"):
            assert not torch.equal(now, before), "the head must be trained, not frozen"
    new_block = after_stage_1["blocks.1.linear.weight"]
    assert snapshots[0]["blocks.1.linear.weight"].abs().max() == 0  # inserted as W = 0
    assert new_block.abs().max() > 0  # and trained in stage 1
    final = dict(net.named_parameters())
    for name in ("input_layer.weight", "blocks.0.linear.weight", "blocks.1.linear.bias"):
        assert torch.equal(final[name], after_stage_1[name])
    for name, p in final.items():
        assert p.requires_grad == name.startswith(("blocks.2.", "head"))


def test_threshold_report_matches_counted_zeros_and_schedule():
    x, y = regression_data()
    net = small_net()
    strategy = LayerwiseStrategy(alpha=3e-3, manifold=Manifold.from_labels(x, (x[:, 0] > 0).long()),
                                 schedule=StageSchedule(0.2, 0.5), threshold=1e-2)
    result = grow(net, strategy, (x, y), epochs_per_stage=20, max_stages=3, batch_size=32, seed=1,
                  progress=False)
    stages = [r for r in result.history if r["event"] == "stage"]
    assert [r["gamma"] for r in stages] == pytest.approx([0.2, 0.1, 0.05])
    last = stages[-1]["active_fraction"]
    assert list(last) == ["input", "block_1", "block_2", "block_3", "head"]
    for key, module in (("block_3", net.blocks[2]), ("head", net.head), ("input", net.input_layer)):
        flat = torch.cat([p.detach().flatten() for p in module.parameters()])
        n_zero = int((flat == 0).sum())
        assert n_zero == round((1 - last[key]) * flat.numel())
        assert (flat.numel() - n_zero) / flat.numel() == last[key]
    thresholded = torch.cat([p.detach().flatten() for p in net.blocks[2].parameters()])
    assert 0 < (thresholded == 0).sum() and thresholded[thresholded != 0].abs().min() > 1e-2


@pytest.mark.parametrize("activation", ["relu", "td"])
def test_refuses_activations_with_zero_slope_at_zero(activation):
    x, y = regression_data(16)
    with pytest.raises(ValueError, match=r"σ'\(0\) ≠ 0.*Use 'elu' or 'tanh'"):
        grow(small_net(activation), LayerwiseStrategy(), (x, y), epochs_per_stage=1, progress=False)


def test_refuses_networks_without_residual_blocks():
    x, y = regression_data(16)
    net = PlainMLP(3, 1, 8, 1, activation="elu").double()
    with pytest.raises(ValueError, match="residual blocks"):
        grow(net, LayerwiseStrategy(), (x, y), epochs_per_stage=1, progress=False)


def test_saturation_stops_on_relative_validation_gain():
    x, y = regression_data(128)
    train, val = (x[:96], y[:96]), (x[96:], y[96:])
    result = grow(small_net(), LayerwiseStrategy(), train, val, epochs_per_stage=30, max_stages=10,
                  min_rel_improvement=0.5, patience=1, batch_size=32, progress=False)
    stages = [r for r in result.history if r["event"] == "stage"]
    assert result.stop_reason == "validation plateau"
    assert stages[-1]["val_loss"] > (1 - 0.5) * min(r["val_loss"] for r in stages[:-1])
    assert len(stages) < 10



def test_manifold_penalty_with_the_frozen_prefix_cached_is_exact():
    """From stage 1 on h_{T−1} of the manifold set is computed once per stage: the penalty and its
    gradient equal those of the full forward pass."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    net = ResidualMLP(3, 2, 6, 2, activation="elu").double()
    with torch.no_grad():
        net.blocks[-1].linear.weight.normal_(0, 0.3)
    x = torch.randn(8, 3, dtype=torch.float64)
    strategy = LayerwiseStrategy(manifold=Manifold.from_noisy_copies(x, 4, 0.05), schedule=StageSchedule(1.0, 1.0))
    ctx = SimpleNamespace(stage=1)
    cached = strategy.penalty(net, x, None, None, ctx)
    (g_cached,) = torch.autograd.grad(cached, net.blocks[-1].linear.weight)
    full = strategy.manifold(lambda inputs: net.hidden_states(inputs)[-1])
    (g_full,) = torch.autograd.grad(full, net.blocks[-1].linear.weight)
    torch.testing.assert_close(cached, full, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(g_cached, g_full, rtol=1e-12, atol=1e-14)
