"""The finite-element toolkit: convergence of the solver path, point evaluation (also under MPI),
assembled operators."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse
import ufl
from mpi4py import MPI

from pde_data import fem
from pde_data.heat import dirichlet_marker
from tests.conftest import mpirun

_dirichlet_boundary = dirichlet_marker("top")  # u = 0 on x = 0, x = 1, y = 0

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _manufactured_errors(n):
    """(h, L2 error, H1-seminorm error) of the heat problem's discretization and solver path
    (P1 conductivity interpolant, heat's boundary: u = 0 on three sides, zero flux on y = 1)
    for u = sin(πx) y (2 − y), κ = exp(sin(2πx) cos(πy)/2) on an n × n mesh."""
    mesh = fem.unit_square(MPI.COMM_SELF, n)
    V = fem.scalar_space(mesh)
    x = ufl.SpatialCoordinate(mesh)
    u_exact = ufl.sin(ufl.pi * x[0]) * x[1] * (2 - x[1])  # ∂u/∂y = 0 at y = 1
    kappa_exact = ufl.exp(ufl.sin(2 * ufl.pi * x[0]) * ufl.cos(ufl.pi * x[1]) / 2)
    source = -ufl.div(kappa_exact * ufl.grad(u_exact))
    kappa = fem.function(V)
    kappa.interpolate(lambda p: np.exp(np.sin(2 * np.pi * p[0]) * np.cos(np.pi * p[1]) / 2))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = fem.form(kappa * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
    L = fem.form(source * v * ufl.dx)
    solver = fem.LinearSolver(a, L, [fem.dirichlet_bc(V, _dirichlet_boundary)])
    uh = fem.function(V)
    solver.solve(uh)
    dx = ufl.dx(metadata={"quadrature_degree": 6})
    e = uh - u_exact
    l2 = np.sqrt(fem.assemble_scalar(fem.form(e * e * dx), MPI.COMM_SELF))
    h1 = np.sqrt(fem.assemble_scalar(fem.form(ufl.inner(ufl.grad(e), ufl.grad(e)) * dx),
                                     MPI.COMM_SELF))
    return 1.0 / n, l2, h1


def test_manufactured_solution_converges_at_optimal_rates():
    h, l2, h1 = np.array([_manufactured_errors(n) for n in (8, 16, 32, 64)]).T
    l2_rate = np.polyfit(np.log(h), np.log(l2), 1)[0]
    h1_rate = np.polyfit(np.log(h), np.log(h1), 1)[0]
    print(f"L2 rate {l2_rate:.3f}, H1 rate {h1_rate:.3f}, errors {l2} {h1}")
    assert abs(l2_rate - 2.0) < 0.15
    assert abs(h1_rate - 1.0) < 0.15


def test_solver_reassembles_into_the_same_matrix():
    mesh = fem.unit_square(MPI.COMM_SELF, 6)
    V = fem.scalar_space(mesh)
    kappa = fem.function(V)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    bcs = [fem.dirichlet_bc(V, _dirichlet_boundary)]
    solver = fem.LinearSolver(fem.form(kappa * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx),
                              fem.form(1.0 * v * ufl.dx), bcs)
    matrix, uh = solver.A, fem.function(V)
    kappa.x.array[:] = 1.0
    solver.solve(uh)
    first = uh.x.array.copy()
    kappa.x.array[:] = 2.0  # doubling the conductivity halves the temperature
    solver.solve(uh)
    assert solver.A is matrix
    np.testing.assert_allclose(uh.x.array, first / 2, rtol=1e-12, atol=1e-15)


def test_iterative_and_direct_solvers_agree():
    mesh = fem.unit_square(MPI.COMM_SELF, 16)
    V = fem.scalar_space(mesh)
    kappa = fem.function(V)
    kappa.interpolate(lambda p: 1 + p[0] * p[1])
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = fem.form(kappa * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
    L = fem.form(20.0 * v * ufl.dx)
    bcs = [fem.dirichlet_bc(V, _dirichlet_boundary)]
    direct, iterative = fem.function(V), fem.function(V)
    fem.LinearSolver(a, L, bcs, fem.direct_options()).solve(direct)
    iterations = fem.LinearSolver(a, L, bcs, fem.iterative_options(rtol=1e-12)).solve(iterative)
    assert 1 < iterations < 50  # AMG-preconditioned CG, not a direct solve in disguise
    np.testing.assert_allclose(iterative.x.array, direct.x.array, rtol=0, atol=1e-9)


def test_point_evaluation_is_exact_for_p1_fields_and_matches_the_observation_matrix():
    mesh = fem.unit_square(MPI.COMM_SELF, 5)
    V = fem.scalar_space(mesh)
    uh = fem.function(V)
    uh.interpolate(lambda p: 1 + 2 * p[0] - 3 * p[1])
    points = np.random.default_rng(1).uniform(0, 1, (20, 2))
    points[0] = [0.2, 0.4]  # a mesh vertex
    evaluator = fem.PointEvaluator(V, points)
    values = evaluator.evaluate(uh)
    np.testing.assert_allclose(values, 1 + 2 * points[:, 0] - 3 * points[:, 1], atol=1e-13)
    rows, cols, weights = evaluator.p1_matrix()
    B = scipy.sparse.csr_matrix((weights, (rows, cols)), shape=(20, len(uh.x.array)))
    np.testing.assert_allclose(B @ uh.x.array, values, atol=1e-13)
    assert np.all(evaluator.n_containing == 1)


def test_vector_point_evaluation():
    mesh = fem.unit_square(MPI.COMM_SELF, 4)
    W = fem.vector_space(mesh)
    w = fem.function(W)
    w.interpolate(lambda p: np.vstack([p[0] + p[1], 2 * p[1]]))
    values = fem.PointEvaluator(W, [[0.3, 0.6], [0.9, 0.1]]).evaluate(w)
    np.testing.assert_allclose(values, [[0.9, 1.2], [1.0, 0.2]], atol=1e-13)


def test_point_outside_the_domain_is_refused():
    V = fem.scalar_space(fem.unit_square(MPI.COMM_SELF, 3))
    with pytest.raises(ValueError, match="point 1 .* outside"):
        fem.PointEvaluator(V, [[0.5, 0.5], [1.2, 0.5]])


def test_assembled_operators_have_their_exact_invariants():
    mesh = fem.unit_square(MPI.COMM_SELF, 7)
    V = fem.scalar_space(mesh)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    mass = _matrix(fem.assemble_matrix_coo(fem.form(u * v * ufl.dx)), V)
    stiffness = _matrix(fem.assemble_matrix_coo(
        fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)), V)
    n = fem.n_global_dofs(V)
    assert mass.sum() == pytest.approx(1.0, abs=1e-13)  # Σ_ij ∫ φ_i φ_j = |Ω|
    np.testing.assert_allclose(stiffness @ np.ones(n), 0.0, atol=1e-12)  # constants: no energy
    assert fem.assemble_vector_array(fem.form(3.0 * v * ufl.dx)).sum() == pytest.approx(3.0)
    dofs, volumes, gradients = fem.p1_simplex_geometry(V)
    assert volumes.sum() == pytest.approx(1.0, abs=1e-13)
    np.testing.assert_allclose(gradients.sum(axis=1), 0.0, atol=1e-10)  # Σ_i λ_i = 1


def _matrix(coo, space):
    """COO triplets (rows, cols, values) of a square matrix on `space` -> scipy CSR."""
    rows, cols, values = coo
    n = fem.n_global_dofs(space)
    return scipy.sparse.csr_matrix((values, (rows, cols)), shape=(n, n))


def test_xdmf_export(tmp_path):
    mesh = fem.unit_square(MPI.COMM_SELF, 3)
    uh = fem.function(fem.scalar_space(mesh), "u")
    fem.write_xdmf(tmp_path / "u.xdmf", mesh, [uh])
    assert (tmp_path / "u.xdmf").stat().st_size > 0 and (tmp_path / "u.h5").exists()


MPI_SCRIPT = textwrap.dedent("""
    import numpy as np
    import ufl
    from mpi4py import MPI
    from pde_data import fem
    comm = MPI.COMM_WORLD
    mesh = fem.unit_square(comm, 8)
    V = fem.scalar_space(mesh)
    uh = fem.function(V)
    uh.interpolate(lambda p: 1 + p[0] + 10 * p[1])
    grid = np.linspace(0, 1, 9)  # every mesh vertex, many on the partition boundary
    points = np.array([(a, b) for a in grid for b in grid] + [(0.55, 0.45)])
    evaluator = fem.PointEvaluator(V, points, comm)
    values = evaluator.evaluate(uh)
    n_owned = comm.allreduce(len(evaluator.local))
    shared = int(np.sum(evaluator.n_containing >= 2))
    error = np.abs(values - (1 + points[:, 0] + 10 * points[:, 1])).max()
    same = comm.allreduce(values.tobytes() == comm.bcast(values.tobytes()), op=MPI.LAND)
    # a distributed direct solve (MUMPS) agrees with a serial one at the points
    def poisson(mesh):
        V = fem.scalar_space(mesh)
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        bc = fem.dirichlet_bc(V, lambda x: np.isclose(x[0], 0.0) | np.isclose(x[1], 0.0))
        solver = fem.LinearSolver(fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx),
                                  fem.form(v * ufl.dx), [bc])
        uh = fem.function(V)
        solver.solve(uh)
        return fem.PointEvaluator(V, points, mesh.comm).evaluate(uh)
    solve_error = np.abs(poisson(mesh) - poisson(fem.unit_square(MPI.COMM_SELF, 8))).max()
    if comm.rank == 0:
        print(f"RESULT {comm.size} {n_owned} {len(points)} {shared} {error:.3e} {same} "
              f"{solve_error:.3e}")
""")


@pytest.mark.mpi
def test_points_on_a_partition_boundary_are_counted_once_under_mpi():
    result = subprocess.run(mpirun(2) + [sys.executable, "-c", MPI_SCRIPT], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    line = [s for s in result.stdout.splitlines() if s.startswith("RESULT")]
    assert result.returncode == 0 and line, result.stderr[-2000:]
    size, n_owned, n_points, shared, error, same, solve_error = line[0].split()[1:]
    assert int(size) == 2
    assert int(n_owned) == int(n_points)  # each point evaluated by exactly one rank
    assert int(shared) > 0  # some points lie in owned cells of both ranks
    assert float(error) < 1e-12  # no point counted twice (its value would double) or missed
    assert same == "True"  # every rank holds the same values
    assert float(solve_error) < 1e-12  # parallel (MUMPS) and serial LU give the same field
