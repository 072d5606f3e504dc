"""Growth-engine benchmarks (issue 7): ratios measured side by side in one run.

* topological derivative (all locations) / one training epoch on the same data;
* dense (n²×n²) eigendecomposition, the authors' way / batched block ``eigh`` (speed-up, same λ_max);
* SensLI scores on the doubled network / from hooks on the real network (speed-up, same scores);
* ``grow`` with a fixed network / a plain PyTorch loop doing the same work (trainer overhead).
"""
from __future__ import annotations

import statistics
import time

import torch

import growth
from bench._timing import alternating_ratios
from growth.topological import dense_q, top_direction

LOSS = torch.nn.MSELoss()
SIZES = {  # width, blocks (locations = blocks + 1), samples, repeats
    "smoke": {"td": (16, 4, 1000), "eig": 16, "sens": (16, 4, 1000), "trainer": (16, 2, 1000, 3), "repeats": 2},
    "full": {"td": (128, 4, 10000), "eig": 32, "sens": (128, 4, 10000), "trainer": (64, 4, 10000, 5), "repeats": 3},
}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _problem(width, n_blocks, samples, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = growth.ResidualMLP(20, 10, width, n_blocks).to(dtype)
    x = torch.randn(samples, 20, generator=g, dtype=dtype)
    y = torch.randn(samples, 10, generator=g, dtype=dtype)
    return net, x, y


def _entry(name, values, unit, target, detail):
    return {"name": name, "value": statistics.median(values), "repeats": values, "unit": unit,
            "target": target, "detail": detail}


def _plain_epoch(net, x, y, opt, generator, batch_size):
    order = torch.randperm(x.shape[0], generator=generator)
    for i in range(0, x.shape[0], batch_size):
        idx = order[i:i + batch_size]
        opt.zero_grad(set_to_none=True)
        LOSS(net(x[idx]), y[idx]).backward()
        opt.step()


def bench_td_vs_epoch(width, n_blocks, samples, repeats, batch_size=128):
    net, x, y = _problem(width, n_blocks, samples)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    ratios = []
    for _ in range(repeats):
        t_epoch = _timed(lambda: _plain_epoch(net, x, y, opt, g, batch_size))
        t_td = _timed(lambda: growth.topological_derivative(net, LOSS, x, y, batch_size=2048))
        ratios.append(t_td / t_epoch)
    return _entry("growth: topological derivative (all locations) / one training epoch", ratios, "ratio", "<= 1",
                  f"width {width}, {n_blocks + 1} locations, {samples} samples, float32, epoch: Adam, "
                  f"batch {batch_size}; TD cost 2·S·n³ per location vs ~6·S·n² per block for an epoch")


def bench_dense_vs_blocks(width, repeats):
    net, x, y = _problem(width, 1, 2000, dtype=torch.float64)
    q = growth.q_blocks(net, LOSS, x, y, locations=[1])[1]
    speedups = []
    torch.linalg.eigh(dense_q(q)), top_direction(q)  # warm-up (LAPACK workspaces)
    for _ in range(2 * repeats):
        t_dense = _timed(lambda: torch.linalg.eigh(dense_q(q)))
        t_block = _timed(lambda: top_direction(q))
        speedups.append(t_dense / t_block)
    top_dense = float(torch.linalg.eigvalsh(dense_q(q))[-1])
    top_block = top_direction(q)[2]
    rel = abs(top_dense - top_block) / abs(top_dense)
    return [_entry("growth: dense n²×n² eigh / block top eigenpair (speed-up)", speedups, "x", ">= 100",
                   f"width {width} (dense {width ** 2}×{width ** 2} with eigenvectors, as the authors; blocks: "
                   f"eigvalsh of {width} blocks {width}×{width} + eigh of the top block), float64"),
            _entry("growth: λ_max(Q) dense vs blocks, relative difference", [rel], "ratio", "<= 1e-8",
                   f"width {width}, float64, λ_max = {top_block:.6g}")]


def bench_sensitivity(width, n_blocks, samples, repeats):
    net, x, y = _problem(width, n_blocks, samples)
    speedups = []
    for _ in range(repeats):
        t_ref = _timed(lambda: growth.sensitivity_scores_reference(net, LOSS, x, y))
        t_hook = _timed(lambda: growth.sensitivity_scores(net, LOSS, x, y))
        speedups.append(t_ref / t_hook)
    a = torch.tensor([p.score for p in growth.sensitivity_scores(net, LOSS, x, y)])
    b = torch.tensor([p.score for p in growth.sensitivity_scores_reference(net, LOSS, x, y)])
    rel = float(((a - b).abs() / b.abs()).max())
    return [_entry("growth: SensLI doubled network / hooks on the real network (speed-up)", speedups, "x",
                   ">= 2", f"two-weight blocks, width {width}, {n_blocks + 1} locations, {samples} samples"),
            _entry("growth: SensLI scores hooks vs doubled network, max relative difference", [rel], "ratio",
                   "<= 1e-4", f"float32, {n_blocks + 1} locations")]


def bench_trainer_overhead(width, n_blocks, samples, epochs, repeats, batch_size=128):
    _, x, y = _problem(width, n_blocks, samples)
    xv, yv = x[:1000], y[:1000]

    def plain():
        net = _problem(width, n_blocks, samples)[0]
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            _plain_epoch(net, x, y, opt, g, batch_size)
            with torch.no_grad():
                float(LOSS(net(xv), yv))

    def trainer():
        growth.grow(_problem(width, n_blocks, samples)[0], growth.FixedBaseline(), (x, y), (xv, yv),
                    epochs_per_stage=epochs, batch_size=batch_size, progress=False)

    ratios = alternating_ratios(trainer, plain, repeats)
    return _entry("growth: grow() / plain PyTorch loop, fixed network", ratios, "ratio", "<= 1.05",
                  f"width {width}, {n_blocks} blocks, {samples} samples, {epochs} epochs, Adam, batch {batch_size}, "
                  "validation loss every epoch in both")


def entries(scale: str) -> list[dict]:
    s = SIZES[scale]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # stable timings on a shared machine
    try:
        out = [bench_td_vs_epoch(*s["td"], s["repeats"])]
        out += bench_dense_vs_blocks(s["eig"], s["repeats"])
        out += bench_sensitivity(*s["sens"], s["repeats"])
        out.append(bench_trainer_overhead(*s["trainer"], s["repeats"]))
    finally:
        torch.set_num_threads(threads)
    return out


if __name__ == "__main__":
    import sys
    for e in entries(sys.argv[1] if len(sys.argv) > 1 else "smoke"):
        print(f"{e['name']}: {e['value']:.4g} {e['unit']} (target {e['target']}) [{e['detail']}]")
