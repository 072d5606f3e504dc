"""`python -m problems run|sweep|estimate|figures|transfer|transfer-sweep|download-mnist`: the command line of docs/design.md.

A mistake a user can make (bad flag, unknown problem/method/preset, missing or foreign dataset,
existing output without --overwrite) prints one line ``error: ...`` on stderr and exits with
status 2, without a traceback; Ctrl-C prints one line and exits with 130. ``figures`` draws every
readable run and exits with 1 when it had to leave corrupt runs out.
"""
from __future__ import annotations

import argparse
import sys

from common.cli import ArgumentParser, report, subcommands
from common.errors import UserError
from common.logs import setup as setup_logging
from problems.methods import METHODS
from problems.registry import PROBLEMS, problem_class


def _add_sweep_selection(parser):
    """The options that choose a sweep's runs: preset, seeds, problems, methods, data, device."""
    parser.add_argument("--preset", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--data-dir", help="directory of PROBLEM.h5 files (default data/PRESET)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m problems", description="Growing networks on PDE inverse problems.")
    commands = subcommands(parser)
    run = commands.add_parser("run", help="train one method on one problem")
    run.add_argument("problem", help=", ".join(PROBLEMS))
    run.add_argument("--method", required=True, help=", ".join(METHODS))
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--preset", required=True, help="smoke or paper")
    run.add_argument("--data", help="HDF5 dataset (PDE problems)")
    run.add_argument("--out", required=True, help="run directory")
    run.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    run.add_argument("--overwrite", action="store_true")
    sweep = _add_sweep_selection(commands.add_parser("sweep", help="problems x methods x seeds; resumable, MPI-parallel"))
    sweep.add_argument("--out-root", help="runs go to OUT_ROOT/PROBLEM/METHOD/seed_S (default results/runs/PRESET)")
    estimate = _add_sweep_selection(commands.add_parser(
        "estimate", help="projected time of a sweep from measured per-epoch costs"))
    estimate.add_argument("--ranks", type=int, default=1, help="MPI processes the sweep will use")
    figures = commands.add_parser("figures", help="draw results/figures and write summary.md from the runs")
    figures.add_argument("--preset", required=True)
    figures.add_argument("--runs", help="runs root (default results/runs/PRESET)")
    figures.add_argument("--out", help="output directory (default results for paper, results/PRESET otherwise)")
    _transfer_parsers(commands)
    download = commands.add_parser("download-mnist", help="fetch the MNIST files (sha256-checked)")
    download.add_argument("--out", default="data/mnist", help="directory (default data/mnist)")
    return parser


def _transfer_parsers(commands) -> None:
    from problems.transfer import TRANSFER_METHODS

    transfer = commands.add_parser("transfer", help="adapt a source-trained network to N target samples")
    transfer.add_argument("problem", help=", ".join(PROBLEMS))
    transfer.add_argument("--source-data", help="HDF5 dataset the source network is trained on (PDE problems)")
    transfer.add_argument("--target-data", help="HDF5 dataset of the new site or regime (PDE problems)")
    transfer.add_argument("--method", required=True, help=", ".join(TRANSFER_METHODS))
    transfer.add_argument("--n-target", type=int, required=True, help="labelled target samples (train + validation)")
    transfer.add_argument("--seed", type=int, default=0)
    transfer.add_argument("--preset", default="smoke", help="smoke or paper")
    transfer.add_argument("--out", required=True, help="run directory")
    transfer.add_argument("--source-network", help="adapt this saved network (e.g. a run's network.pt) instead of "
                          "training one on --source-data")
    transfer.add_argument("--cache", help="source-network cache (default OUT/../source/seed_S)")
    transfer.add_argument("--insertions", type=int, help="random: insert exactly this many blocks")
    transfer.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    transfer.add_argument("--overwrite", action="store_true")
    tsweep = commands.add_parser("transfer-sweep", help="seeds x target sizes x transfer methods; resumable")
    tsweep.add_argument("problem", help=", ".join(PROBLEMS))
    tsweep.add_argument("--source-data")
    tsweep.add_argument("--target-data")
    tsweep.add_argument("--preset", required=True)
    tsweep.add_argument("--seeds", type=int, nargs="+", default=[0])
    tsweep.add_argument("--sizes", type=int, nargs="+", help="target sizes N (default: the preset's)")
    tsweep.add_argument("--methods", nargs="+", default=list(TRANSFER_METHODS))
    tsweep.add_argument("--out-root", required=True, help="runs go to OUT_ROOT/PROBLEM/METHOD/n_N/seed_S")
    tsweep.add_argument("--device", default="cpu", choices=("cpu", "cuda"))


def _transfer(args, argv) -> int:
    from problems import transfer

    if args.command == "transfer":
        metrics = transfer.run_transfer(args.problem, args.method, args.n_target, args.seed, args.preset,
                                        args.source_data, args.target_data, args.out, args.cache, args.insertions,
                                        args.device, args.overwrite, argv=["python", "-m", "problems", *argv],
                                        source_network_path=args.source_network)
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
        return 0
    sizes = args.sizes or list(transfer.transfer_settings(problem_class(args.problem)(args.preset)).sizes)
    return transfer.transfer_sweep(args.problem, args.preset, args.seeds, sizes, args.methods, args.source_data,
                                   args.target_data, args.out_root, args.device)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    setup_logging(("problems", "growth"), "stdout")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            from problems.run import run

            metrics = run(args.problem, args.method, args.seed, args.preset, args.data, args.out, args.device,
                          args.overwrite, argv=["python", "-m", "problems", *argv])
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
        elif args.command == "sweep":
            from problems.sweep import sweep

            return sweep(args.preset, args.seeds, args.problems, args.methods, args.data_dir, args.out_root,
                         args.device)
        elif args.command == "estimate":
            from problems.estimate import estimate

            estimate(args.preset, args.problems, args.methods, args.seeds, args.data_dir, args.ranks, args.device)
        elif args.command in ("transfer", "transfer-sweep"):
            return _transfer(args, argv)
        elif args.command == "download-mnist":
            from problems.mnist import download

            print(f"MNIST in {download(args.out)}")
        else:
            from problems.figures import figures

            return 1 if figures(args.preset, args.runs, args.out) else 0
    except (UserError, OSError) as error:  # OSError: a path the user gave cannot be read or written
        report(error)
        return 2
    except KeyboardInterrupt:
        print(f"error: interrupted; {_AFTER_INTERRUPT.get(argv[0] if argv else '', 'nothing was written')}",
              file=sys.stderr, flush=True)
        return 130
    return 0


_AFTER_INTERRUPT = {"run": "nothing was saved; run the same command again to start the run over",
                    "sweep": "run the same command again to resume (finished runs are kept)"}
