"""GPU: training epochs per second on CUDA over the CPU, and agreement of the two (issue 6).

The same `growth.grow` run (a fixed `ResidualMLP`, `FixedBaseline`, Adam, mini-batches shuffled by
the trainer's CPU generator, so both devices see the same batches) is timed on the CPU (all its
threads) and on the first CUDA device, alternately, in one process. Agreement is checked in float64
with TF32 off: the trained parameters on both devices must agree to floating-point tolerance.
Without CUDA every entry reads "skipped: no CUDA" with value NaN.
"""
import statistics
import time

import torch

import growth

SIZES = {  # width, blocks, samples, batch size, epochs per timing, repeats
    "smoke": (32, 2, 2000, 128, 2, 2),
    "full": (256, 4, 20000, 256, 5, 3),
}
AGREEMENT_EPOCHS = 3
IN_FEATURES, OUT_FEATURES = 20, 10


def _problem(width, n_blocks, samples, dtype):
    """A network and random data, identical for a given seed (built on the CPU)."""
    torch.manual_seed(0)
    net = growth.ResidualMLP(IN_FEATURES, OUT_FEATURES, width, n_blocks).to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(samples, IN_FEATURES, generator=g, dtype=dtype)
    y = torch.randn(samples, OUT_FEATURES, generator=g, dtype=dtype)
    return net, x, y


def _train(device, width, n_blocks, samples, batch_size, epochs, dtype=torch.float32):
    """(seconds, trained network on the CPU) of one `grow` run with a fixed network on `device`."""
    net, x, y = _problem(width, n_blocks, samples, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = growth.grow(net, growth.FixedBaseline(), (x, y), epochs_per_stage=epochs, max_stages=1,
                         batch_size=batch_size, device=device, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result.net.cpu()


def _skipped(names):
    return [{"name": name, "value": float("nan"), "repeats": [], "unit": unit, "target": "",
             "detail": "skipped: no CUDA"} for name, unit in names]


NAMES = [("gpu: training epochs per second, CUDA / CPU (speed-up)", "x"),
         ("gpu: trained parameters CUDA vs CPU, max relative difference (float64)", "ratio")]


def entries(scale):
    """The speed-up and the agreement entries, or skipped entries without CUDA."""
    if not torch.cuda.is_available():
        return _skipped(NAMES)
    return compare(torch.device("cuda"), scale)


def compare(cuda, scale):
    """The entries for `cuda` against the CPU (tests pass the CPU itself to check the code path)."""
    width, n_blocks, samples, batch_size, epochs, repeats = SIZES["smoke" if scale == "smoke" else "full"]
    cpu = torch.device("cpu")
    sizes = (width, n_blocks, samples, batch_size)
    _train(cuda, *sizes, 1)  # warm-up: CUDA context, kernels
    speedups, rates = [], []
    for _ in range(repeats):
        t_cpu = _train(cpu, *sizes, epochs)[0]
        t_cuda = _train(cuda, *sizes, epochs)[0]
        speedups.append(t_cpu / t_cuda)
        rates.append((epochs / t_cpu, epochs / t_cuda))

    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        nets = [_train(device, *sizes, AGREEMENT_EPOCHS, torch.float64)[1] for device in (cpu, cuda)]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    with torch.no_grad():
        difference = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))
                         for a, b in zip(nets[0].parameters(), nets[1].parameters()))
    cpu_rate = statistics.median(r[0] for r in rates)
    cuda_rate = statistics.median(r[1] for r in rates)
    name = torch.cuda.get_device_name(cuda) if cuda.type == "cuda" else str(cuda)
    return [
        {"name": NAMES[0][0], "value": statistics.median(speedups), "repeats": speedups, "unit": "x",
         "target": "", "detail": (f"{name} vs {torch.get_num_threads()} CPU threads; width {width}, "
                                  f"{n_blocks} blocks, {samples} samples, batch {batch_size}, Adam, float32; "
                                  f"median {cuda_rate:.3g} vs {cpu_rate:.3g} epochs/s")},
        {"name": NAMES[1][0], "value": difference, "repeats": [difference], "unit": "ratio",
         "target": "<= 1e-8", "detail": (f"{AGREEMENT_EPOCHS} epochs, TF32 off, same batches; "
                                          "per tensor max |Δ| / max |p|")},
    ]
