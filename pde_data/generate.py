"""The generation driver: settings, MPI distribution, resume, progress, the dataset store.

`generate(...)` fills `FILE.partial` (created, or resumed when it holds the same problem, preset,
seed, config and input-file contents) and renames it to FILE once no row is pending. Rank 0 holds
an exclusive lock on `FILE.partial` (`pde_data.worklock`) from before it looks at the output paths
until after the rename, so a second run on the same output is refused and never touches the file.
Every check a user's input can fail (settings, seed, paths, free disk space) runs before a file is
created. COMM_WORLD is split into groups
of `procs_per_sample` ranks; the forward model is built on the group communicator. Groups take the
pending samples in rounds: every group solves its share of the next samples (one each at first,
more for fast models), group leaders write their rows (independent MPI-IO), then every rank
flushes (collective, also in empty rounds).
Sample i draws only from `SeedSequence(base_seed, spawn_key=(i,))`, so the file content does not
depend on the number of processes.
"""
import contextlib
import datetime
import hashlib
import importlib.metadata
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError, DatasetError, SolverFailure, UserError
from pde_data import store
from pde_data.registry import forward_model_class
from pde_data.worklock import WorkLock

VERSIONED_PACKAGES = {"dolfinx": "fenics-dolfinx", "petsc4py": "petsc4py", "mpi4py": "mpi4py",
                      "numpy": "numpy", "h5py": "h5py", "pde_data": "growing-pde-nets"}
ROUND_SECONDS = 0.5  # target wall time of one round (solve, write, collective flush)
MAX_BATCH = 1024     # most samples per group in one round
BUFFER_BYTES = 2**26  # and at most this many bytes of rows per group


@dataclass
class Report:
    """What one `generate` call did (identical on every rank)."""

    path: str             # the finished file
    n_samples: int
    n_computed: int       # samples solved by this call (resumed rows are not counted)
    n_failed: int         # rows with status 2 in the file (solver failures)
    failed: list          # their indices
    loop_seconds: float   # wall time of the solve/write loop


def sample_rng(base_seed, index):
    """The random generator of sample `index`: depends on (base_seed, index) only."""
    return np.random.default_rng(np.random.SeedSequence(base_seed, spawn_key=(index,)))


def generate(problem, preset, out, overrides=None, n_samples=None, seed=0, overwrite=False,
             procs_per_sample=1, xdmf_dir=None, xdmf_count=4, comm=None, log=None):
    """Generate (or finish) the dataset `out`; collective on `comm` (default COMM_WORLD).

    `overrides` {setting: value or string}; `n_samples` overrides the preset's count; `seed` is the
    base seed. Raises UserError (same message on every rank) for bad input or an existing `out`
    without `overwrite`. `log(line)` receives progress lines on rank 0 (default: the `pde_data.generate` logger, :mod:`common.logs`).
    """
    from mpi4py import MPI

    comm = comm or MPI.COMM_WORLD
    log = log or _log_line
    _check_arguments(comm, seed, procs_per_sample, xdmf_count)
    model_class = forward_model_class(problem)
    overrides = dict(overrides or {})
    if n_samples is not None:
        if "n_samples" in overrides:
            raise ConfigError("the number of samples is given twice (--n-samples and n_samples=); "
                              "give it once")
        overrides["n_samples"] = n_samples
    settings = model_class.settings(preset, overrides)
    ident = store.identity(problem, preset, seed, settings, input_hashes(model_class, settings))
    partial = store.partial_path(out)
    lock = WorkLock(partial)
    with _abort_on_error(comm), _released_on_root(comm, lock):
        resume = _on_root(comm, lambda: _claim_output(out, partial, ident, overwrite, xdmf_dir, lock))
        group = comm.Split(color=comm.rank // procs_per_sample, key=comm.rank)
        model = model_class(settings, group)
        if not resume:
            static = model.static_arrays()  # on every rank: it may be collective on the group
            _on_root(comm, lambda: store.create(
                partial, ident, model.layout(), static, model.attributes(),
                model.dataset_attributes(), software_versions(),
                datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")))
        f = store.open_rows(partial, comm)  # no `with`: closing is collective, so not on errors
        n_computed, loop_seconds = _fill(f, model, seed, comm, group, xdmf_dir, xdmf_count, log)
        f.close()
        group.Free()
        status = _on_root(comm, lambda: _finished_status(partial))
        failed = np.flatnonzero(status == store.FAILED).tolist()
        report = Report(out, len(status), n_computed, len(failed), failed, loop_seconds)
        if comm.rank == 0:
            os.replace(partial, out)
            log(_summary_line(report))
        comm.Barrier()
    return report


def _fill(f, model, seed, comm, group, xdmf_dir, xdmf_count, log):
    """Compute every pending row of the open file `f`; returns (rows computed, loop seconds).

    Each round takes the next `batch` x (number of groups) pending samples, splits them into one
    consecutive share per group, then flushes (collective). Rank 0 adapts `batch` so that a round
    lasts about ROUND_SECONDS: fast models write blocks of rows and flush rarely, slow ones flush
    after every sample.
    """
    # read on rank 0 and shared: another rank may already be writing rows when a late one reads
    pending = comm.bcast(np.flatnonzero(f["status"][()] == store.PENDING) if comm.rank == 0 else None)
    n_groups, group_id = comm.size // group.size, comm.rank // group.size
    layout = model.layout()
    max_batch = max(1, min(MAX_BATCH, BUFFER_BYTES // (8 * sum(layout.values()))))
    progress = _Progress(len(pending), len(f["status"]), log) if comm.rank == 0 else None
    start = time.perf_counter()
    position, batch = 0, 1
    while position < len(pending):
        round_start = time.perf_counter()
        chunk = pending[position:position + batch * n_groups]
        share = np.array_split(chunk, n_groups)[group_id]
        rows, status = _solve(model, share, seed, layout, xdmf_dir, xdmf_count)
        if group.rank == 0:
            for run in np.split(np.arange(len(share)), np.flatnonzero(np.diff(share) != 1) + 1):
                if len(run):
                    store.write_rows(f, int(share[run[0]]), {k: v[run] for k, v in rows.items()}, status[run])
        f.flush()
        position += len(chunk)
        if progress:
            progress.update(len(chunk))
        batch = comm.bcast(_next_batch(batch, time.perf_counter() - round_start, max_batch), root=0)
    comm.Barrier()
    if progress:
        progress.close()
    return len(pending), comm.bcast(time.perf_counter() - start, root=0)


def _solve(model, indices, seed, layout, xdmf_dir, xdmf_count):
    """Rows {name: (n, width)} and status (n,) of samples `indices` (NaN rows, status 2 on failure)."""
    rows = {name: np.full((len(indices), width), np.nan) for name, width in layout.items()}
    status = np.full(len(indices), store.DONE, dtype=np.int8)
    for k, index in enumerate(map(int, indices)):
        try:
            sample = model.solve(index, sample_rng(seed, index))
        except SolverFailure:
            status[k] = store.FAILED
            continue
        for name, row in sample.items():
            rows[name][k] = row
        if xdmf_dir and index < xdmf_count:
            model.export_xdmf(xdmf_dir, index, sample)
    return rows, status


def _next_batch(batch, seconds, max_batch):
    """Samples per group in the next round: doubled or halved towards ROUND_SECONDS per round."""
    if seconds < ROUND_SECONDS / 2:
        return min(2 * batch, max_batch)
    if seconds > 2 * ROUND_SECONDS:
        return max(batch // 2, 1)
    return batch


def _check_arguments(comm, seed, procs_per_sample, xdmf_count):
    """Refuse invalid command-line numbers before anything is built or written."""
    if seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}")
    if procs_per_sample < 1 or comm.size % procs_per_sample:
        raise ConfigError(f"--procs-per-sample {procs_per_sample} does not divide the "
                          f"{comm.size} MPI processes")
    if xdmf_count < 0:
        raise ConfigError(f"--xdmf-count must be >= 0, got {xdmf_count}")


def input_hashes(model_class, settings):
    """{setting: sha256 of the file it names} for the model's input-file settings that are set."""
    hashes = {}
    for key in getattr(model_class, "input_files", ()):
        if settings.get(key):
            try:
                with open(settings[key], "rb") as f:
                    hashes[key] = hashlib.file_digest(f, "sha256").hexdigest()
            except OSError as error:
                raise ConfigError(f"setting '{key}': cannot read {settings[key]} "
                                  f"({error.strerror})") from None
    return hashes


def _claim_output(out, partial, ident, overwrite, xdmf_dir, lock):
    """Check the output paths and take the work file's lock (rank 0); True when `partial` is
    resumed, False when it is to be created. The lock comes first: a work file another run holds is
    never judged, removed or replaced."""
    if os.path.isdir(out):
        raise DatasetError(f"{out} is a directory (--out names the dataset file)")
    directory = os.path.dirname(out) or "."
    if not os.path.isdir(directory):
        raise DatasetError(f"cannot create {out} (no directory {directory})")
    lock.acquire()
    if lock.warning:
        _log_line(lock.warning)
    if os.path.exists(out) and not overwrite:
        raise DatasetError(f"{out} exists (use --overwrite to replace it)")
    if xdmf_dir:
        _make_xdmf_dir(xdmf_dir)
    if not os.path.exists(partial):
        return False
    try:
        store.check_resumable(partial, ident)
        return True
    except DatasetError as error:
        if not overwrite:
            raise DatasetError(f"{error}; delete it or use --overwrite to start over") from None
        os.remove(partial)
        return False


def _make_xdmf_dir(xdmf_dir):
    """Create the --xdmf directory (DatasetError, one line, when that is impossible)."""
    if os.path.exists(xdmf_dir) and not os.path.isdir(xdmf_dir):
        raise DatasetError(f"--xdmf {xdmf_dir} exists and is not a directory")
    try:
        os.makedirs(xdmf_dir, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"--xdmf {xdmf_dir}: cannot create it ({error.strerror})") from None
    if not os.access(xdmf_dir, os.W_OK):
        raise DatasetError(f"--xdmf {xdmf_dir} is not writable")


def _finished_status(partial):
    """The status column of the finished work file, read back from disk just before the rename:
    a file with a pending row is never published."""
    status = store.read_status(partial)
    n_pending = int(np.sum(status == store.PENDING))
    if n_pending:
        raise DatasetError(f"{partial}: {n_pending} rows still pending after generation; "
                           "run the same command again to finish them")
    return status


@contextlib.contextmanager
def _released_on_root(comm, lock):
    """Release rank 0's work-file lock when the run ends, however it ends."""
    try:
        yield
    finally:
        if comm.rank == 0:
            lock.release()


@contextlib.contextmanager
def _abort_on_error(comm):
    """Abort every rank on an unexpected exception (the others would wait in a collective call)."""
    try:
        yield
    except UserError:
        raise
    except Exception:
        if comm.size > 1:
            traceback.print_exc()
            sys.stderr.flush()
            comm.Abort(1)
        raise


def _on_root(comm, action):
    """Run `action` on rank 0 and share its result; a UserError there is raised on every rank."""
    result, error = None, None
    if comm.rank == 0:
        try:
            result = action()
        except UserError as exc:
            error = exc
    result, error = comm.bcast((result, error), root=0)
    if error is not None:
        raise error
    return result


def software_versions():
    """Versions of the packages that shape the file's content (from package metadata)."""
    versions = {}
    for name, distribution in VERSIONED_PACKAGES.items():
        try:
            versions[name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            module = sys.modules.get(name)
            versions[name] = getattr(module, "__version__", "unknown")
    return versions


def _summary_line(report):
    """The final log line; solver failures are always counted and listed."""
    line = (f"generate: wrote {report.path}: {report.n_samples} samples, {report.n_computed} "
            f"computed now in {report.loop_seconds:.1f} s")
    if report.n_failed:
        shown = ", ".join(map(str, report.failed[:10])) + (", ..." if report.n_failed > 10 else "")
        line += f"; {report.n_failed} solver failures (status 2: {shown})"
    return line


def _log_line(line):
    logging.getLogger(__name__).info(line)


class _Progress:
    """tqdm on a terminal; otherwise a plain log line at most every few seconds and at the end."""

    INTERVAL_S = 5.0

    def __init__(self, n_pending, n_samples, log):
        self.total, self.done, self.log = n_pending, 0, log
        self.bar = None
        log(f"generate: {n_pending} of {n_samples} samples to compute")
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=n_pending, unit="sample", file=sys.stderr)
        self.last = time.perf_counter()

    def update(self, n):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.perf_counter() - self.last >= self.INTERVAL_S:
            self.last = time.perf_counter()
            self.log(f"generate: {self.done}/{self.total} samples computed")

    def close(self):
        if self.bar is not None:
            self.bar.close()
