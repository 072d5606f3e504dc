"""One experiment: ``python -m problems run PROBLEM --method METHOD --seed S --preset P --data FILE --out DIR``.

The run directory receives, in this order:

* ``config.json``  problem, method, seed, preset, dataset (path and identity) and every setting used;
* ``meta.json``    git commit, package versions, seeds, command line, host, start time, device;
* ``log.jsonl``    one line per epoch, stage end, growth event, SRL stage and NAS trial (written as
                   training goes);
* ``network.pt``   the trained model (:func:`growth.save`);
* ``predictions.npz`` ``test_prediction`` and ``test_target`` in physical units (fields: the parameter
                   field; classification: logits and labels), ``test_index`` (rows of the dataset),
                   ``snapshot_stage`` and ``snapshot`` (the predicted field of the first test
                   samples at the end of every growth stage, for the figures);
* ``stages.json``  test metrics at the end of every growth stage and after every SRL stage: logged
                   for the figures only (the per-layer curves of the sources), never read by training;
* ``metrics.json`` ``test_mse``, ``test_rel_l2`` (fields; heat adds ``test_rel_l2_conductivity``) or
                   ``test_accuracy``, ``val_loss`` (the problem's training loss on the validation set,
                   standardized units; under ``cv_folds`` the fold-averaged cross-validation loss),
                   ``n_parameters``, ``n_blocks``, ``wall_time_s``, ``n_epochs``, ``stop_reason``;
                   written last, atomically: its presence marks a finished run.

A run refuses (one line) a dataset with pending rows or a generator's ``.partial`` work file, a
negative seed, and non-finite inputs or targets in the rows it uses; rows whose solve failed (status
2) are left out and counted on stderr. Training that diverges beyond what
:class:`growth.DivergenceGuard` can recover, or any non-finite metric, ends the run with one line and
nothing published; a failed or interrupted run leaves no ``OUT.partial`` behind.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import growth
from growth.divergence import TrainingDiverged
from growth.srl import ResidualSum
from common.errors import UserError
from problems.methods import check_available, check_method, n_epochs, settings_for, train
from problems.registry import problem_class

N_SNAPSHOTS = 4
REPO = Path(__file__).resolve().parent.parent


def run_config(problem_name: str, method: str, seed: int, preset: str, data_path) -> dict:
    """What defines a run (a finished run with the same config is not redone by the sweep)."""
    check_method(method)
    if seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed}")
    problem = problem_class(problem_name)(preset)
    check_available(problem, method)
    dataset = None
    if problem.needs_data:
        if data_path is None:
            raise UserError(f"problem '{problem_name}' needs --data FILE")
        attrs = _finished_dataset(str(data_path))
        dataset = {"path": str(data_path), "created_utc": attrs["created_utc"], "n_samples": attrs["n_samples"],
                   "base_seed": attrs["base_seed"], "preset": attrs["preset"]}
    settings = settings_for(problem, method)
    return json.loads(json.dumps({"problem": problem_name, "method": method, "seed": seed, "preset": preset,
                                  "dataset": dataset, "settings": settings}))


def _finished_dataset(path: str) -> dict:
    """The root attributes of a finished dataset; UserError for a work file or pending rows."""
    from pde_data.store import partial_path, status_counts, validate

    if path.endswith(partial_path("")):
        raise UserError(f"{path} is the work file of an unfinished `generate` run; finish it with the "
                        "same generate command and use the file it publishes")
    attrs = validate(path)
    counts = status_counts(path)
    if counts["pending"]:
        raise UserError(f"{path} has pending rows ({counts['done']} done, {counts['pending']} pending, "
                        f"{counts['failed']} failed); finish it with the generate command first")
    return attrs


def read_each(paths, read) -> tuple[list, int]:
    """``[read(path) for path in paths]`` without the runs that do not parse: each of those is
    reported in one line on stderr and counted; returns (what was read, the count left out)."""
    readable, corrupt = [], 0
    for path in paths:
        try:
            readable.append(read(path))
        except (UserError, OSError, ValueError, KeyError, TypeError) as error:
            corrupt += 1
            print(f"error: {path.parent} left out: {error}", file=sys.stderr, flush=True)
    return readable, corrupt


def read_metrics(path: Path) -> dict:
    """The metrics of a finished run; UserError (one line) for a missing, truncated, empty or
    non-finite ``metrics.json``."""
    try:
        metrics = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is unreadable or not JSON ({type(error).__name__})") from None
    if not isinstance(metrics, dict) or not any(str(key).startswith("test_") for key in metrics):
        raise UserError(f"{path} holds no test metrics")
    _require_finite(metrics, str(path))
    return metrics


def _require_finite(metrics: dict, where: str) -> None:
    bad = [key for key, value in metrics.items() if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        raise UserError(f"{where}: non-finite {', '.join(f'{k}={metrics[k]}' for k in bad)}")


def is_done(out_dir: Path, config: dict) -> bool:
    """A finished run (a valid metrics.json) made with exactly ``config``."""
    try:
        read_metrics(out_dir / "metrics.json")
        return json.loads((out_dir / "config.json").read_text()) == config
    except (OSError, ValueError, UserError):
        return False


def _meta(seed: int, device: str, argv) -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for name in ("optuna", "h5py", "scipy"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain", "--", "growth", "problems")),
            "versions": versions, "seeds": {"torch": seed, "grow": seed, "split": "problem.split_seed"},
            "command_line": list(argv), "host": platform.node(), "device": device,
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def run(problem_name: str, method: str, seed: int, preset: str, data_path, out_dir, device: str = "cpu",
        overwrite: bool = False, argv=None) -> dict:
    """Run one experiment into ``out_dir`` and return its metrics (UserError for user mistakes).

    The run is written to ``OUT.partial`` and renamed to ``OUT`` when it has finished, so an existing
    ``OUT`` (replaced only with ``overwrite``) survives a failed or interrupted run, and the dataset is
    checked before anything is written."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    config = run_config(problem_name, method, seed, preset, data_path)
    final = Path(out_dir)
    if final.exists() and not final.is_dir():
        raise UserError(f"{final} exists and is not a directory")
    if final.exists() and any(final.iterdir()) and not overwrite:
        raise UserError(f"{final} exists and is not empty (use --overwrite)")
    if config["settings"].get("threads"):
        torch.set_num_threads(config["settings"]["threads"])
    problem = problem_class(problem_name)(preset)
    data = problem.load(data_path).to(device)
    _note_failed_rows(data_path, problem)
    out = final.with_name(final.name + ".partial")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        metrics = _run_into(out, problem, data, config, method, seed, device, argv)
    except BaseException:  # a failed or interrupted run leaves nothing behind; OUT stays as it was
        shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    out.rename(final)
    return metrics


def _note_failed_rows(data_path, problem) -> None:
    """One stderr line when the dataset's solver failures (status 2) were left out."""
    if problem.needs_data:
        from pde_data.store import status_counts

        failed = status_counts(str(data_path))["failed"]
        if failed:
            print(f"note: {data_path}: {failed} rows whose solve failed (status 2) are left out",
                  file=sys.stderr, flush=True)


def _run_into(out: Path, problem, data, config: dict, method: str, seed: int, device: str, argv) -> dict:
    """Train and write every output file of the run into ``out``; returns the metrics."""
    _write_json(out / "config.json", config)
    _write_json(out / "meta.json", _meta(seed, device, sys.argv if argv is None else argv))

    snap_x = data.x_test[:N_SNAPSHOTS]
    snapshots, stages, stage_metrics = [], [], []
    log = (out / "log.jsonl").open("w")

    def callback(record, model):
        log.write(json.dumps(record) + "\n")
        log.flush()
        if record["event"] == "stage" and model is not None and "trial" not in record:
            with torch.no_grad():
                snapshots.append(model(snap_x).double().cpu().numpy())
            stages.append(record["stage"])
            stage_metrics.append({"stage": record["stage"], "n_blocks": record.get("n_blocks"),
                                  **problem.metrics(_predict(model, data.x_test), data)})

    t0 = time.perf_counter()
    try:
        trained = train(problem, data, method, seed, device, callback)
    except TrainingDiverged as error:
        raise UserError(f"{error} (lower the learning rate)") from None
    finally:
        log.close()
    wall = time.perf_counter() - t0
    model = trained.model.eval()
    growth.save(model, out / "network.pt")
    prediction = _predict(model, data.x_test)
    metrics = problem.metrics(prediction, data)
    stage_records = [r for r in trained.history if r["event"] == "stage" and "trial" not in r]
    metrics.update(val_loss=_validation_loss(model, problem, data, trained.history),
                   n_parameters=growth.count_parameters(model), n_blocks=getattr(model, "n_blocks", None),
                   n_stages=len(stage_records), n_epochs=n_epochs(trained.history), wall_time_s=wall, stop_reason=trained.stop_reason)
    _require_finite(metrics, "the trained network gives")
    _save_predictions(out, problem, data, prediction, snapshots, stages)
    _write_json(out / "stages.json", {"growth": stage_metrics, "srl": _srl_metrics(model, problem, data)})
    _write_json(out / "metrics.json", metrics)
    return metrics


def _validation_loss(model, problem, data, history) -> float:
    """The validation loss of the trained model; under the ``cv_folds`` protocol the model was refitted
    on the validation rows too, so it is the fold-averaged cross-validation loss of the selection."""
    selection = next((r for r in history if r["event"] == "selection"), None)
    if selection is not None:
        return selection["cv_loss"]
    return growth.evaluate_loss(model, problem.loss_fn(), *data.val.xy)


def _predict(model, x) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + 4096]) for i in range(0, len(x), 4096)])


def _srl_metrics(model, problem, data) -> list:
    """Test metrics of f_1 + Q_1 + ... + Q_k for k = 0..K (SRL models only; for the figures)."""
    if not isinstance(model, ResidualSum):
        return []
    out = []
    for k in range(len(model.corrections) + 1):
        partial = ResidualSum(model.base, list(model.corrections)[:k])
        out.append({"srl_stage": k, **problem.metrics(_predict(partial, data.x_test), data)})
    return out


def _save_predictions(out: Path, problem, data, prediction, snapshots, stages) -> None:
    to_np = lambda t: t.detach().double().cpu().numpy()  # noqa: E731
    if problem.kind == "classification":
        pred, target, snaps = to_np(prediction), data.y_test.cpu().numpy(), np.array(snapshots)
    else:
        scaler = data.target_scaler
        pred = problem.fields(scaler.inverse(to_np(prediction)), data)
        target = problem.fields(scaler.inverse(to_np(data.y_test)), data)
        snaps = np.array([problem.fields(scaler.inverse(s), data) for s in snapshots])
    np.savez_compressed(out / "predictions.npz", test_prediction=pred, test_target=target,
                        test_index=np.asarray(data.test.index),
                        snapshot_stage=np.array(stages, dtype=np.int64), snapshot=snaps)
