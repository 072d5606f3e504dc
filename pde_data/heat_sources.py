"""The sources' heat-inversion files: where they come from, checking them, reading them.

The layerwise-training paper's heat problem (Krishnanunni & Bui-Thanh) published its prior, sensors
and samples in the authors' repository ``cgkrishnanunni/Sparsifying_Additive_Layerwise_Training``;
this module uses the files of commit :data:`COMMIT` (folder ``INVERSE PROBLEM ADAPTATION/
plot_inverse_solution/``: ``data/`` and ``INVERSE_PROBLEM_TRIAL_4/``, here ``trial4/``), each checked
against the sha256 in ``pde_data/heat_sources.sha256`` (the team's ``SHA256SUMS``).

Where the files are read from (:func:`source_dir`): ``$HEAT_SOURCES_DIR`` if set; else
``data/heat-sources`` of this repository if it holds them; else the team's copy
``../shared/datasets/heat-sources`` beside the repository; else they are downloaded into
``data/heat-sources`` from the raw GitHub URLs of that commit. No network and no copy is one
:class:`~common.errors.UserError` line.

``dolfin2019_p1_dof_coordinates.csv`` is not the authors' file: it was computed by the team with
legacy DOLFIN 2019.2 (``UnitSquareMesh(9, 9)``, P1, ``tabulate_dof_coordinates``) and ships in
``pde_data/`` (it cannot be downloaded). It maps the rows of E (DOLFIN 2019 dof numbering) onto any
other numbering of the same mesh by coordinates (:func:`dof_permutation`).

What the files are (numbers checked in ``tests/pde_data/test_heat_sources.py``): E (100×12,
orthonormal columns), Σ (12×12 diagonal, ≈ 1.006), the 10 observed dofs, the 28 Dirichlet dofs, the
sources' P1 stiffness tensor P (K(u) = reshape(P e^u, 100×100)), the 500 test parameters z with
their noise-free observations, and the TRIAL_4 pool of 10,000 samples (z, clean and noisy
observations) with the 500 noisy test observations. Pure numpy/scipy (no dolfinx).
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse

from common.errors import UserError

COMMIT = "da60e57261f1371191774f4cf5c9505dd3d9e5fd"
REPOSITORY = "cgkrishnanunni/Sparsifying_Additive_Layerwise_Training"
FOLDER = "INVERSE PROBLEM ADAPTATION/plot_inverse_solution/"
REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKSUMS = Path(__file__).with_name("heat_sources.sha256")
DOF_COORDINATES = Path(__file__).with_name("dolfin2019_p1_dof_coordinates.csv")
# local name -> folder of the authors' repository
_REMOTE_DIRS = {"": "data/", "trial4/": "INVERSE_PROBLEM_TRIAL_4/"}
NAMES = {
    "E": "prior_mean_n12_AC_1_1_pt5.csv",
    "sigma": "prior_covariance_n12_AC_1_1_pt5.csv",
    "free": "prior_covariance_cholesky_n12_AC_1_1_pt5.csv",
    "dirichlet": "prior_covariance_cholesky_inverse_n12_AC_1_1_pt5.csv",
    "obs": "poisson_2D_obs_indices_o10_n12.csv",
    "z_test": "poisson_2D_parameter_test_d500_n12_AC_1_1_pt5.csv",
    "y_test_clean": "poisson_2D_state_obs_test_o10_d500_n12_AC_1_1_pt5.csv",
    "prestiffness": "prestiffness_n12.npz",
    "pool_z": "trial4/labels_train.csv",
    "pool_clean": "trial4/data_train_no_noise.csv",
    "pool_noisy": "trial4/data_train.csv",
    "test_z": "trial4/labels_test.csv",
    "test_noisy": "trial4/data_test.csv",
}
N_DOFS, N_MODES, N_OBS, N_POOL, N_TEST = 100, 12, 10, 10000, 500


def checksums() -> dict:
    """{relative path: sha256} of the authors' files (the team's SHA256SUMS without our own file)."""
    out = {}
    for line in CHECKSUMS.read_text().splitlines():
        digest, name = line.split()
        name = name.removeprefix("./")
        if name != DOF_COORDINATES.name:
            out[name] = digest
    return out


def url(name: str) -> str:
    """The raw GitHub URL of local file ``name`` at :data:`COMMIT`."""
    prefix = "trial4/" if name.startswith("trial4/") else ""
    remote = FOLDER + _REMOTE_DIRS[prefix] + name.removeprefix(prefix)
    return f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/{urllib.parse.quote(remote)}"


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in checksums())


def source_dir(download: bool = True) -> Path:
    """The directory holding the sources' files (see the module docstring for the order)."""
    if os.environ.get("HEAT_SOURCES_DIR"):
        return Path(os.environ["HEAT_SOURCES_DIR"])
    local = REPO_ROOT / "data" / "heat-sources"
    shared = REPO_ROOT.parent / "shared" / "datasets" / "heat-sources"
    for directory in (local, shared):
        if _complete(directory):
            return directory
    if not download:
        raise UserError(f"heat sources: no copy in {local} or {shared}")
    return fetch(local)


def fetch(directory: Path) -> Path:
    """Download every file into ``directory`` (sha256-checked); UserError (one line) without network."""
    for name, digest in checksums().items():
        path = Path(directory) / name
        if path.is_file() and _sha256(path.read_bytes()) == digest:
            continue
        try:
            with urllib.request.urlopen(url(name), timeout=60) as response:
                raw = response.read()
        except (urllib.error.URLError, OSError) as error:
            raise UserError(f"heat sources: cannot download {name} ({error}) and no local copy exists "
                            f"(set HEAT_SOURCES_DIR)") from None
        if _sha256(raw) != digest:
            raise UserError(f"heat sources: downloaded {name} has the wrong sha256")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    return Path(directory)


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def read(name: str, directory: Path | None = None):
    """The array in file ``NAMES[name]`` after checking its sha256: CSVs (one header line, one number a
    line) as a flat float array, the stiffness tensor as scipy CSR (10000 × 100)."""
    directory = Path(directory) if directory is not None else source_dir()
    relative = NAMES[name]
    path = directory / relative
    if not path.is_file():
        raise UserError(f"heat sources: {path} not found")
    raw = path.read_bytes()
    if _sha256(raw) != checksums()[relative]:
        raise UserError(f"heat sources: {path} does not match its published sha256")
    if relative.endswith(".npz"):
        d = np.load(path)
        return scipy.sparse.csr_matrix((d["data"], d["indices"], d["indptr"]), shape=tuple(d["shape"]))
    return np.loadtxt(path, skiprows=1, delimiter=",", ndmin=1)


@dataclass
class SourcesPrior:
    """The sources' prior and sensors in DOLFIN 2019's dof numbering: u = E diag(sigma) z, z ~ N(0, I)."""

    E: np.ndarray            # (100, 12), orthonormal columns
    sigma: np.ndarray        # (12,), the diagonal of Σ
    obs_dofs: np.ndarray     # (10,) observed dofs
    dirichlet: np.ndarray    # (28,) dofs with y = 0
    coordinates: np.ndarray  # (100, 2) dof coordinates

    @classmethod
    def load(cls, directory: Path | None = None) -> "SourcesPrior":
        sigma = read("sigma", directory).reshape(N_MODES, N_MODES)
        if np.count_nonzero(sigma - np.diag(np.diag(sigma))):
            raise UserError("heat sources: Σ is not diagonal")
        return cls(read("E", directory).reshape(N_DOFS, N_MODES), np.diag(sigma).copy(),
                   read("obs", directory).astype(np.int64), read("dirichlet", directory).astype(np.int64),
                   dolfin_coordinates())


def dolfin_coordinates() -> np.ndarray:
    """(x, y) of DOLFIN 2019's P1 dof i of UnitSquareMesh(9, 9) in row i."""
    return np.loadtxt(DOF_COORDINATES, delimiter=",", comments="#")


def dof_permutation(source_points: np.ndarray, target_points: np.ndarray, tolerance: float = 1e-8) -> np.ndarray:
    """``perm`` with ``target_points[j] == source_points[perm[j]]``: the source dof at each target dof.
    ValueError if the two point sets are not the same set (up to ``tolerance``)."""
    source, target = np.asarray(source_points)[:, :2], np.asarray(target_points)[:, :2]
    if source.shape != target.shape:
        raise ValueError(f"{len(source)} source points, {len(target)} target points")
    order_s = np.lexsort(np.round(source / tolerance).T[::-1])
    order_t = np.lexsort(np.round(target / tolerance).T[::-1])
    if np.abs(source[order_s] - target[order_t]).max() > tolerance:
        raise ValueError("the two meshes do not have the same dof coordinates")
    perm = np.empty(len(target), dtype=np.int64)
    perm[order_t] = order_s
    return perm
