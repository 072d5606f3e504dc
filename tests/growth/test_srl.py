"""Sequential residual learning: monotone training residual, the sum module, baseline + SRL, the
stopping rule, the log records, save/load."""
import json

import pytest
import torch

import growth
from growth import FixedBaseline, ResidualMLP, grow
from growth.srl import ResidualSum, select_srl_epochs, sequential_residual_learning


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.sin(4 * x[:, :1]) * torch.cos(3 * x[:, 1:2]) + 0.3 * x[:, :1]
    return x, y


TRAIN, TEST = data(160, 0), data(400, 1)


def baseline(epochs=60):
    torch.manual_seed(0)
    net = ResidualMLP(2, 1, 16, 1, activation="elu", input_activation=None).double()
    return grow(net, FixedBaseline(), TRAIN, epochs_per_stage=epochs, batch_size=32, progress=False).net


def mse(model, d):
    with torch.no_grad():
        return float(((model(d[0]) - d[1]) ** 2).mean())


def test_baseline_plus_srl_lowers_train_and_test_error_monotonically(tmp_path):
    base = baseline()
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    res = sequential_residual_learning(base, TRAIN, n_stages=4, width=16, epochs=80, batch_size=32,
                                       optimizer=lambda p: torch.optim.Adam(p, lr=3e-3), seed=0, out_dir=tmp_path)
    events = [r for r in res.history if r["event"] == "growth"]
    assert len(events) == len(res.model.corrections) == 4 and res.stop_reason == "max stages"
    losses = [events[0]["loss_before"]] + [e["loss_after"] for e in events]
    assert all(b <= a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.5 * losses[0]
    assert mse(res.model, TEST) < mse(base, TEST)
    assert all(torch.equal(p, before[n]) for n, p in base.named_parameters())  # base untouched
    with torch.no_grad():  # one module whose output is the sum
        expected = base(TEST[0])
        for q in res.model.corrections:
            expected = expected + q(TEST[0])
        torch.testing.assert_close(res.model(TEST[0]), expected, rtol=0, atol=0)
    lines = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [l["stage"] for l in lines if l["event"] == "growth"] == [1, 2, 3, 4]
    assert sum(l["event"] == "epoch" for l in lines) == 4 * 80
    grown = [l for l in lines if l["event"] == "growth"]
    assert all(l["parameters_after"] > l["parameters_before"] for l in grown)


def test_stage_that_does_not_decrease_enough_is_discarded_and_stops():
    base = baseline(20)
    res = sequential_residual_learning(base, TRAIN, n_stages=3, epochs=5, min_rel_decrease=0.99, seed=0)
    assert res.stop_reason == "no decrease" and len(res.model.corrections) == 0
    assert [r["accepted"] for r in res.history if r["event"] == "growth"] == [False]
    assert mse(res.model, TEST) == mse(base, TEST)


def test_validation_monitor_and_continuing_a_residual_sum():
    base = baseline(20)
    val = data(60, 2)
    first = sequential_residual_learning(base, TRAIN, val, n_stages=1, epochs=40, batch_size=32, seed=0)
    more = sequential_residual_learning(first.model, TRAIN, val, n_stages=1, epochs=40, batch_size=32, seed=1)
    assert len(more.model.corrections) <= 2 and len(first.model.corrections) == 1
    event = [r for r in more.history if r["event"] == "growth"][0]
    assert event["monitored_before"] == pytest.approx(mse(first.model, val), rel=1e-12)
    if event["accepted"]:
        assert event["monitored_after"] <= event["monitored_before"]


def test_residual_sum_saves_and_loads_bit_for_bit(tmp_path):
    res = sequential_residual_learning(baseline(5), TRAIN, n_stages=2, epochs=3, seed=0)
    growth.save(res.model, tmp_path / "m.pt")
    loaded = growth.load(tmp_path / "m.pt")
    assert isinstance(loaded, ResidualSum) and len(loaded.corrections) == len(res.model.corrections)
    with torch.no_grad():
        assert torch.equal(loaded(TEST[0]), res.model(TEST[0]))


def spirals(n, seed, classes=3):
    """``classes`` interleaved noisy spiral arms in the plane; labels 0..classes−1."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(classes, (n,), generator=g)
    r = torch.rand(n, generator=g, dtype=torch.float64)
    angle = 3.0 * r + 2 * torch.pi * label / classes + 0.2 * torch.randn(n, generator=g, dtype=torch.float64)
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1), label


def test_classification_srl_boosts_logits_by_cross_entropy():
    train, val = spirals(300, 0), spirals(150, 1)
    torch.manual_seed(0)
    net = ResidualMLP(2, 3, 8, 1, activation="elu", input_activation=None).double()
    ce = torch.nn.CrossEntropyLoss()
    base = grow(net, FixedBaseline(), train, loss_fn=ce, epochs_per_stage=30, batch_size=50, progress=False).net
    res = sequential_residual_learning(base, train, val, n_stages=3, width=16, epochs=60, batch_size=50,
                                       optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), seed=0, loss_fn=ce)
    events = [r for r in res.history if r["event"] == "growth"]
    kept = [e for e in events if e["accepted"]]
    assert len(kept) == len(res.model.corrections) >= 2
    train_losses = [events[0]["loss_before"]] + [e["loss_after"] for e in kept]
    assert all(b <= a for a, b in zip(train_losses, train_losses[1:])), train_losses
    assert train_losses[-1] < 0.8 * train_losses[0]
    val_losses = [events[0]["monitored_before"]] + [e["monitored_after"] for e in kept]
    assert all(b < a for a, b in zip(val_losses, val_losses[1:])), val_losses
    assert events[0]["monitored_before"] == pytest.approx(growth.evaluate_loss(base, ce, *val), rel=1e-12)

    def accuracy(model, d):
        with torch.no_grad():
            return float((model(d[0]).argmax(1) == d[1]).double().mean())

    assert accuracy(res.model, val) > accuracy(base, val)
    assert all(0 <= e["kept_epoch"] <= 60 for e in events)


def test_mse_stage_is_the_residual_fit_and_keeps_the_best_validation_epoch():
    base = baseline(20)
    val = data(60, 2)
    records = []
    res = sequential_residual_learning(base, TRAIN, val, n_stages=1, width=16, epochs=50, batch_size=32,
                                       optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), seed=0,
                                       callback=lambda record, _model: records.append(record))
    epochs = [r for r in records if r["event"] == "epoch"]
    event = [r for r in records if r["event"] == "growth"][0]
    best = min(epochs, key=lambda r: r["val_loss"])
    assert event["kept_epoch"] == best["epoch"] and len(epochs) == 50
    assert event["monitored_after"] == pytest.approx(best["val_loss"], rel=1e-10)
    with torch.no_grad():  # the epoch records' val_loss is the MSE of base + Q, i.e. Q against the residual
        q = res.model.corrections[0]
        assert mse(res.model, val) == pytest.approx(float(((q(val[0]) - (val[1] - base(val[0]))) ** 2).mean()), rel=1e-10)


def test_cross_validated_srl_epochs_minimize_the_fold_averaged_validation_loss():
    folds = [(data(80, 10 + i), data(30, 20 + i)) for i in range(2)]
    models = []
    for train, _ in folds:
        torch.manual_seed(0)
        net = ResidualMLP(2, 1, 16, 1, activation="elu", input_activation=None).double()
        models.append(grow(net, FixedBaseline(), train, epochs_per_stage=10, batch_size=40, progress=False).net)
    settings = dict(width=16, epochs=15, batch_size=40, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), seed=0)
    chosen = select_srl_epochs(models, folds, n_stages=2, **settings)
    assert 1 <= len(chosen) <= 2 and all(1 <= e <= 15 for e in chosen)
    curves = []  # stage 1 by hand: each fold's validation curve of base + Q_1, epochs 0..15
    for model, (train, val) in zip(models, folds):
        records = []
        sequential_residual_learning(model, train, val, n_stages=1, callback=lambda record, _model: records.append(record), **settings)
        curves.append([mse(model, val)] + [r["val_loss"] for r in records if r["event"] == "epoch"])
    mean = [(a + b) / 2 for a, b in zip(*curves)]
    assert chosen[0] == min(range(16), key=mean.__getitem__)
    refit = sequential_residual_learning(models[0], folds[0][0], **{**settings, "epochs": chosen})
    assert [r["kept_epoch"] for r in refit.history if r["event"] == "growth"] == chosen
    assert select_srl_epochs(models, folds, n_stages=2, min_rel_decrease=0.99, **settings) == []
