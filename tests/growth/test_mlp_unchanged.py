"""The MLP results are unchanged by the growable refactor (issue 13): the same seed gives the same numbers.

``PINNED`` was produced by this file's :func:`numbers` run on the code *before* the refactor (main at
f210321, growth methods reading ``net.width``/``net.head`` directly), and the refactored code
reproduced every value bit for bit on the machine where it was made; the tolerance only allows for a
different BLAS. The smoke runs of boston and heat (every growth method) were compared the same way:
identical metrics.json, log.jsonl and stages.json.
"""
import pytest
import torch

import growth

PINNED = {'td': [0.30275925137993864, 0.23967167199922362],
          'td_bias_multi': [0.6456209710873315, 0.4897902021944889],
          'sensli_two': [0.01000468990796409, 0.013236718882509404],
          'sensli_one': [0.2263808685096001, 0.196200439242792, 0.4160801428749726],
          'sensli_one_ref': [0.2263808685096001, 0.196200439242792, 0.4160801428749726],
          'sensli_two_ref': [0.01000468990796409, 0.013236718882509404],
          'topological': [[1, 0.23151873475394819], [2, 0.18300986892411839], 0.1349388110061031],
          'sensitivity': [[1, 0.24685445126165956], [1, 0.19195968273271213], 0.13565484289133584],
          'random': [[1, 0.24684855150302112], [0, 0.20379580689658233], 0.15447774517137208],
          'net2deeper': [[1, 0.24685448651464453], [2, 0.20540965538274789], 0.15075376519717332]}


def problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g, dtype=torch.float64)
    y = torch.sin(x.sum(1, keepdim=True)) + 0.1 * torch.randn(64, 1, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    net = growth.ResidualMLP(3, 1, 5, 1).double()
    return net, x, y


def numbers():
    out = {}
    loss = torch.nn.MSELoss()
    net, x, y = problem()
    out["td"] = [p.score for p in growth.topological_derivative(net, loss, x, y, estimation="exact")]
    out["td_bias_multi"] = [p.score for p in growth.topological_derivative(net, loss, x, y, bias=True, multi_neuron=True,
                                                                           estimation="exact")]
    out["sensli_two"] = [p.score for p in growth.sensitivity_scores(net, loss, x, y)]
    tanh = growth.ResidualMLP(3, 1, 5, 2, activation="tanh").double()
    out["sensli_one"] = [p.score for p in growth.sensitivity_scores(tanh, loss, x, y, kind="one_weight")]
    out["sensli_one_ref"] = [p.score for p in growth.sensitivity_scores_reference(tanh, loss, x, y, kind="one_weight")]
    out["sensli_two_ref"] = [p.score for p in growth.sensitivity_scores_reference(net, loss, x, y)]
    for name, strategy in [("topological", growth.TopologicalStrategy(estimation="exact")),
                           ("sensitivity", growth.SensitivityStrategy()),
                           ("random", growth.RandomInsertion()), ("net2deeper", growth.Net2DeeperNet())]:
        net, x, y = problem()
        result = growth.grow(net, strategy, (x, y), epochs_per_stage=5, max_stages=3, batch_size=16, seed=1,
                             optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
        out[name] = [[r.get("location"), r["loss_after"]] for r in result.history if r["event"] == "growth"]
        out[name].append(result.val_loss)
    return out



def test_mlp_numbers_match_the_pre_refactor_code():
    got = numbers()
    assert got.keys() == PINNED.keys()
    for key, expected in PINNED.items():
        assert _flat(got[key]) == pytest.approx(_flat(expected), rel=1e-9, abs=1e-12), key


def _flat(values):
    return [v for item in values for v in (_flat(item) if isinstance(item, list) else [item])]
