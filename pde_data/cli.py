"""`python -m pde_data generate|import-heat-sources|info`: the command line of docs/design.md.

Every UserError becomes one line `error: ...` on stderr (rank 0 only under MPI) and exit status 2
(1 for `info`, as docs/design.md states). Ctrl-C (SIGINT) or SIGTERM ends a run with one line saying
that the same command resumes it, exit status 130.
"""
import contextlib
import os
import signal
import sys

from common import mpi_rank
from common.cli import ArgumentParser, report, subcommands
from common.errors import UserError
from common.logs import setup as setup_logging
from pde_data.registry import FORWARD_MODELS


def build_parser():
    parser = ArgumentParser(prog="python -m pde_data", description="Finite-element datasets for inverse problems.")
    commands = subcommands(parser)
    gen = commands.add_parser(
        "generate", help="generate (or finish) a dataset file",
        usage="python -m pde_data generate PROBLEM --preset {smoke,paper} [--n-samples N] [--seed S] "
              "--out FILE [--overwrite] [--procs-per-sample P] [--xdmf DIR] [KEY=VALUE ...]",
        epilog="KEY=VALUE pairs override settings of the preset, e.g. mesh_n=64 n_modes=64.")
    gen.add_argument("problem", help=", ".join(FORWARD_MODELS))
    gen.add_argument("--preset", required=True, help="smoke or paper")
    gen.add_argument("--n-samples", type=int, help="number of samples (overrides the preset)")
    gen.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    gen.add_argument("--out", required=True, help="output HDF5 file")
    gen.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    gen.add_argument("--procs-per-sample", type=int, default=1,
                     help="MPI processes solving one sample together (default 1)")
    gen.add_argument("--xdmf", metavar="DIR", help="also write the first samples' fields as XDMF")
    gen.add_argument("--xdmf-count", type=int, default=4, help="samples exported with --xdmf (default 4)")
    imp = commands.add_parser("import-heat-sources", help="the sources' own heat samples as a dataset file",
                              usage="python -m pde_data import-heat-sources --out FILE [--overwrite] "
                                    "[--pool-noise stored|regenerated] [--seed S]")
    imp.add_argument("--out", required=True, help="output HDF5 file")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    imp.add_argument("--pool-noise", default="stored", help="the pool's noisy observations: 'stored' (the CSV) "
                     "or 'regenerated' (0.05 std(y) N(0, I), as the sources' notebook did before training)")
    imp.add_argument("--seed", type=int, default=0, help="seed of the regenerated noise (default 0)")
    info = commands.add_parser("info", help="summarize a dataset file")
    info.add_argument("file")
    return parser


def parse_overrides(pairs):
    """["key=value", ...] -> {key: "value"}; anything else is a UserError naming it."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or key.startswith("-"):
            raise UserError(f"unrecognized argument '{pair}' (settings are KEY=VALUE)")
        if key in overrides:
            raise UserError(f"setting '{key}' is given twice ({key}={overrides[key]} and {pair}); "
                            "give it once")
        overrides[key] = value
    return overrides


def run(argv):
    """Execute one command; raises UserError for bad input."""
    args, extra = build_parser().parse_known_args(argv)
    if args.command == "info":
        if extra:
            raise UserError(f"unrecognized arguments: {' '.join(extra)}")
        from pde_data.store import summary

        print(summary(args.file))
        return
    if args.command == "import-heat-sources":
        if extra:
            raise UserError(f"unrecognized arguments: {' '.join(extra)}")
        from pde_data.heat_import import import_sources

        n = import_sources(args.out, args.overwrite, args.pool_noise, args.seed)
        print(f"wrote {args.out}: {n} samples")
        return
    if mpi_rank.rank_size()[1] > 1:  # Debian's h5py loads its MPI build only when told; srun tells it nothing
        os.environ.setdefault("H5PY_ALWAYS_USE_MPI", "1")
    from pde_data.generate import generate

    generate(args.problem, args.preset, args.out, overrides=parse_overrides(extra),
             n_samples=args.n_samples, seed=args.seed, overwrite=args.overwrite,
             procs_per_sample=args.procs_per_sample, xdmf_dir=args.xdmf, xdmf_count=args.xdmf_count)


def main(argv=None):
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    setup_logging(("pde_data",), "stderr")
    try:
        with _sigterm_as_interrupt():
            run(argv)
    except UserError as error:
        if mpi_rank.rank() == 0:
            report(error)
        return 1 if argv[:1] == ["info"] else 2
    except KeyboardInterrupt:
        if mpi_rank.rank() == 0:
            report("interrupted; run the same command again to resume")
        return 130
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (how mpirun and batch systems stop a job) raises KeyboardInterrupt like Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
