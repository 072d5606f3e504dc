"""Shared test helpers: a small real forward model (`toy`) and a runner for the command line.

The toy model solves a random dense SPD system per sample with numpy (no dolfinx), so the driver's
mechanics (MPI distribution, resume, failures) are tested in seconds. Subprocesses register it as
problem `toy` through `TOY_MAIN` (this module is its `ForwardModel` module).
"""
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from common.errors import ConfigError, SolverFailure
from pde_data.forward_model import BaseForwardModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY_MAIN = ("import sys, pde_data.registry as r; r.FORWARD_MODELS['toy'] = 'tests.conftest'; "
            "from pde_data.cli import main; sys.exit(main())")


def mpirun(nprocs):
    """The command prefix that runs a command on `nprocs` MPI processes: the project's one
    launcher, scripts/mpirun (oversubscription and root allowed, on Open MPI 4 and 5 and MPICH)."""
    return [os.path.join(REPO, "scripts", "mpirun"), "-n", str(nprocs)]


def launcher_keeps_output_after_signal(nprocs) -> bool:
    """Whether the ranks' stderr written after a signal to the launcher reaches the user: Open MPI 5's
    prterun sends SIGTERM to the ranks and exits without forwarding what they write then (measured in
    the Debian 13 chroot: the ranks' handlers ran and wrote, prterun's stderr stayed empty; PRRTE
    refuses to forward SIGINT/SIGTERM instead). Without a launcher, and with Open MPI 4, it does."""
    if not nprocs:
        return True
    version = subprocess.run(["mpirun", "--version"], capture_output=True, text=True).stdout
    return not re.search(r"Open MPI\)? ([5-9]|\d\d)\.", version)


def own_lines(stderr):
    """The lines of a run's stderr that the project wrote (`error: ...`, tracebacks), without the
    MPI launcher's own notices, whose wording differs between Open MPI 4 and 5."""
    return [line for line in stderr.splitlines() if line.startswith(("error: ", "Traceback"))]


class ForwardModel(BaseForwardModel):
    """u = A⁻¹ p with A = size·I + B Bᵀ/size, B and p drawn from the sample's rng; observations are
    the first n_obs entries of u plus `noise`·N(0, 1). `fail_every` k > 0 makes every k-th sample a
    SolverFailure; `delay_s` slows each solve; `solve_log` appends each solved index to a file;
    `offset_file` names an input file whose number is added to every parameter."""

    name = "toy"
    _defaults = {"size": 6, "n_obs": 3, "noise": 0.01, "fail_every": 0, "delay_s": 0.0, "solve_log": "",
                 "offset_file": ""}
    input_files = ("offset_file",)
    presets = {"smoke": {"n_samples": 8, **_defaults}, "paper": {"n_samples": 40, **_defaults}}

    @classmethod
    def check(cls, settings):
        if not 0 < settings["n_obs"] <= settings["size"]:
            raise ConfigError(f"n_obs must be in 1..size, got {settings['n_obs']}")

    def __init__(self, settings, comm):
        self.s, self.comm = settings, comm

    def layout(self):
        n = self.s["size"]
        return {"parameters": n, "observations": self.s["n_obs"], "observations_clean": self.s["n_obs"],
                "states": n, "latent": 2}

    def static_arrays(self):
        n = self.s["size"]
        return {"geometry/parameter_points": np.linspace(0, 1, n)[:, None],
                "operators/identity": np.eye(n)}

    def attributes(self):
        return {"noise_level": self.s["noise"], "equation": "(size I + B B^T/size) u = p"}

    def dataset_attributes(self):
        return {"geometry/parameter_points": {"grid_shape": (self.s["size"],)}}

    def solve(self, index, rng):
        n = self.s["size"]
        b = rng.standard_normal((n, n))
        p = rng.standard_normal(n)
        if self.s["offset_file"]:
            with open(self.s["offset_file"]) as f:
                p += float(f.read())
        noise = rng.standard_normal(self.s["n_obs"])
        if self.s["solve_log"]:
            with open(self.s["solve_log"], "a") as log:
                log.write(f"{index}\n")
        time.sleep(self.s["delay_s"])
        if self.s["fail_every"] and index % self.s["fail_every"] == self.s["fail_every"] - 1:
            raise SolverFailure(f"sample {index}")
        u = np.linalg.solve(n * np.eye(n) + b @ b.T / n, p)
        clean = u[: self.s["n_obs"]]
        return {"parameters": p, "states": u, "latent": p[:2], "observations_clean": clean,
                "observations": clean + self.s["noise"] * noise}

    def export_xdmf(self, directory, index, rows):
        np.savetxt(os.path.join(directory, f"toy_{index}.txt"), rows["states"])


def run_cli(args, nprocs=None, env=None, toy=True, **kwargs):
    """Run `python -m pde_data ARGS` (with the toy problem registered) in a subprocess, under
    `scripts/mpirun -n NPROCS` when given; returns the CompletedProcess (text output captured)."""
    command = [sys.executable, "-c", TOY_MAIN] if toy else [sys.executable, "-m", "pde_data"]
    if nprocs:
        command = mpirun(nprocs) + command
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(command + [str(a) for a in args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=300, **kwargs)


def file_content(path):
    """{object path: bytes or attribute value} of every dataset and attribute of an HDF5 file,
    except the root attribute `created_utc`; equal dicts mean bit-identical content."""
    import h5py

    content = {}

    def add(name, item):
        for key, value in item.attrs.items():
            if (name, key) != ("/", "created_utc"):
                content[f"{name}@{key}"] = np.asarray(value).tolist()
        if isinstance(item, h5py.Dataset):
            data = item[()]
            content[name] = (data.dtype.str, data.shape, data.tobytes())

    with h5py.File(path, "r") as f:
        add("/", f)
        f.visititems(add)
    return content


@pytest.fixture
def toy_problem(monkeypatch):
    """Register the toy model as problem `toy` in this process."""
    import pde_data.registry

    monkeypatch.setitem(pde_data.registry.FORWARD_MODELS, "toy", "tests.conftest")
    return "toy"
