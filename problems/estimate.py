"""``python -m problems estimate``: the projected wall time of a sweep, from measured per-epoch costs.

For each problem the training loop the methods use (Adam, the preset's batch size, the problem's
loss) is timed on the preset's *largest* network (``final_blocks`` blocks: the growth methods start
smaller, so this is an upper bound per epoch) for ``probe_batches`` mini-batches, scaled to one epoch
over the preset's training set (so a small file of the same problem serves as a probe). A run then costs its method's epoch budget (``epochs``; × (K + 1) under
``cv_folds: K``: K folds and the refit) times that epoch, and the sweep's runs are shared by
``ranks`` processes of cores/ranks threads each (timed with that many threads). Not counted: data
loading, growth selection and evaluation (a few per cent, measured on the paper preset).
"""
from __future__ import annotations

import time

import torch

from common import mpi_rank
from problems.methods import available, check_method, config_for, method
from problems.networks import architecture
from problems.registry import problem_class


def seconds_per_epoch(problem, data, device: str = "cpu", probe_batches: int = 20) -> float:
    """Measured seconds of one training epoch of the preset's largest network."""
    s = config_for(problem, "baseline")
    net = method("baseline").network(s, data, s.final_blocks, architecture=architecture(problem)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    loss_fn = problem.loss_fn()
    x, y = data.x_train.to(device), data.y_train.to(device)
    n = x.shape[0]
    bs = n if s.batch_size is None else min(s.batch_size, n)
    batches = min(probe_batches, -(-n // bs))
    order = torch.randperm(n)
    t0 = time.perf_counter()
    for i in range(batches):
        idx = order[i * bs:(i + 1) * bs]
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x[idx]), y[idx]).backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    split = problem.settings.get("split")
    n_epoch = split[0] if split else n  # the preset's training set, also when probed on a smaller file
    return (time.perf_counter() - t0) * n_epoch / (batches * bs)


def run_epochs(problem, name: str) -> int:
    """Epochs one run of method ``name`` trains at most (its budget, times folds + 1 under cross-validation)."""
    s = config_for(problem, name)
    return s.epochs * ((s.cv_folds + 1) if s.cv_folds else 1)


def estimate(preset: str, problems, methods, seeds, data_dir=None, ranks: int = 1, device: str = "cpu") -> float:
    """Print the projected time per problem and in total; return the total in seconds."""
    for name in methods:
        check_method(name)
    threads = torch.get_num_threads()
    torch.set_num_threads(mpi_rank.cpus_per_process(ranks))  # what each of the sweep's ranks gets
    total = 0.0
    try:
        for name in problems:
            problem = problem_class(name)(preset)
            path = problem.data_file(data_dir or f"data/{preset}") if problem.needs_data else None
            per_epoch = seconds_per_epoch(problem, problem.load(path), device)
            seconds = per_epoch * sum(run_epochs(problem, m) for m in methods if available(problem, m)) * len(seeds) / ranks
            total += seconds
            print(f"estimate {name}: {per_epoch:.2f} s per epoch (largest network), {len(methods)} methods × "
                  f"{len(seeds)} seeds on {ranks} rank(s): {seconds / 3600:.2f} h", flush=True)
    finally:
        torch.set_num_threads(threads)
    print(f"estimate: {total / 3600:.2f} h in total ({preset} preset, {ranks} rank(s), {device})", flush=True)
    return total
