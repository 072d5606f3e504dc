"""Transfer into a frozen base: function preservation, frozen parameters, gradients, the TD prediction."""
import copy

import pytest
import torch

import growth
from growth.transfer import FrozenBase, add_low_rank_adapters, freeze_base, trainable_parameters

LOSS = torch.nn.MSELoss()


def _pretrained(seed=0, width=6, n_blocks=2):
    """A ResidualMLP trained briefly on a source task, and a different target task (float64)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.randn(60, 3, generator=g, dtype=torch.float64)
    source = torch.stack([torch.sin(x[:, 0]) + x[:, 1], x[:, 2] * x[:, 0]], 1)
    target = torch.stack([torch.sin(2 * x[:, 0]) - x[:, 1], x[:, 2] ** 2], 1)
    net = growth.ResidualMLP(3, 2, width, n_blocks).double()
    growth.grow(net, growth.FixedBaseline(), (x, source), epochs_per_stage=30, max_stages=1)
    return net, x, target


def _outputs(net, x):
    with torch.no_grad():
        return net(x)


def _snapshot(net):
    return {name: p.detach().clone() for name, p in net.named_parameters()}


def test_insertion_and_adapters_preserve_the_pretrained_function_exactly():
    net, x, y = _pretrained()
    before = _outputs(net, x)
    frozen = freeze_base(copy.deepcopy(net), train_head=False)
    for location in range(frozen.n_locations):
        grown = copy.deepcopy(frozen)
        grown.insert_block(location)
        assert torch.equal(_outputs(grown, x), before)
    adapted = add_low_rank_adapters(frozen, rank=2, generator=torch.Generator().manual_seed(1))
    assert len(adapted.layers) == 1 + net.n_blocks + 1  # input layer, every block, the frozen head
    assert torch.equal(_outputs(adapted, x), before)


@pytest.mark.parametrize("train_head", [False, True])
def test_td_transfer_trains_only_inserted_blocks_and_head(train_head):
    net, x, y = _pretrained()
    pretrained = _snapshot(net)
    base = freeze_base(copy.deepcopy(net), train_head=train_head)
    base_blocks = {id(b) for b in base.blocks}
    if not train_head:  # nothing trainable yet: the first block goes in before training
        best = max(growth.topological_derivative(base, LOSS, x, y), key=lambda p: p.eigenvalue)
        growth.line_search(base, best, lambda m: growth.evaluate_loss(m, LOSS, x, y))
    result = growth.grow(base, FrozenBase(growth.TopologicalStrategy()), (x, y), epochs_per_stage=5, max_stages=3, patience=10)
    grown = result.net
    inserted = [b for b in grown.blocks if id(b) not in base_blocks]
    assert len(inserted) == len(grown.blocks) - net.n_blocks >= 1
    expected = {id(p) for b in inserted for p in b.parameters()}
    if train_head:
        expected |= {id(p) for p in grown.head.parameters()}
    assert {id(p) for p in trainable_parameters(grown)} == expected
    # one more backward pass: gradients reach exactly the trainable set
    LOSS(grown(x), y).backward()
    has_grad = {id(p) for p in grown.parameters() if p.grad is not None}
    assert has_grad == expected
    # the pretrained parameters did not move, bit for bit
    names = dict(grown.named_parameters())
    kept = {"input_layer.weight", "input_layer.bias"} | (set() if train_head else {"head.weight", "head.bias"})
    for name in kept:
        assert torch.equal(names[name], pretrained[name]), name
    first_inserted = [i for i, b in enumerate(grown.blocks) if id(b) not in base_blocks]
    old = [i for i in range(len(grown.blocks)) if i not in first_inserted]
    for k, i in enumerate(old):
        for leaf in ("weight", "bias"):
            assert torch.equal(names[f"blocks.{i}.linear.{leaf}"], pretrained[f"blocks.{k}.linear.{leaf}"])
    assert result.history[-1]["event"] == "stop"


def test_adapters_train_alone_and_the_base_stays_fixed():
    net, x, y = _pretrained()
    pretrained = _snapshot(net)
    adapted = add_low_rank_adapters(freeze_base(copy.deepcopy(net), train_head=False), rank=2,
                                    generator=torch.Generator().manual_seed(0))
    loss0 = growth.evaluate_loss(adapted, LOSS, x, y)
    growth.grow(adapted, FrozenBase(growth.FixedBaseline()), (x, y), epochs_per_stage=20, max_stages=1)
    assert growth.evaluate_loss(adapted, LOSS, x, y) < loss0
    trained = {name for name, p in adapted.named_parameters() if p.requires_grad}
    assert trained and all(name.endswith((".down", ".up")) for name in trained)
    for name, value in pretrained.items():
        layer, leaf = name.rsplit(".", 1)
        assert torch.equal(adapted.net.get_submodule(layer).base.get_parameter(leaf), value), name


def test_adapted_network_saves_and_loads_bit_for_bit(tmp_path):
    net, x, y = _pretrained()
    adapted = add_low_rank_adapters(freeze_base(net), rank=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        adapted.net.blocks[0].linear.up.normal_()
    growth.save(adapted, tmp_path / "a.pt")
    loaded = growth.load(tmp_path / "a.pt")
    assert torch.equal(_outputs(loaded, x), _outputs(adapted, x))
    assert [n for n, p in loaded.named_parameters() if p.requires_grad] == \
        [n for n, p in adapted.named_parameters() if p.requires_grad]


def test_first_insertion_prediction_on_the_target_loss():
    net, x, y = _pretrained()
    base = freeze_base(net, train_head=False)
    j0 = growth.evaluate_loss(base, LOSS, x, y)
    best = max(growth.topological_derivative(base, LOSS, x, y), key=lambda p: p.eigenvalue)
    assert best.score > 0
    errors = []
    for eps in (1e-1, 1e-2, 1e-3):
        q = best.with_eps(eps)
        grown = copy.deepcopy(base)
        growth.apply_proposal(grown, q)
        errors.append(abs((j0 - growth.evaluate_loss(grown, LOSS, x, y)) / q.predicted_decrease - 1))
    assert errors[2] < 0.01 and errors[2] < errors[1] < errors[0], errors


def test_nothing_trainable_is_refused():
    net, x, y = _pretrained()
    with pytest.raises(ValueError, match="nothing to train"):
        growth.grow(freeze_base(net, train_head=False), FrozenBase(growth.FixedBaseline()), (x, y),
                    epochs_per_stage=1)


def test_new_head_is_fresh_and_trainable():
    net, x, y = _pretrained()
    adapted = freeze_base(net, new_head_outputs=5, generator=torch.Generator().manual_seed(0))
    assert adapted.head.out_features == 5 and adapted(x).shape == (60, 5)
    assert trainable_parameters(adapted) == list(adapted.head.parameters())
