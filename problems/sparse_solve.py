"""A differentiable batched sparse linear solve u = A⁻¹ b (SciPy's SuperLU on the CPU).

A has a fixed sparsity pattern (``rows``, ``cols``, length nnz) and per-sample values (B, nnz);
b is shared (n,) or per sample (B, n). With J a scalar function of u and g = ∂J/∂u, the adjoint
(costate) λ solves Aᵀ λ = g, and

    ∂J/∂b = λ,    ∂J/∂A_ij = −λ_i u_j        (from du = A⁻¹(db − dA u)),

so the backward pass costs one transposed solve per sample with the LU factors kept from the
forward pass. Values are copied to float64 NumPy arrays on the CPU and results moved back to the
input's device and dtype.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

__all__ = ["sparse_solve"]


class _SparseSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, rhs, rows, cols, n):
        vals = values.detach().cpu().double().numpy()
        b = rhs.detach().cpu().double().numpy()
        b = np.broadcast_to(b, (vals.shape[0], n))
        factors, solutions = [], np.empty((vals.shape[0], n))
        for s in range(vals.shape[0]):
            lu = scipy.sparse.linalg.splu(scipy.sparse.csc_matrix((vals[s], (rows, cols)), shape=(n, n)))
            solutions[s] = lu.solve(np.ascontiguousarray(b[s]))
            factors.append(lu)
        u = torch.as_tensor(solutions, dtype=values.dtype, device=values.device)
        ctx.factors, ctx.rows, ctx.cols, ctx.rhs_shape = factors, rows, cols, rhs.shape
        ctx.save_for_backward(u)
        return u

    @staticmethod
    def backward(ctx, grad_u):
        (u,) = ctx.saved_tensors
        g = grad_u.detach().cpu().double().numpy()
        lam = np.stack([lu.solve(np.ascontiguousarray(g[s]), trans="T") for s, lu in enumerate(ctx.factors)])
        un = u.detach().cpu().double().numpy()
        grad_values = -lam[:, ctx.rows] * un[:, ctx.cols]
        grad_rhs = lam if len(ctx.rhs_shape) == 2 else lam.sum(0)
        as_t = lambda a: torch.as_tensor(a, dtype=u.dtype, device=u.device)  # noqa: E731
        return as_t(grad_values), as_t(grad_rhs), None, None, None


def sparse_solve(values: torch.Tensor, rhs: torch.Tensor, rows: np.ndarray, cols: np.ndarray, n: int) -> torch.Tensor:
    """u (B, n) with A_s u_s = b_s, A_s the n×n matrix with entries ``values[s]`` at (rows, cols)
    (duplicates are summed); differentiable in ``values`` and ``rhs`` by the adjoint solve."""
    return _SparseSolve.apply(values, rhs, np.asarray(rows), np.asarray(cols), int(n))
