"""The finite-element toolkit: the ONE module that knows dolfinx's version differences.

Everything else in `pde_data` calls these functions and never touches an API that changed
between dolfinx 0.5 (Debian 12), 0.9 (Debian 13) and 0.11 (Debian unstable), all tested:

    0.5                         0.7+ / 0.9 / 0.10 / 0.11
    FunctionSpace(mesh, el)     functionspace(mesh, ("Lagrange", k[, shape]))
    BoundingBoxTree(mesh, d)    bb_tree(mesh, d)
    compute_collisions(t, x)    compute_collisions_points(t, x)
    u.vector                    u.x.petsc_vec
    dofmap.list (AdjacencyList) dofmap.list (2-D numpy array)
    geometry.dofmap             geometry.dofmaps[0]                             (0.11)
    create_vector(L: form)      create_vector(V: space)                         (0.10)

Linear solves do not use `LinearProblem` (its `petsc_options_prefix` argument changed): a
`LinearSolver` owns one PETSc matrix and vector with a fixed sparsity, re-assembles into them,
and reuses one KSP, so a dataset compiles its forms and builds its solver exactly once.

Units: whatever the caller's forms use; this module adds none.
"""
import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx
import dolfinx.fem
import dolfinx.fem.petsc
import dolfinx.geometry
import dolfinx.io
import dolfinx.mesh

from common.errors import SolverFailure

DOLFINX_VERSION = tuple(int(p) for p in dolfinx.__version__.split(".")[:2])


# --- meshes -------------------------------------------------------------------------------------

def unit_square(comm, n):
    """The unit square (0,1)^2 split into n x n squares, each cut into 2 triangles: (n+1)^2 vertices."""
    return dolfinx.mesh.create_unit_square(comm, n, n, cell_type=dolfinx.mesh.CellType.triangle)


def box(comm, lower, upper, nx, ny, nz):
    """The box [lower, upper] (two 3-D corners) split into nx x ny x nz cubes, each cut into tetrahedra."""
    corners = [np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)]
    return dolfinx.mesh.create_box(comm, corners, [nx, ny, nz], cell_type=dolfinx.mesh.CellType.tetrahedron)


def mesh_arrays(mesh):
    """(coordinates (n_nodes, gdim), cells (n_cells, nodes per cell)) of this process's part of
    the mesh geometry, cells indexing the coordinate rows: what a plot (matplotlib tripcolor)
    needs. On one process this is the whole mesh."""
    gdim = mesh.geometry.dim
    x = mesh.geometry.x[:, :gdim].copy()
    n_cells = mesh.topology.index_map(mesh.topology.dim).size_local
    return x, _adjacency_array(_geometry_dofmap(mesh.geometry))[:n_cells].copy()


def _geometry_dofmap(geometry):
    """The geometry's cell -> node map (`dofmap`; `dofmaps[0]` from 0.11, one per cell type)."""
    return geometry.dofmaps[0] if hasattr(geometry, "dofmaps") else geometry.dofmap


# --- function spaces and functions --------------------------------------------------------------

def scalar_space(mesh, degree=1, family="Lagrange"):
    """The scalar finite-element space of `family` and `degree` on `mesh`."""
    if DOLFINX_VERSION >= (0, 7):
        return dolfinx.fem.functionspace(mesh, (family, degree))
    return dolfinx.fem.FunctionSpace(mesh, (family, degree))


def vector_space(mesh, degree=1, family="Lagrange"):
    """The vector-valued (gdim components) finite-element space of `family` and `degree`."""
    if DOLFINX_VERSION >= (0, 7):
        return dolfinx.fem.functionspace(mesh, (family, degree, (mesh.geometry.dim,)))
    return dolfinx.fem.VectorFunctionSpace(mesh, (family, degree))


def function(space, name=None):
    """A zero finite-element function on `space` (with `name` for XDMF output)."""
    u = dolfinx.fem.Function(space)
    if name:
        u.name = name
    return u


def petsc_vector(u):
    """The PETSc vector behind function `u` (u.vector in 0.5, u.x.petsc_vec from 0.8)."""
    return u.x.petsc_vec if DOLFINX_VERSION >= (0, 8) else u.vector


def n_global_dofs(space):
    """Number of scalar dofs over all processes (block size included)."""
    index_map = space.dofmap.index_map
    return index_map.size_global * space.dofmap.index_map_bs


def dof_coordinates(space):
    """Coordinates (n_owned_nodes, gdim) of the dof nodes this process owns, in local dof order
    (for a vector space: one row per node, the node's gdim dofs are consecutive)."""
    gdim = space.mesh.geometry.dim
    n = space.dofmap.index_map.size_local
    return space.tabulate_dof_coordinates()[:n, :gdim].copy()


def cell_dofs(space, include_ghosts=False):
    """(n_cells, dofs per cell) local dof (node) indices of each cell this process owns (with
    `include_ghosts`: of every cell it holds, owned first)."""
    dofs = _adjacency_array(space.dofmap.list)
    if include_ghosts:
        return dofs.copy()
    return dofs[:space.mesh.topology.index_map(space.mesh.topology.dim).size_local].copy()


def _adjacency_array(adjacency):
    """A fixed-width connectivity (AdjacencyList in 0.5, numpy array from 0.7) as a 2-D array."""
    if isinstance(adjacency, np.ndarray):
        return adjacency
    return adjacency.array.reshape(adjacency.num_nodes, -1)


def p1_simplex_geometry(space):
    """Cell data of a scalar P1 space on an affine simplex mesh (triangles, tetrahedra), for the
    exact element integrals that need no quadrature:
    (dofs (n_cells, d+1) local dof indices, volumes (n_cells,) |e|,
     gradients (n_cells, d+1, gdim) the constant gradients of the barycentric basis functions).
    Owned cells only. Vectorized over cells (no Python loop)."""
    dofs = cell_dofs(space)
    d = space.mesh.topology.dim
    if dofs.shape[1] != d + 1 or space.dofmap.index_map_bs != 1:
        raise NotImplementedError("p1_simplex_geometry needs a scalar P1 space on simplices")
    x = space.tabulate_dof_coordinates()[:, :space.mesh.geometry.dim][dofs]
    edges = x[:, 1:, :] - x[:, :1, :]  # (n, d, gdim): rows x_j - x_0
    if edges.shape[1] != edges.shape[2]:
        raise NotImplementedError("p1_simplex_geometry needs gdim == tdim")
    inverse = np.linalg.inv(edges)  # columns: gradients of lambda_1..lambda_d
    grads_rest = np.transpose(inverse, (0, 2, 1))
    gradients = np.concatenate([-grads_rest.sum(axis=1, keepdims=True), grads_rest], axis=1)
    volumes = np.abs(np.linalg.det(edges)) / float(np.prod(np.arange(1, d + 1)))
    return dofs, volumes, gradients

# --- boundary conditions ------------------------------------------------------------------------

def boundary_dofs(space, marker):
    """Local indices of the dofs on the boundary facets where `marker(x)` (x: (3, n) points) is
    True (topological: every dof of a marked facet, also interior dofs of higher-order facets)."""
    mesh = space.mesh
    fdim = mesh.topology.dim - 1
    mesh.topology.create_connectivity(fdim, mesh.topology.dim)
    facets = dolfinx.mesh.locate_entities_boundary(mesh, fdim, marker)
    return dolfinx.fem.locate_dofs_topological(space, fdim, facets)


def dirichlet_bc(space, marker, value=0.0):
    """The Dirichlet condition u = `value` (a number, or a Function on `space`) on the boundary
    facets where `marker(x)` is True."""
    dofs = boundary_dofs(space, marker)
    if isinstance(value, dolfinx.fem.Function):
        return dolfinx.fem.dirichletbc(value, dofs)
    if space.dofmap.index_map_bs > 1:
        value = np.full(space.dofmap.index_map_bs, value, dtype=PETSc.ScalarType)
        return dolfinx.fem.dirichletbc(value, dofs, space)
    return dolfinx.fem.dirichletbc(PETSc.ScalarType(value), dofs, space)


# --- forms, assembly, linear solves -------------------------------------------------------------

def form(ufl_form):
    """The compiled (JIT) form of a UFL form: compile once, assemble many times."""
    return dolfinx.fem.form(ufl_form)


def assemble_scalar(compiled, comm):
    """The value of a compiled functional, summed over the processes of `comm`."""
    return comm.allreduce(dolfinx.fem.assemble_scalar(compiled), op=MPI.SUM)


def assemble_matrix_coo(compiled, bcs=()):
    """The assembled bilinear form as COO arrays (rows, cols, values) in global dof numbering,
    for the rows this process owns (with `bcs`: identity rows/columns at their dofs)."""
    A = dolfinx.fem.petsc.assemble_matrix(compiled, bcs=list(bcs))
    A.assemble()
    rows, cols, values = _csr_to_coo(A)
    A.destroy()
    return rows, cols, values


def assemble_vector_array(compiled):
    """The assembled linear form as a numpy array of this process's owned entries
    (contributions from ghosts accumulated, no boundary conditions)."""
    b = dolfinx.fem.petsc.assemble_vector(compiled)
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    values = b.getArray().copy()
    b.destroy()
    return values


def _csr_to_coo(A):
    """COO triplets (global rows, global cols, values) of the owned rows of a PETSc AIJ matrix."""
    indptr, cols, values = A.getValuesCSR()
    start = A.getOwnershipRange()[0]
    rows = start + np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return rows.astype(np.int64), cols.astype(np.int64), values.copy()


def _create_vector(L):
    """A PETSc vector for linear form L (0.10 builds it from the function space)."""
    if DOLFINX_VERSION >= (0, 10):
        return dolfinx.fem.petsc.create_vector(L.function_spaces[0])
    return dolfinx.fem.petsc.create_vector(L)


def direct_options():
    """PETSc options for a sparse direct solve: LU (PETSc's own on one process, MUMPS in
    parallel). Best for 2-D problems up to ~10^5 dofs."""
    return {"ksp_type": "preonly", "pc_type": "lu"}


def iterative_options(symmetric=True, rtol=1e-10):
    """PETSc options for large problems: CG + BoomerAMG (hypre) when `symmetric` (an SPD
    operator), else GMRES + BoomerAMG."""
    return {"ksp_type": "cg" if symmetric else "gmres", "pc_type": "hypre",
            "pc_hypre_type": "boomeramg", "ksp_rtol": rtol, "ksp_atol": 1e-14,
            "ksp_max_it": 1000}


def default_options(n_dofs, symmetric=True):
    """Direct solve up to 2e5 dofs, AMG-preconditioned Krylov above."""
    return direct_options() if n_dofs <= 200_000 else iterative_options(symmetric)


class LinearSolver:
    """Solves a(u, v) = L(v) with Dirichlet `bcs`, built once and reused for many data.

    The forms are compiled once by the caller (`form`); `solve` re-assembles the matrix into the
    SAME PETSc matrix (same sparsity, no reallocation) and the vector into the same vector, then
    solves with one KSP whose preconditioner/factorization is recomputed only because the matrix
    values changed. Coefficients (Functions/Constants in the forms) are updated by the caller
    between solves. `petsc_options` (a dict) is set under a private options prefix, so solvers
    never interfere. Dirichlet rows are eliminated symmetrically (lifting), keeping an SPD
    operator SPD.
    """

    _count = 0

    def __init__(self, a, L, bcs=(), petsc_options=None, comm=None):
        self.a, self.L, self.bcs = a, L, list(bcs)
        space = a.function_spaces[0]
        comm = comm if comm is not None else space.mesh.comm
        self.A = dolfinx.fem.petsc.create_matrix(a)
        self.b = _create_vector(L)
        LinearSolver._count += 1
        prefix = f"pde_data_solver_{LinearSolver._count}_"
        options = dict(petsc_options or default_options(n_global_dofs(space)))
        if options.get("pc_type") == "lu" and "pc_factor_mat_solver_type" not in options:
            options["pc_factor_mat_solver_type"] = "mumps" if comm.size > 1 else "petsc"
        opts = PETSc.Options()
        for key, value in options.items():
            opts[prefix + key] = value
        self.ksp = PETSc.KSP().create(comm)
        self.ksp.setOptionsPrefix(prefix)
        self.ksp.setOperators(self.A)
        self.ksp.setFromOptions()
        for key in options:
            del opts[prefix + key]

    def assemble(self):
        """Re-assemble the matrix (Dirichlet rows/columns -> identity) into the existing one."""
        self.A.zeroEntries()
        dolfinx.fem.petsc.assemble_matrix(self.A, self.a, bcs=self.bcs)
        self.A.assemble()

    def solve(self, u, assemble_matrix=True):
        """Assemble (unless `assemble_matrix` is False: the matrix's coefficients did not change)
        and solve into Function `u`; raises SolverFailure when the KSP diverges or the solution is
        not finite. Returns the number of KSP iterations."""
        if assemble_matrix:
            self.assemble()
        with self.b.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(self.b, self.L)
        dolfinx.fem.petsc.apply_lifting(self.b, [self.a], bcs=[self.bcs])
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(self.b, self.bcs)
        x = petsc_vector(u)
        self.ksp.solve(self.b, x)
        reason = self.ksp.getConvergedReason()
        if reason < 0:
            raise SolverFailure(f"linear solver diverged (KSP reason {reason})")
        u.x.scatter_forward()
        if not np.all(np.isfinite(u.x.array)):
            raise SolverFailure("linear solver returned non-finite values")
        return self.ksp.getIterationNumber()

    def destroy(self):
        """Free the PETSc objects (optional; they are also freed by garbage collection)."""
        self.ksp.destroy()
        self.A.destroy()
        self.b.destroy()


# --- point evaluation ---------------------------------------------------------------------------

class PointEvaluator:
    """Evaluates functions on `space` at fixed `points` (n, gdim or 3), under MPI.

    Each point gets exactly one owning process: the lowest rank having an OWNED cell that
    contains it (ghost cells are not counted), so a point on a partition boundary (a shared
    facet or vertex) is evaluated once; `n_containing[i]` counts the ranks that could own it.
    `evaluate(u)` returns the values on every rank in point order, shape (n,) for a scalar
    space and (n, value size) otherwise; the non-owners contribute exact zeros to a sum, so the
    result is bit-identical to a serial evaluation.
    Raises ValueError naming the first point that no cell contains (outside the domain).
    """

    def __init__(self, space, points, comm=None):
        mesh = space.mesh
        self.space = space
        self.comm = comm if comm is not None else mesh.comm
        points = np.asarray(points, dtype=np.float64)
        self.n_points = points.shape[0]
        self.points = np.zeros((self.n_points, 3))
        self.points[:, :points.shape[1]] = points
        tdim = mesh.topology.dim
        n_owned_cells = mesh.topology.index_map(tdim).size_local
        if DOLFINX_VERSION >= (0, 7):
            tree = dolfinx.geometry.bb_tree(mesh, tdim)
            candidates = dolfinx.geometry.compute_collisions_points(tree, self.points)
        else:
            tree = dolfinx.geometry.BoundingBoxTree(mesh, tdim)
            candidates = dolfinx.geometry.compute_collisions(tree, self.points)
        colliding = dolfinx.geometry.compute_colliding_cells(mesh, candidates, self.points)
        cells = np.full(self.n_points, -1, dtype=np.int32)
        for i in range(self.n_points):  # loop over sensors only (few), never over cells or dofs
            links = colliding.links(i)
            links = links[links < n_owned_cells]
            if len(links):
                cells[i] = links[0]
        rank = self.comm.rank
        candidate_rank = np.where(cells >= 0, rank, self.comm.size).astype(np.int32)
        owner = np.empty_like(candidate_rank)
        self.comm.Allreduce(candidate_rank, owner, op=MPI.MIN)
        outside = np.flatnonzero(owner == self.comm.size)
        if len(outside):
            raise ValueError(f"point {outside[0]} at {self.points[outside[0], :points.shape[1]]} "
                             f"lies outside the mesh")
        found = (cells >= 0).astype(np.int32)
        self.n_containing = np.empty_like(found)  # ranks holding the point in an owned cell
        self.comm.Allreduce(found, self.n_containing, op=MPI.SUM)
        self.owner = owner
        self.local = np.flatnonzero(owner == rank)
        self.cells = cells[self.local]
        self.value_size = space.dofmap.index_map_bs  # Lagrange: block size = value size

    def evaluate(self, u):
        """Values of Function `u` at the points, identical on every rank, in point order."""
        values = np.zeros((self.n_points, self.value_size))
        if len(self.local):
            values[self.local] = u.eval(self.points[self.local], self.cells).reshape(
                len(self.local), self.value_size)
        total = np.empty_like(values)
        self.comm.Allreduce(values, total, op=MPI.SUM)
        return total[:, 0] if self.value_size == 1 else total

    def p1_matrix(self):
        """The observation matrix B (n_points, n_local_dofs) with (B u)_i = u(x_i) for a scalar
        P1 space on simplices, in this process's local dof numbering, rows of points owned
        here (zero rows elsewhere): the barycentric coordinates of each point in its cell.
        Returns COO (rows, cols, values)."""
        mesh = self.space.mesh
        tdim, gdim = mesh.topology.dim, mesh.geometry.dim
        dofs = cell_dofs(self.space, include_ghosts=True)[self.cells]  # (n_local_points, tdim+1)
        if dofs.shape[1] != tdim + 1 or self.value_size != 1:
            raise NotImplementedError("p1_matrix needs a scalar P1 space on a simplex mesh")
        x = self.space.tabulate_dof_coordinates()[:, :gdim][dofs]  # (n, tdim+1, gdim)
        edges = x[:, 1:, :] - x[:, :1, :]  # (n, tdim, gdim)
        rhs = self.points[self.local, :gdim] - x[:, 0, :]
        lam = np.linalg.solve(np.transpose(edges, (0, 2, 1)), rhs[:, :, None])[:, :, 0]
        bary = np.concatenate([1.0 - lam.sum(axis=1, keepdims=True), lam], axis=1)
        rows = np.repeat(self.local, tdim + 1)
        return rows, dofs.ravel().astype(np.int64), bary.ravel()


# --- output -------------------------------------------------------------------------------------

def write_xdmf(path, mesh, functions, time=0.0):
    """Write `mesh` and the Functions `functions` (each with a name; P1/vector-P1 as nodal fields)
    to the XDMF file `path` (+ its .h5) for ParaView. Collective on the mesh's communicator."""
    with dolfinx.io.XDMFFile(mesh.comm, str(path), "w") as xdmf:
        xdmf.write_mesh(mesh)
        for u in functions:
            xdmf.write_function(u, time)


# --- periodic constraints (dolfinx_mpc) ----------------------------------------------------------
# dolfinx_mpc follows dolfinx's versions (0.5.0 with dolfinx 0.5.2); its calls live here only.

def periodic_unit_square(space, bcs=(), tolerance=1e-10):
    """The multi-point constraint making `space` periodic on the unit torus: every dof on x = 1
    or y = 1 (a slave) takes the value of its image (x mod 1, y mod 1) (the master); the corner
    (1,1) maps to (0,0). Dofs of Dirichlet `bcs` are never slaves. Returns the finalized
    constraint; functions, forms and solves then live on `constrained_space(constraint)`."""
    import dolfinx_mpc

    def on_slave_side(x):
        return np.isclose(x[0], 1.0, atol=tolerance) | np.isclose(x[1], 1.0, atol=tolerance)

    def image(x):
        y = x.copy()
        for i in range(2):
            y[i] = np.where(np.isclose(x[i], 1.0, atol=tolerance), x[i] - 1.0, x[i])
        return y

    constraint = dolfinx_mpc.MultiPointConstraint(space)
    constraint.create_periodic_constraint_geometrical(space, on_slave_side, image, list(bcs))
    constraint.finalize()
    return constraint


def constrained_space(constraint):
    """The function space of a finalized constraint (the original space with the index map that
    the constrained assembly needs)."""
    return constraint.function_space


def slave_dofs(constraint):
    """Local indices of the constrained (slave) dofs."""
    return np.asarray(constraint.slaves, dtype=np.int32)


def assemble_constrained_matrix(compiled, constraint, bcs=()):
    """The bilinear form assembled on the constrained space, P^T A P on the master dofs, as a
    PETSc matrix of the full size with identity rows/columns at slave dofs and at `bcs`."""
    import dolfinx_mpc

    return dolfinx_mpc.assemble_matrix(compiled, constraint, bcs=list(bcs))


def assemble_constrained_vector(compiled, constraint, b=None):
    """The linear form assembled on the constrained space (P^T b: slave contributions added to
    their masters, zero at slaves), into the PETSc vector `b` when given (no reallocation)."""
    import dolfinx_mpc

    return dolfinx_mpc.assemble_vector(compiled, constraint, b)


def apply_constraint(constraint, vector):
    """Set the slave entries of the PETSc `vector` from its masters (after a constrained solve),
    whatever they held before: u_s = sum_m c_sm u_m. dolfinx_mpc's back-substitution adds the
    master combination to the slave entries, so they are zeroed first (what `homogenize` does,
    whose argument changed from a PETSc Vec in 0.5 to a Function in 0.9)."""
    with vector.localForm() as local:
        local.array_w[slave_dofs(constraint)] = 0.0
    constraint.backsubstitution(vector)


def factorized(A, comm):
    """A KSP that solves with the sparse direct factorization of the PETSc matrix `A`, computed
    once here; each `ksp.solve(b, x)` is then one forward and one back substitution."""
    ksp = PETSc.KSP().create(comm)
    ksp.setOperators(A)
    ksp.setType("preonly")
    pc = ksp.getPC()
    pc.setType("lu")
    pc.setFactorSolverType("mumps" if comm.size > 1 else "petsc")
    ksp.setUp()
    return ksp


def assemble_petsc_matrix(compiled):
    """The assembled bilinear form (square or rectangular: trial and test spaces may differ) as a
    PETSc matrix, for repeated products `M.mult(petsc_vector(u), petsc_vector(v))` mapping a
    function's owned coefficients to a functional's owned entries (ghost contributions summed)."""
    M = dolfinx.fem.petsc.assemble_matrix(compiled)
    M.assemble()
    return M


def unit_square_diagonal(comm, n, diagonal="right"):
    """The unit square split into n x n squares, each cut into 2 triangles along the named diagonal:
    "right" (from (0,0) to (1,1) in each square: legacy DOLFIN's UnitSquareMesh default) or "left"."""
    kind = {"right": dolfinx.mesh.DiagonalType.right, "left": dolfinx.mesh.DiagonalType.left}[diagonal]
    return dolfinx.mesh.create_unit_square(comm, n, n, cell_type=dolfinx.mesh.CellType.triangle, diagonal=kind)
