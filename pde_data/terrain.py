"""Terrain elevation z = h(x, y) for the wind problem: synthetic Gaussian hills or an ESRI ASCII grid.

Coordinates are local and in metres: the site is the rectangle [0, Lx] × [0, Ly], x pointing east
and y north, and heights are measured from the lowest terrain point (so min h = 0).
"""
import numpy as np

from common.errors import UserError


class Terrain:
    """Elevation h(x, y) [m] on [0, Lx] × [0, Ly] [m], bilinear between samples or analytic."""

    def __init__(self, length_x, length_y, height_fn, description, base_elevation=0.0):
        self.length_x = float(length_x)
        self.length_y = float(length_y)
        self._height_fn = height_fn
        self.description = description
        self.base_elevation = float(base_elevation)  # elevation [m] of h = 0 in the source's datum

    @property
    def max_height(self):
        """max h [m], sampled on a 257 × 257 grid over the site."""
        x, y = np.meshgrid(np.linspace(0, self.length_x, 257), np.linspace(0, self.length_y, 257))
        return float(self(x, y).max())

    def __call__(self, x, y):
        """h at the points (x, y) [m], arrays of equal shape."""
        return self._height_fn(np.asarray(x, dtype=float), np.asarray(y, dtype=float))


def gaussian_hills(length_x, length_y, n_hills, height, width, seed):
    """`n_hills` Gaussian hills h = Σ a_k exp(−|x − c_k|²/(2σ_k²)) drawn from `seed`.

    a_k ~ U[0.5, 1]·height, σ_k ~ U[0.5, 1]·width, centres c_k uniform in the middle 60 % of the
    site, so the terrain is nearly flat near the lateral (inflow/outflow) boundaries.
    """
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, size=(n_hills, 2)) * [length_x, length_y]
    amplitudes = rng.uniform(0.5, 1.0, size=n_hills) * height
    sigmas = rng.uniform(0.5, 1.0, size=n_hills) * width

    def h(x, y):
        z = np.zeros(np.broadcast(x, y).shape)
        for (cx, cy), a, s in zip(centres, amplitudes, sigmas):
            z += a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2.0 * s * s))
        return z

    return Terrain(length_x, length_y, h,
                   f"{n_hills} Gaussian hills (height {height} m, width {width} m, seed {seed})")


_HEADER_KEYS = ("ncols", "nrows", "xllcorner", "yllcorner", "xllcenter", "yllcenter",
                "cellsize", "nodata_value")


def read_asc(path):
    """Read an ESRI ASCII grid (`.asc`) of elevations [m] as a Terrain (bilinear interpolation).

    Header: ncols, nrows, xllcorner|xllcenter, yllcorner|yllcenter, cellsize, optional
    NODATA_value; then nrows lines of ncols values, the first line being the northernmost row.
    Values sit at cell centres; the site is the grid's outer rectangle, shifted to the origin, and
    h is clamped to the outermost centres near the edges. Any malformed file raises `UserError`
    with a one-line message naming the file.
    """
    def fail(reason):
        raise UserError(f"terrain file {path}: {reason}")

    try:
        with open(path) as f:
            lines = [line.split() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        fail(f"cannot read ({err.__class__.__name__}: {err})")
    header = {}
    while lines and lines[0] and lines[0][0].lower() in _HEADER_KEYS:
        if len(lines[0]) != 2:
            fail(f"header line '{' '.join(lines[0])}' must be 'KEY VALUE'")
        key, value = lines.pop(0)
        try:
            header[key.lower()] = float(value)
        except ValueError:
            fail(f"header value '{value}' of {key} is not a number")
    for key in ("ncols", "nrows", "cellsize"):
        if key not in header:
            fail(f"header lacks '{key}'")
    ncols, nrows, cellsize = int(header["ncols"]), int(header["nrows"]), header["cellsize"]
    if ncols < 2 or nrows < 2 or ncols != header["ncols"] or nrows != header["nrows"]:
        fail(f"ncols and nrows must be integers >= 2, got {header['ncols']:g} and {header['nrows']:g}")
    if not cellsize > 0:
        fail(f"cellsize must be positive, got {cellsize:g}")
    if len(lines) != nrows:
        fail(f"expected {nrows} data rows, found {len(lines)}")
    for i, row in enumerate(lines):
        if len(row) != ncols:
            fail(f"data row {i + 1} has {len(row)} values, expected {ncols}")
    try:
        values = np.array(lines, dtype=float)
    except ValueError:
        fail("data rows contain a value that is not a number")
    if "nodata_value" in header and np.any(values == header["nodata_value"]):
        fail("contains NODATA cells; fill them before use")
    if not np.all(np.isfinite(values)):
        fail("contains non-finite values")

    heights = values[::-1]                      # row 0 = southernmost
    base = float(heights.min())
    heights = heights - base
    centres_x = (np.arange(ncols) + 0.5) * cellsize
    centres_y = (np.arange(nrows) + 0.5) * cellsize

    def h(x, y):
        fx = np.clip((x - centres_x[0]) / cellsize, 0.0, ncols - 1.0)
        fy = np.clip((y - centres_y[0]) / cellsize, 0.0, nrows - 1.0)
        i = np.minimum(fx.astype(int), ncols - 2)
        j = np.minimum(fy.astype(int), nrows - 2)
        tx, ty = fx - i, fy - j
        return ((1 - tx) * (1 - ty) * heights[j, i] + tx * (1 - ty) * heights[j, i + 1]
                + (1 - tx) * ty * heights[j + 1, i] + tx * ty * heights[j + 1, i + 1])

    return Terrain(ncols * cellsize, nrows * cellsize, h,
                   f"ESRI ASCII grid {path} ({ncols}x{nrows}, cellsize {cellsize:g} m)", base)
