"""Gaussian random-field priors on a finite-element space (hIPPYlib's BiLaplacian prior).

The prior of the parameter field m is the Matérn-type Gaussian measure N(m̄, C) with

    C = (δ − γΔ)^{−α},   α = 2,

hIPPYlib's `BiLaplacianPrior` (Lindgren–Rue–Lindström 2011): the precision is the squared
elliptic operator, so a draw solves the stochastic PDE (δ − γΔ)(m − m̄) = W, W spatial white
noise, once. On ∂Ω the operator has either natural (homogeneous Neumann) conditions or the
Robin condition γ ∂m/∂n + β m = 0, β = sqrt(γδ)/1.42 (hIPPYlib's `robin_bc`, Roininen et
al. 2014), which removes most of the variance inflation that Neumann conditions cause near the boundary.
Discretized on a P1 space with mass matrix M and stiffness K, A = δM + γK (+ β M_∂Ω), and

    m = m̄ + A^{-1} G w,   w ~ N(0, I),   G G^T = M   ⇒   Cov(m) = C = A^{-1} M A^{-1}.

G is the exact element-wise factor of the P1 mass matrix (M_e = |e|/((d+1)(d+2)) (I + 1 1^T),
factored once by Cholesky), so the sample covariance is exactly C, not a lumped approximation.
In 2-D (ν = α − d/2 = 1) the interior correlation length is ρ = sqrt(8γ/δ) and the marginal
standard deviation σ = 1/sqrt(4π γ δ); `BiLaplacianPrior.from_correlation` inverts this.

The truncated Karhunen–Loève expansion: since C = (M^{-1}A)^{-α} M^{-1}, the eigenpairs of the
covariance operator in L²(Ω), C M φ = λ φ, are those of the pencil A φ = ν M φ with λ = ν^{-α};
with M-orthonormal φ_k (Φ^T M Φ = I), C = Σ_k λ_k φ_k φ_k^T and

    m ≈ m̄ + Σ_{k<n} sqrt(λ_k) z_k φ_k,   z ~ N(0, I_n)   (the n largest λ_k).

Units: m is dimensionless (heat: the log-conductivity); γ has units length², δ 1.
The prior lives on one process: the space's communicator must have size 1 (matrices are scipy
sparse; datasets solve one sample per process). Every random number comes from the `rng`
passed in (the sample's own `numpy.random.Generator`).
"""
import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
import ufl

from pde_data import fem

DENSE_EIGEN_LIMIT = 2000  # dofs: dense scipy.linalg.eigh below, sparse shift-invert eigsh above


def mass_matrix(space):
    """The P1 mass matrix M_ij = ∫ φ_i φ_j dx as scipy CSR (one process)."""
    u, v = ufl.TrialFunction(space), ufl.TestFunction(space)
    return _to_csr(fem.assemble_matrix_coo(fem.form(u * v * ufl.dx)), space)


def stiffness_matrix(space):
    """The stiffness matrix K_ij = ∫ ∇φ_i·∇φ_j dx as scipy CSR (one process)."""
    u, v = ufl.TrialFunction(space), ufl.TestFunction(space)
    return _to_csr(fem.assemble_matrix_coo(fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)),
                   space)


def _boundary_mass_matrix(space):
    """The boundary mass matrix ∫_∂Ω φ_i φ_j ds as scipy CSR."""
    u, v = ufl.TrialFunction(space), ufl.TestFunction(space)
    return _to_csr(fem.assemble_matrix_coo(fem.form(u * v * ufl.ds)), space)


def _to_csr(coo, space):
    """COO triplets of a square matrix on `space` -> scipy CSR (duplicates summed)."""
    if space.mesh.comm.size != 1:
        raise ValueError("priors need a space on a single process (MPI.COMM_SELF)")
    n = fem.n_global_dofs(space)
    rows, cols, values = coo
    return scipy.sparse.csr_matrix((values, (rows, cols)), shape=(n, n))


def mass_factor(space):
    """Sparse G (n_dofs, (d+1) n_cells) with G G^T = M exactly, for P1 on simplices: the element
    mass matrix |e|/((d+1)(d+2)) (I + 1 1^T) = L_e L_e^T, assembled column-block per cell."""
    dofs, volumes, _ = fem.p1_simplex_geometry(space)
    n_cells, n_local = dofs.shape
    d = n_local - 1
    unit_factor = np.linalg.cholesky(np.eye(n_local) + np.ones((n_local, n_local)))
    scale = np.sqrt(volumes / ((d + 1) * (d + 2)))
    values = scale[:, None, None] * unit_factor[None, :, :]  # (cell, local dof i, local column j)
    rows = np.repeat(dofs[:, :, None], n_local, axis=2)
    cols = np.broadcast_to(n_local * np.arange(n_cells)[:, None, None] + np.arange(n_local),
                           values.shape)
    return scipy.sparse.csr_matrix((values.ravel(), (rows.ravel(), cols.ravel())),
                                   shape=(fem.n_global_dofs(space), n_local * n_cells))


class BiLaplacianPrior:
    """N(mean, C), C = A^{-1} M A^{-1}, A = δM + γK (+ Robin term): see the module docstring.

    space: scalar P1 space on one process; gamma (γ > 0, length²), delta (δ > 0);
    mean: a number or a nodal vector; robin: Robin (True) or natural Neumann (False) boundary.
    """

    alpha = 2

    def __init__(self, space, gamma, delta, mean=0.0, robin=False):
        if gamma <= 0 or delta <= 0:
            raise ValueError(f"gamma and delta must be positive, got {gamma}, {delta}")
        self.space, self.gamma, self.delta, self.robin = space, gamma, delta, robin
        self.M = mass_matrix(space)
        A = delta * self.M + gamma * stiffness_matrix(space)
        if robin:
            A = A + (np.sqrt(gamma * delta) / 1.42) * _boundary_mass_matrix(space)
        self.A = A.tocsc()
        n = self.M.shape[0]
        self.mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (n,)).copy()
        self._A_lu = scipy.sparse.linalg.splu(self.A)
        self._G = mass_factor(space)

    @classmethod
    def from_correlation(cls, space, correlation_length, std, mean=0.0, robin=False):
        """The 2-D prior with interior correlation length ρ = sqrt(8γ/δ) and marginal standard
        deviation σ = 1/sqrt(4πγδ) (Matérn ν = 1): γ = ρ/(σ sqrt(32π)), δ = 8γ/ρ²."""
        if space.mesh.topology.dim != 2:
            raise ValueError("from_correlation uses the 2-D Matérn relations")
        gamma = correlation_length / (std * np.sqrt(32.0 * np.pi))
        return cls(space, gamma, 8.0 * gamma / correlation_length**2, mean, robin)

    @property
    def n_dofs(self):
        """Dimension of the nodal parameter vector."""
        return self.M.shape[0]

    def sample(self, rng, n=None):
        """One draw m (n_dofs,) from the SPDE, m = mean + A^{-1} G w, w from `rng`; with `n`:
        n draws as columns (n_dofs, n)."""
        shape = (self._G.shape[1],) if n is None else (self._G.shape[1], n)
        w = rng.standard_normal(shape)
        m = self._A_lu.solve(np.asarray(self._G @ w))
        return m + (self.mean if n is None else self.mean[:, None])

    def covariance(self):
        """The dense prior covariance C = A^{-1} M A^{-1} (small problems: tests, plots)."""
        Ainv_M = self._A_lu.solve(self.M.toarray())
        return self._A_lu.solve(Ainv_M.T)

    def kl(self, n_modes):
        """The truncated Karhunen–Loève expansion with the `n_modes` largest eigenvalues."""
        n = self.n_dofs
        if not 1 <= n_modes <= n:
            raise ValueError(f"n_modes must be in [1, {n}], got {n_modes}")
        if n <= DENSE_EIGEN_LIMIT or n_modes >= n - 1:
            nu, modes = scipy.linalg.eigh(self.A.toarray(), self.M.toarray(),
                                          subset_by_index=[0, n_modes - 1])
        else:
            nu, modes = scipy.sparse.linalg.eigsh(self.A, k=n_modes, M=self.M.tocsc(), sigma=0.0,
                                                  which="LM")
            order = np.argsort(nu)
            nu, modes = nu[order], modes[:, order]
        # deterministic signs: the entry of largest magnitude of each mode is positive
        signs = np.sign(modes[np.argmax(np.abs(modes), axis=0), np.arange(n_modes)])
        return KLExpansion(self.mean, nu ** (-float(self.alpha)), modes * signs)


class KLExpansion:
    """m = mean + Σ_k sqrt(λ_k) z_k φ_k, z ~ N(0, I): eigenvalues λ (n_modes,) in decreasing
    order, modes Φ (n_dofs, n_modes) M-orthonormal, mean (n_dofs,)."""

    def __init__(self, mean, eigenvalues, modes):
        self.mean, self.eigenvalues, self.modes = mean, eigenvalues, modes
        self._scaled = modes * np.sqrt(eigenvalues)

    @property
    def n_modes(self):
        """Number of retained modes (the latent dimension)."""
        return len(self.eigenvalues)

    def field(self, z):
        """The nodal field m(z) = mean + Φ diag(sqrt λ) z."""
        return self.mean + self._scaled @ z

    def sample(self, rng):
        """(z, m(z)) with z ~ N(0, I_n_modes) drawn from `rng`."""
        z = rng.standard_normal(self.n_modes)
        return z, self.field(z)

    def covariance(self):
        """The covariance of the truncated expansion, Φ diag(λ) Φ^T."""
        return self._scaled @ self._scaled.T
