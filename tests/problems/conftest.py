"""Session fixtures: tiny datasets made by the real generator (`python -m pde_data generate`) and tiny
MNIST IDX files written here, so every problem can be loaded and trained in seconds."""
import gzip
import hashlib
import struct
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

SIZES = {"heat": 40, "navier_stokes": 12, "wind": 8}


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """{problem: path} of smoke-preset datasets with few samples."""
    root = tmp_path_factory.mktemp("datasets")
    paths = {}
    for problem, n in SIZES.items():
        paths[problem] = root / f"{problem}.h5"
        subprocess.run([sys.executable, "-m", "pde_data", "generate", problem, "--preset", "smoke",
                        "--n-samples", str(n), "--out", str(paths[problem])],
                       cwd=REPO, check=True, capture_output=True, timeout=300)
    return paths


def write_idx(path, array):
    """A gzip-compressed IDX file of uint8 images (n, r, c) or labels (n,)."""
    array = np.asarray(array, dtype=np.uint8)
    header = (struct.pack(">IIII", 2051, *array.shape) if array.ndim == 3 else struct.pack(">II", 2049, len(array)))
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory):
    """(directory, checksums) of tiny IDX files: class c images are bright in row block c."""
    from problems import mnist

    root = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("t10k", 60)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, size=(n, 28, 28))
        for i, c in enumerate(labels):
            images[i, 2 * c:2 * c + 3] = 250
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    sums = {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in mnist.FILES.values()}
    return root, sums
