"""Fields on the unit torus T² = [0,1)²: a spectral Gaussian prior and trigonometric interpolation.

Grids: an N x N grid has the points x_ij = (i/N, j/N), 0 <= i, j < N; a grid field is an (N, N)
array f[i, j] = f(x_ij) (flattened in C order: index i*N + j). Only numpy (no dolfinx).

The prior. The covariance operator C = s (−Δ + τ² I)^{−α} on L²(T²) has the Fourier modes
e^{2πi k·x}, k ∈ Z², as eigenfunctions with eigenvalues λ_k = s (4π²|k|² + τ²)^{−α}. A draw is
the Karhunen–Loève expansion

    ω0(x) = Re Σ_k sqrt(λ_k) (a_k + i b_k) e^{2πi k·x},   a_k, b_k ~ N(0, 1) independent,

which has covariance exactly C on the retained modes (the real part of a complex white-noise
coefficient times sqrt(λ_k) gives each real mode cos/sin(2πk·x) the variance 2λ_k, i.e. λ_k per
L²-normalized mode). Retained: 0 < max(|k1|, |k2|) < N/2 for an N x N grid: the mean (k = 0) is
dropped, as in Li et al.'s data, so ω0 has zero mean; the Nyquist modes are dropped so that the
field is a real trigonometric polynomial that the grid values determine exactly. With τ = 7 and
α = 2.5 the neglected tail beyond |k| = 16 (N = 32) carries a fraction < 1e-4 of the variance.
Units: ω0 in 1/s when x is in units of the torus length and s, τ as given (τ in 1/length).
"""
import numpy as np


def wavenumbers(n):
    """Integer wavenumbers (k1, k2) of numpy's FFT layout on an n x n grid, each (n, n)."""
    k = np.fft.fftfreq(n, 1.0 / n)
    return np.meshgrid(k, k, indexing="ij")


class TorusGaussianPrior:
    """N(0, scale (−Δ + tau² I)^(−alpha)) on the unit torus, sampled by spectral synthesis."""

    def __init__(self, tau, alpha, scale):
        self.tau, self.alpha, self.scale = float(tau), float(alpha), float(scale)

    def eigenvalues(self, n):
        """λ_k on the n x n FFT layout, zero at the mean and at and beyond the Nyquist modes."""
        k1, k2 = wavenumbers(n)
        lam = self.scale * (4.0 * np.pi ** 2 * (k1 ** 2 + k2 ** 2) + self.tau ** 2) ** (-self.alpha)
        lam[(np.maximum(np.abs(k1), np.abs(k2)) >= n / 2) | ((k1 == 0) & (k2 == 0))] = 0.0
        return lam

    def sample_grid(self, rng, n):
        """One draw at the points of the n x n grid, shape (n, n); uses 2 n² standard normals."""
        z = rng.standard_normal((2, n, n))
        coefficients = np.sqrt(self.eigenvalues(n)) * (z[0] + 1j * z[1])
        return np.fft.ifft2(coefficients).real * (n * n)

    def velocity_std(self, n):
        """sqrt(E|v(x)|²) of the velocity v = ∇^⊥ (−Δ)^{−1} ω0 (any point, by stationarity):
        |v̂_k| = |ω̂_k| / (2π|k|), so E|v|² = Σ_k λ_k / (4π²|k|²) over the retained modes."""
        k1, k2 = wavenumbers(n)
        k_sq = np.maximum(k1 ** 2 + k2 ** 2, 1.0)
        return float(np.sqrt(np.sum(self.eigenvalues(n) / (4.0 * np.pi ** 2 * k_sq))))

    def describe(self):
        """The prior as a formula string (a dataset attribute)."""
        return (f"N(0, {self.scale:g} (-Laplace + {self.tau ** 2:g} I)^(-{self.alpha:g})) on the unit "
                f"torus, zero mean mode")


def refine(grid, n):
    """Trigonometric interpolation of the grid field `grid` (m, m) to the n x n grid (n a multiple
    of m): the values at the finer points of the unique real trigonometric polynomial with the
    modes max(|k1|, |k2|) < m/2 that takes the given values (exact for fields drawn by
    `TorusGaussianPrior.sample_grid(rng, m)`)."""
    m = grid.shape[0]
    if n % m:
        raise ValueError(f"refine: {n} is not a multiple of {m}")
    coefficients = np.fft.fft2(grid) / (m * m)
    k1, k2 = wavenumbers(m)
    coefficients[np.maximum(np.abs(k1), np.abs(k2)) >= m / 2] = 0.0
    padded = np.zeros((n, n), dtype=complex)
    rows = np.fft.fftfreq(m, 1.0 / m).astype(int) % n  # wavenumber k sits at index k mod n
    padded[np.ix_(rows, rows)] = coefficients
    return np.fft.ifft2(padded).real * (n * n)
