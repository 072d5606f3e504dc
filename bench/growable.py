"""Growing networks beyond the MLP (issue 13): ratios measured side by side in one run.

* convolution topological derivative (all locations of a residual CNN) / one training epoch of the
  same network on the same images, exact and with position subsampling (and the error of λ_max
  that subsampling costs);
* ``grow`` on a ``DataLoader`` / a plain PyTorch loop over the same loader (trainer overhead).
"""
from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, TensorDataset

import growth
from bench._timing import alternating_ratios, single_threaded
from bench.growth import _entry, _timed

LOSS = torch.nn.CrossEntropyLoss()
SIZES = {  # conv: channels, image side, images, blocks, positions kept; loader: channels, side, images, epochs
    "smoke": {"conv": (4, 8, 200, 2, 16), "loader": (4, 8, 512, 2), "repeats": 2, "loader_repeats": 2},
    "full": {"conv": (32, 28, 500, 2, 78), "loader": (16, 28, 3000, 5), "repeats": 2, "loader_repeats": 6},
}
# The conv ratio does not depend on the number of images (both sides are linear in it): 500 images
# give the 10,000-image ratio at 1/20 of the time (exact Q costs ≈ 3C epochs, a quarter of an hour here).


def _cnn(channels, side, images, n_blocks, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = growth.ResidualCNN(1, 10, channels, n_blocks, (side, side))
    x = torch.randn(images, 1, side, side, generator=g)
    y = torch.randint(0, 10, (images,), generator=g)
    return net, x, y


def _epoch(net, batches, opt):
    for xb, yb in batches:
        opt.zero_grad(set_to_none=True)
        LOSS(net(xb), yb).backward()
        opt.step()


def bench_conv_td(channels, side, images, n_blocks, positions, repeats, batch_size=128):
    net, x, y = _cnn(channels, side, images, n_blocks)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    exact_ratios, sub_ratios = [], []
    for _ in range(repeats):
        t_epoch = _timed(lambda: _epoch(net, loader, opt))
        t_exact = _timed(lambda: growth.topological_derivative(net, LOSS, x, y, batch_size=500, estimation="exact"))
        t_sub = _timed(lambda: growth.topological_derivative(net, LOSS, x, y, batch_size=500, positions=positions))
        exact_ratios.append(t_exact / t_epoch)
        sub_ratios.append(t_sub / t_epoch)
    exact = max(p.eigenvalue for p in growth.topological_derivative(net, LOSS, x, y, batch_size=500,
                                                                    estimation="exact"))
    errors = [abs(max(p.eigenvalue for p in growth.topological_derivative(
        net, LOSS, x, y, batch_size=500, positions=positions, subsample_seed=seed)) - exact) / abs(exact)
        for seed in range(3)]
    setting = (f"C = {channels}, 3×3, {side}×{side} states, {images} images, {n_blocks + 1} locations, float32; "
               f"epoch: Adam, batch {batch_size}")
    return [_entry("growable: conv TD exact (all locations) / one training epoch", exact_ratios, "ratio", "",
                   setting + f"; Q: 2·S·HW·C·(9C)² flops per location"),
            _entry(f"growable: conv TD with {positions} of {side * side} positions / one training epoch", sub_ratios,
                   "ratio", "", setting),
            _entry(f"growable: λ_max relative error with {positions} of {side * side} positions", errors, "ratio",
                   "", "3 subsets (seeds 0-2), against the exact λ_max over all locations")]


def bench_loader_trainer(channels, side, images, epochs, repeats, batch_size=128):
    _, x, y = _cnn(channels, side, images, 1)
    val = (x[:1000], y[:1000])

    def loader():
        return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(0))

    def plain():
        net = _cnn(channels, side, images, 1)[0]
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        batches = loader()
        for _ in range(epochs):
            _epoch(net, batches, opt)
            with torch.no_grad():
                float(LOSS(net(val[0]), val[1]))
        with torch.no_grad():  # the final training loss, as the trainer reports it
            sum(float(LOSS(net(xb), yb)) * len(xb) for xb, yb in batches)

    def trainer():
        growth.grow(_cnn(channels, side, images, 1)[0], growth.FixedBaseline(), loader(), val, loss_fn=LOSS,
                    epochs_per_stage=epochs, progress=False)

    ratios = alternating_ratios(trainer, plain, repeats, clock=time.process_time)
    return _entry("growable: grow() on a DataLoader / plain PyTorch loop on the same loader", ratios, "ratio",
                  "<= 1.05", f"residual CNN C = {channels}, {side}×{side}, {images} images, {epochs} epochs, Adam, "
                  f"batch {batch_size}, validation loss every epoch and the final training loss in both; "
                  "CPU time (one thread); the trainer also pays for its divergence guard (snapshots, J₀)")


def entries(scale: str) -> list[dict]:
    s = SIZES[scale]
    return single_threaded(lambda: bench_conv_td(*s["conv"], s["repeats"])
                           + [bench_loader_trainer(*s["loader"], s["loader_repeats"])])


if __name__ == "__main__":
    import sys
    for e in entries(sys.argv[1] if len(sys.argv) > 1 else "smoke"):
        print(f"{e['name']}: {e['value']:.4g} {e['unit']} (target {e['target']}) [{e['detail']}]")
