"""Dense layer kernels: A = g(X @ W + b) and its backward pass, on Numba's thread pool.

Each thread runs single-threaded BLAS on its own block of rows (forward, dX) or of dW's columns or
rows, then applies the elementwise work to the block while it is still in cache. X: (m, n_in);
W: (n_in, n_out); b: (n_out,); A, dA: (m, n_out).
"""
import numpy as np
from numba import prange

from fastnn import config
from fastnn.kernels._names import ACTIVATIONS, LINEAR, RELU, SIGMOID, TANH
from fastnn.kernels.cpu import _math
from fastnn.kernels.cpu._blas import gemm, single_threaded_blas
from fastnn.kernels.cpu._jit import jit, n_blocks
from fastnn.kernels.reference import NonFiniteError


@jit
def _count_nonfinite_rows(M):
    """Number of NaN or inf values in a 2-D block."""
    bad = 0
    for i in range(M.shape[0]):
        bad += _math.count_nonfinite(M[i])
    return bad


@jit
def _bias_activation(Z, b, act):
    """Z <- g(Z + b) in place; returns how many values of Z + b are NaN or inf."""
    zero = Z.dtype.type(0)
    bad = 0
    for i in range(Z.shape[0]):
        row = Z[i]
        for j in range(row.shape[0]):
            row[j] += b[j]
        bad += _math.count_nonfinite(row)
        for j in range(row.shape[0]):
            v = row[j]
            if act == RELU:
                v = v if v > zero else zero
            elif act == TANH:
                v = _math.tanh(v)
            elif act == SIGMOID:
                v = _math.sigmoid(v)
            row[j] = v
    return bad


@jit
def _forward_rows(X, W, b, A, act, r0, r1):
    gemm(X[r0:r1], W, A[r0:r1], 1.0, 0.0, False, False)
    return _bias_activation(A[r0:r1], b, act)


@jit(parallel=True)
def _forward_parallel(X, W, b, A, act, blocks):
    m = X.shape[0]
    bad = 0
    for t in prange(blocks):
        bad += _forward_rows(X, W, b, A, act, t * m // blocks, (t + 1) * m // blocks)
    return bad


@jit
def _grad_z_rows(dA, A, dZ, db_part, act, r0, r1):
    """dZ = dA * g'(Z) (g' from A) for rows r0:r1; db_part += column sums of those rows.
    Returns how many values of A and dZ are NaN or inf."""
    zero, one = A.dtype.type(0), A.dtype.type(1)
    bad = 0
    for i in range(r0, r1):
        for j in range(dZ.shape[1]):
            a = A[i, j]
            if act == RELU:
                d = dA[i, j] if a > zero else zero * dA[i, j]
            elif act == TANH:
                d = dA[i, j] * (one - a * a)
            elif act == SIGMOID:
                d = dA[i, j] * (a * (one - a))
            else:
                d = dA[i, j]
            dZ[i, j] = d
            db_part[j] += d
        bad += _math.count_nonfinite(A[i]) + _math.count_nonfinite(dZ[i])
    return bad


@jit
def _grad_inputs_block(X, W, dZ, dX, dW, t, blocks):
    """Block t of dX = dZ @ W.T (rows) and of dW = X.T @ dZ (along dW's longer side)."""
    m, n_in = X.shape
    n_out = W.shape[1]
    r0, r1 = t * m // blocks, (t + 1) * m // blocks
    gemm(dZ[r0:r1], W, dX[r0:r1], 1.0, 0.0, False, True)
    bad = _count_nonfinite_rows(dX[r0:r1])
    if n_in >= n_out:
        c0, c1 = t * n_in // blocks, (t + 1) * n_in // blocks
        gemm(X[:, c0:c1], dZ, dW[c0:c1], 1.0, 0.0, True, False)
        bad += _count_nonfinite_rows(dW[c0:c1])
    else:
        c0, c1 = t * n_out // blocks, (t + 1) * n_out // blocks
        gemm(X, dZ[:, c0:c1], dW[:, c0:c1], 1.0, 0.0, True, False)
        bad += _count_nonfinite_rows(dW[:, c0:c1])
    return bad


@jit(parallel=True)
def _backward_parallel(dA, X, W, A, dZ, dX, dW, db_parts, act, blocks):
    m = X.shape[0]
    bad = 0
    for t in prange(blocks):
        bad += _grad_z_rows(dA, A, dZ, db_parts[t], act, t * m // blocks, (t + 1) * m // blocks)
    for t in prange(blocks):
        bad += _grad_inputs_block(X, W, dZ, dX, dW, t, blocks)
    return bad


@jit
def _backward_serial(dA, X, W, A, dZ, dX, dW, db_parts, act):
    bad = _grad_z_rows(dA, A, dZ, db_parts[0], act, 0, X.shape[0])
    return bad + _grad_inputs_block(X, W, dZ, dX, dW, 0, 1)


def _blocks(X, W):
    m, n_in = X.shape
    return n_blocks(m, m * n_in * W.shape[1], config.PARALLEL_MIN_FLOPS)


def dense_forward(X, W, b=None, activation="linear"):
    """A = g(X @ W + b); see ``fastnn.kernels.dense_forward``."""
    act = ACTIVATIONS.index(activation)
    bias = np.zeros(W.shape[1], X.dtype) if b is None else b
    A = np.empty((X.shape[0], W.shape[1]), X.dtype)
    blocks = _blocks(X, W)
    with single_threaded_blas:
        if blocks == 1:
            bad = _forward_rows(X, W, bias, A, act, 0, X.shape[0])
        else:
            bad = _forward_parallel(X, W, bias, A, act, blocks)
    if bad:
        raise NonFiniteError
    return A


def dense_backward(dA, X, W, A, activation="linear"):
    """(dX, dW, db) of the dense layer; see ``fastnn.kernels.dense_backward``."""
    act = ACTIVATIONS.index(activation)
    m, n_in = X.shape
    dZ = np.empty_like(dA)
    dX = np.empty_like(X)
    dW = np.empty_like(W)
    blocks = _blocks(X, W)
    db_parts = np.zeros((blocks, W.shape[1]), np.float64)
    with single_threaded_blas:
        if blocks == 1:
            bad = _backward_serial(dA, X, W, A, dZ, dX, dW, db_parts, act)
        else:
            bad = _backward_parallel(dA, X, W, A, dZ, dX, dW, db_parts, act, blocks)
    db = db_parts.sum(axis=0)
    if bad or not np.isfinite(db).all():
        raise NonFiniteError
    return dX, dW, db.astype(X.dtype)
