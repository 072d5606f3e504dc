"""The dataset file (HDF5, schema_version 1): create, resume, write rows, validate, read.

Layout (see docs/design.md "Dataset file"): root attributes `schema_version`, `problem`, `preset`,
`base_seed`, `n_samples`, `config` (JSON of every setting), `created_utc`, `versions` (JSON) plus
the model's physical attributes; per-sample datasets (N, width) float64 filled with NaN;
`/status` (N,) int8 (0 pending, 1 done, 2 solver failure); `/geometry/*`, `/operators/*`.

`inputs` (JSON {setting: sha256}) records the content of every input file a setting names (e.g.
wind's `terrain_file`); a work file is resumed only when those contents are unchanged.

Crash safety: every dataset is contiguous and allocated (and filled) when the file is created, so
writing samples changes raw data only, never metadata. Rows are written before their status,
so a row with status != 0 is complete whenever the process is killed. Work in progress
lives in `FILE.partial` (`partial_path`), which the driver renames to FILE once no row is pending.

Needs only h5py and numpy (no dolfinx, no MPI unless `open_rows` is given a communicator), so
`problems/` reads datasets through `read`.
"""
import json
import os
import shutil
from dataclasses import dataclass

import h5py
import numpy as np

from common.errors import DatasetError

SCHEMA_VERSION = 1
PENDING, DONE, FAILED = 0, 1, 2
REQUIRED_ROWS = ("parameters", "observations", "observations_clean")
IDENTITY_KEYS = ("problem", "preset", "base_seed", "config")
OPTIONAL_IDENTITY_KEYS = ("inputs",)  # absent in files written before input hashes were recorded
RESERVED_ATTRS = ("schema_version", "n_samples", "created_utc", "versions") + IDENTITY_KEYS
METADATA_BYTES = 2**20  # allowance for HDF5 metadata and attributes in the size estimate


def partial_path(path):
    """Where the file at `path` is built until every row is done."""
    return f"{path}.partial"


def identity(problem, preset, base_seed, settings, inputs=None):
    """The root attributes that must match for a file to be resumed: problem, preset, seed, config
    and `inputs` ({setting: sha256 of the file it names})."""
    return {"problem": problem, "preset": preset, "base_seed": int(base_seed),
            "config": json.dumps(settings, sort_keys=True),
            "inputs": json.dumps(inputs or {}, sort_keys=True)}


def file_size(n_samples, layout, static_arrays):
    """Bytes the dataset file will take: rows (float64), status (int8), static arrays, metadata."""
    rows = 8 * n_samples * sum(int(width) for width in layout.values())
    static = sum(np.asarray(array).nbytes for array in static_arrays.values())
    return rows + n_samples + static + METADATA_BYTES


def check_free_space(path, n_bytes):
    """DatasetError (one line) when the file system of `path` has less than `n_bytes` free."""
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    if n_bytes > free:
        raise DatasetError(f"{path} would take {_size_text(n_bytes)} but only {_size_text(free)} "
                           "are free there (use fewer samples or another directory)")


def _size_text(n_bytes):
    return f"{n_bytes / 1e9:.3g} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.3g} MB"


def create(path, ident, layout, static_arrays, attributes, dataset_attributes, versions, created_utc):
    """Write a new dataset file with every row pending (NaN, status 0); atomic via `path.new`,
    which is removed on any failure. Refused (DatasetError) when the disk has too little space.

    `ident` from `identity`; `layout` {name: row width}; `static_arrays` {"geometry/..": array};
    `attributes` root attributes; `dataset_attributes` {dataset path: {attr: value}};
    `versions` {package: version}; `created_utc` ISO 8601 string.
    """
    n_samples = int(json.loads(ident["config"])["n_samples"])
    clash = sorted(set(attributes) & set(RESERVED_ATTRS + OPTIONAL_IDENTITY_KEYS))
    if clash:
        raise ValueError(f"model attributes use reserved names: {', '.join(clash)}")
    check_free_space(path, file_size(n_samples, layout, static_arrays))
    tmp = f"{path}.new"
    try:
        f = h5py.File(tmp, "w")
    except OSError as error:
        raise DatasetError(f"cannot create {path} ({_first_line(error)})") from None
    try:
        with f:
            _write_new(f, ident, n_samples, layout, static_arrays, attributes, dataset_attributes,
                       versions, created_utc)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_new(f, ident, n_samples, layout, static_arrays, attributes, dataset_attributes, versions,
               created_utc):
    """The attributes and every dataset of a new file (rows pending)."""
    f.attrs["schema_version"] = SCHEMA_VERSION
    for key in IDENTITY_KEYS + OPTIONAL_IDENTITY_KEYS:
        f.attrs[key] = ident[key]
    f.attrs["n_samples"] = n_samples
    f.attrs["created_utc"] = created_utc
    f.attrs["versions"] = json.dumps(versions, sort_keys=True)
    for key, value in attributes.items():
        f.attrs[key] = json.dumps(value) if isinstance(value, dict) else value
    for name, width in layout.items():
        _preallocate(f, name, (n_samples, int(width)), np.float64, np.nan)
    _preallocate(f, "status", (n_samples,), np.int8, PENDING)
    for name, array in static_arrays.items():
        f.create_dataset(name, data=np.asarray(array))
    for name, attrs in dataset_attributes.items():
        for key, value in attrs.items():
            f[name].attrs[key] = value


def _preallocate(f, name, shape, dtype, fill):
    """A contiguous dataset whose storage is allocated and filled now (its metadata never changes)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    dcpl.set_fill_value(np.array(fill, dtype=dtype))
    f.create_dataset(name, shape=shape, dtype=dtype, dcpl=dcpl)


def check_resumable(path, ident):
    """Raise DatasetError unless `path` is a valid dataset made with exactly `ident`."""
    attrs = validate(path)
    differences = []
    for key in ("problem", "preset", "base_seed"):
        if attrs[key] != ident[key]:
            differences.append(f"{key} {attrs[key]!r} != {ident[key]!r}")
    stored_inputs = json.loads(attrs.get("inputs", "{}"))
    for key, digest in sorted(json.loads(ident.get("inputs", "{}")).items()):
        if stored_inputs.get(key) != digest:
            differences.append(f"the file named by {key} has changed (sha256 {digest[:12]}..., "
                               f"was {str(stored_inputs.get(key))[:12]}...)")
    stored, wanted = json.loads(attrs["config"]), json.loads(ident["config"])
    for key in sorted(set(stored) | set(wanted)):
        if stored.get(key) != wanted.get(key):
            differences.append(f"{key} {stored.get(key)!r} != {wanted.get(key)!r}")
    if differences:
        raise DatasetError(f"{path} was made with another configuration "
                           f"({'; '.join(differences)}; file has the first value)")


def open_rows(path, comm=None):
    """Open a created file for writing rows; with a communicator of size > 1, MPI-IO (collective)."""
    if comm is not None and comm.size > 1:
        return h5py.File(path, "r+", driver="mpio", comm=comm)
    return h5py.File(path, "r+")


def write_rows(f, start, rows, status):
    """Write samples start, start+1, ...: every block of `rows` ({name: (n, width) array}) first,
    then their `status` (n,) (DONE, or FAILED with NaN rows), so a set status means complete rows."""
    stop = start + len(status)
    for name, block in rows.items():
        f[name][start:stop] = block
    f["status"][start:stop] = status


def validate(path):
    """The root attributes of the dataset at `path` (config/versions as JSON strings).

    Raises DatasetError (one line) for a missing, non-HDF5, corrupt or foreign file.
    """
    if os.path.isdir(path):
        raise DatasetError(f"{path} is a directory, not a dataset file")
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise DatasetError(f"{path} is not an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            return _check_schema(path, f)
    except OSError as error:
        raise DatasetError(f"{path} is corrupt or unreadable ({_first_line(error)})") from None


def _check_schema(path, f):
    """Root attributes after checking the schema's required attributes, datasets and shapes."""
    attrs = {key: _plain(value) for key, value in f.attrs.items()}
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise DatasetError(f"{path} is not a pde_data dataset (no schema_version {SCHEMA_VERSION})")
    missing = [key for key in RESERVED_ATTRS if key not in attrs]
    missing += [name for name in REQUIRED_ROWS + ("status",) if not isinstance(f.get(name), h5py.Dataset)]
    if missing:
        raise DatasetError(f"{path} is not a complete dataset (missing {', '.join(missing)})")
    n = attrs["n_samples"]
    if f["status"].shape != (n,) or f["status"].dtype != np.int8:
        raise DatasetError(f"{path}: /status is not ({n},) int8")
    for name, item in f.items():
        if isinstance(item, h5py.Dataset) and name != "status" and (
                item.ndim != 2 or item.shape[0] != n or item.dtype != np.float64):
            raise DatasetError(f"{path}: /{name} is not ({n}, width) float64")
    for key in ("config", "versions") + tuple(k for k in OPTIONAL_IDENTITY_KEYS if k in attrs):
        try:
            json.loads(attrs[key])
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: attribute '{key}' is not JSON") from None
    return attrs


def read_status(path):
    """The /status column of the dataset at `path` (after `validate`)."""
    validate(path)
    try:
        with h5py.File(path, "r") as f:
            return f["status"][()]
    except OSError as error:
        raise DatasetError(f"{path} is corrupt or unreadable ({_first_line(error)})") from None


def status_counts(path):
    """{"done": n, "pending": n, "failed": n} of the dataset at `path`."""
    status = read_status(path)
    return {label: int(np.sum(status == code))
            for label, code in (("done", DONE), ("pending", PENDING), ("failed", FAILED))}


def _plain(value):
    """An attribute as a Python scalar/str where it is one (numpy scalars -> int/float)."""
    return value.item() if isinstance(value, np.generic) else value


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


class Arrays(dict):
    """{path: array} of a dataset; a missing path is a DatasetError naming it and the file, so a
    schema-valid file that lacks what a problem needs (e.g. /operators) is refused in one line."""

    def __init__(self, source, *args):
        super().__init__(*args)
        self.source = source

    def __missing__(self, name):
        raise DatasetError(f"{self.source} has no /{name} (not a complete dataset of its problem)")


@dataclass
class Dataset:
    """A dataset read into memory: `arrays` {path: array} (rows, status, geometry/*, operators/*),
    `attrs` root attributes (config and versions decoded), `array_attrs` {path: {attr: value}}."""

    attrs: dict
    arrays: dict
    array_attrs: dict

    def rows(self, name):
        """The rows of per-sample dataset `name` whose status is done (solver failures left out)."""
        return self.arrays[name][self.arrays["status"] == DONE]


def read(path):
    """Validate and read the whole dataset at `path` (DatasetError for a bad file)."""
    attrs = validate(path)
    attrs["config"] = json.loads(attrs["config"])
    attrs["versions"] = json.loads(attrs["versions"])
    arrays, array_attrs = Arrays(path), {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            arrays[name] = item[()]
            if item.attrs:
                array_attrs[name] = {key: _plain(value) for key, value in item.attrs.items()}

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except OSError as error:
        raise DatasetError(f"{path} is corrupt or unreadable ({_first_line(error)})") from None
    return Dataset(attrs, arrays, array_attrs)


def summary(path):
    """A human-readable description of the dataset at `path` (for `python -m pde_data info`)."""
    data = read(path)
    attrs = data.attrs
    counts = status_counts(path)
    lines = [f"{path}: {attrs['problem']} dataset, preset {attrs['preset']}, "
             f"{attrs['n_samples']} samples, base_seed {attrs['base_seed']}",
             "status: " + ", ".join(f"{count} {label}" for label, count in counts.items()),
             f"created {attrs['created_utc']}; versions: "
             + ", ".join(f"{k} {v}" for k, v in attrs["versions"].items()),
             "datasets:"]
    for name, array in data.arrays.items():
        lines.append(f"  /{name:<28} {str(array.shape):<16} {array.dtype}")
    inputs = json.loads(attrs.get("inputs", "{}"))
    if inputs:
        lines.append("input files: " + ", ".join(f"{k} sha256 {v}" for k, v in inputs.items()))
    physical = {k: v for k, v in attrs.items() if k not in RESERVED_ATTRS + OPTIONAL_IDENTITY_KEYS}
    if physical:
        lines.append("attributes:")
        lines += [f"  {key} = {value}" for key, value in physical.items()]
    lines.append("config: " + json.dumps(attrs["config"], sort_keys=True))
    return "\n".join(lines)
