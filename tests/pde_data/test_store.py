"""The dataset file: round trip, preallocation, validation of foreign/corrupt files, resume checks."""
import json
import os
import shutil

import h5py
import numpy as np
import pytest

from pde_data import store
from common.errors import DatasetError
from tests.conftest import ForwardModel as Toy

SETTINGS = Toy.settings("smoke", {"n_samples": 5})
IDENT = store.identity("toy", "smoke", 7, SETTINGS)


def make_file(path, ident=IDENT):
    """A toy dataset with every row pending; returns the model that describes it."""
    model = Toy(SETTINGS, None)
    store.create(str(path), ident, model.layout(), model.static_arrays(), model.attributes(),
                 model.dataset_attributes(), {"numpy": np.__version__}, "2024-01-01T00:00:00+00:00")
    return model


def test_round_trip_rows_status_geometry_and_attributes(tmp_path):
    path = tmp_path / "d.h5"
    model = make_file(path)
    size_created = os.path.getsize(path)
    solved = {i: model.solve(i, np.random.default_rng(i)) for i in (0, 1, 3)}
    block = {name: np.array([solved[0][name], solved[1][name]]) for name in solved[0]}
    failed = {name: np.full((1, width), np.nan) for name, width in model.layout().items()}
    with store.open_rows(str(path)) as f:
        store.write_rows(f, 0, block, np.array([store.DONE, store.DONE], dtype=np.int8))
        store.write_rows(f, 3, {k: v[None] for k, v in solved[3].items()}, np.array([store.DONE], np.int8))
        store.write_rows(f, 4, failed, np.array([store.FAILED], dtype=np.int8))
    assert os.path.getsize(path) == size_created  # preallocated: writing rows adds nothing

    data = store.read(str(path))
    assert data.arrays["status"].tolist() == [1, 1, 0, 1, 2]
    for name, width in model.layout().items():
        assert data.arrays[name].shape == (5, width)
        for i in (0, 1, 3):
            np.testing.assert_array_equal(data.arrays[name][i], solved[i][name])
        assert np.isnan(data.arrays[name][[2, 4]]).all()
        np.testing.assert_array_equal(data.rows(name), data.arrays[name][[0, 1, 3]])
    np.testing.assert_array_equal(data.arrays["operators/identity"], np.eye(6))
    assert data.array_attrs["geometry/parameter_points"]["grid_shape"].tolist() == [6]
    assert data.attrs["problem"] == "toy" and data.attrs["preset"] == "smoke"
    assert data.attrs["base_seed"] == 7 and data.attrs["n_samples"] == 5
    assert data.attrs["config"] == SETTINGS and data.attrs["noise_level"] == 0.01
    assert data.attrs["versions"] == {"numpy": np.__version__}
    assert data.attrs["schema_version"] == 1


def test_every_dataset_is_contiguous_and_allocated_at_creation(tmp_path):
    path = tmp_path / "d.h5"
    make_file(path)
    with h5py.File(path, "r") as f:
        for name in ("parameters", "observations", "states", "status"):
            assert f[name].chunks is None
            assert f[name].id.get_storage_size() == f[name].size * f[name].dtype.itemsize


def one_line_error(action):
    with pytest.raises(DatasetError) as info:
        action()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_validate_rejects_foreign_corrupt_and_non_hdf5_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["parameters"] = np.zeros((3, 2))
    assert "not a pde_data dataset" in one_line_error(lambda: store.validate(str(foreign)))

    good = tmp_path / "good.h5"
    make_file(good)
    truncated = tmp_path / "truncated.h5"
    shutil.copy(good, truncated)
    with open(truncated, "r+b") as f:
        f.truncate(os.path.getsize(good) // 2)
    assert "corrupt" in one_line_error(lambda: store.validate(str(truncated)))
    assert "corrupt" in one_line_error(lambda: store.read(str(truncated)))

    text = tmp_path / "notes.h5"
    text.write_text("not a dataset\n")
    assert "not an HDF5 file" in one_line_error(lambda: store.validate(str(text)))
    assert "no such file" in one_line_error(lambda: store.validate(str(tmp_path / "missing.h5")))


def test_validate_rejects_rows_that_do_not_match_n_samples(tmp_path):
    path = tmp_path / "d.h5"
    make_file(path)
    with h5py.File(path, "r+") as f:
        f.create_dataset("extra", data=np.zeros((4, 2)))
    assert "/extra" in one_line_error(lambda: store.validate(str(path)))


def test_resume_check_names_what_differs_and_leaves_the_file_untouched(tmp_path):
    path = tmp_path / "d.h5"
    make_file(path)
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    store.check_resumable(str(path), IDENT)

    other = store.identity("toy", "smoke", 8, {**SETTINGS, "size": 7})
    message = one_line_error(lambda: store.check_resumable(str(path), other))
    assert "base_seed 7 != 8" in message and "size 6 != 7" in message
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before


def test_create_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "d.h5"
    make_file(path)
    assert sorted(os.listdir(tmp_path)) == ["d.h5"]
    assert json.loads(store.validate(str(path))["config"]) == SETTINGS
