"""Dense layer kernels: A = g(X @ W + b) and its backward pass, on Numba's thread pool.

Each thread runs single-threaded BLAS on its own block of the output (rows or columns, see
``output_block``), then applies the elementwise work to that block, row segment by row segment.
Kernels take whole C-ordered arrays and block bounds (not 2-D views, whose unknown strides would
stop the loops vectorizing). X: (m, n_in); W: (n_in, n_out); b: (n_out,); A, dA: (m, n_out).
"""
import numpy as np
from numba import prange
from numba.extending import register_jitable

from fastnn import config
from fastnn.errors import NonFiniteError
from fastnn.kernels.base import ACTIVATIONS, LINEAR
from fastnn.kernels.cpu import _math
from fastnn.kernels.cpu._activation import activate_in_place, grad_z_row
from fastnn.kernels.cpu._blas import gemm_sub, output_block, single_threaded_blas
from fastnn.kernels.cpu._jit import jit, n_blocks


@register_jitable
def _count_nonfinite_block(M, r0, r1, c0, c1):
    """How many rows of M[r0:r1, c0:c1] hold NaN or inf."""
    bad = 0
    for i in range(r0, r1):
        bad += _math.nonfinite(M[i][c0:c1])
    return bad


@register_jitable
def _bias_activation(Z, b, act, r0, r1, c0, c1):
    """Z <- g(Z + b) on the block Z[r0:r1, c0:c1] (no bias when b is empty); returns how many
    rows of Z + b hold NaN or inf."""
    has_bias = b.shape[0] > 0
    bias = b[c0:c1] if has_bias else b
    bad = 0
    for i in range(r0, r1):
        row = Z[i][c0:c1]
        if has_bias:
            for j in range(row.shape[0]):
                row[j] += bias[j]
        bad += _math.nonfinite(row)
        activate_in_place(row, act)
    return bad


@jit
def _forward_block(X, W, b, A, act, t, blocks):
    r0, r1, c0, c1 = output_block(A.shape[0], A.shape[1], t, blocks)
    gemm_sub(X, W, A, False, False, r0, r1, c0, c1)
    return _bias_activation(A, b, act, r0, r1, c0, c1)


@jit(parallel=True)
def _forward_parallel(X, W, b, A, act, blocks):
    """A = g(X @ W + b) on ``blocks`` threads, each an output block; returns how many rows of
    A hold NaN or inf."""
    bad = 0
    for t in prange(blocks):
        bad += _forward_block(X, W, b, A, act, t, blocks)
    return bad


@jit
def _grad_z_rows(dA, A, dZ, db_part, act, r0, r1):
    """dZ = dA * g'(Z) (g' from A) for rows r0:r1; db_part += column sums of those rows.
    Returns how many rows of A and dZ hold NaN or inf. For "linear", dZ is dA: callers pass
    the same array (nothing is written)."""
    n = dZ.shape[1]
    chunk_sums = np.empty(n, dZ.dtype)
    bad = 0
    for c in range(r0, r1, _math.CHUNK_ROWS):
        chunk_sums[:] = 0
        for i in range(c, min(c + _math.CHUNK_ROWS, r1)):
            dz = dZ[i]
            if act != LINEAR:
                grad_z_row(dA[i], A[i], dz, act)
            for j in range(n):
                chunk_sums[j] += dz[j]
            bad += _math.nonfinite(A[i]) + _math.nonfinite(dz)
        for j in range(n):
            db_part[j] += chunk_sums[j]
    return bad


@register_jitable
def _grad_inputs_block(X, W, dZ, dX, dW, t, blocks, input_grad):
    """Block t of dX = dZ @ W.T (if ``input_grad``) and of dW = X.T @ dZ; returns how many of
    their rows hold NaN or inf."""
    bad = 0
    if input_grad:
        r0, r1, c0, c1 = output_block(dX.shape[0], dX.shape[1], t, blocks)
        gemm_sub(dZ, W, dX, False, True, r0, r1, c0, c1)
        bad += _count_nonfinite_block(dX, r0, r1, c0, c1)
    r0, r1, c0, c1 = output_block(dW.shape[0], dW.shape[1], t, blocks)
    gemm_sub(X, dZ, dW, True, False, r0, r1, c0, c1)
    return bad + _count_nonfinite_block(dW, r0, r1, c0, c1)


@register_jitable
def _store_bias_grad(db_parts, db):
    """db = the column sums of dZ, summed over the blocks' float64 partial sums (nothing when db
    is empty); returns 1 if db holds NaN or inf, else 0."""
    for j in range(db.shape[0]):
        total = 0.0
        for t in range(db_parts.shape[0]):
            total += db_parts[t, j]
        db[j] = total
    return _math.nonfinite(db)


# A linear layer without db (bias_grad false) runs only its products (dZ is dA; A is not read).

@jit(parallel=True)
def _backward_threads(dA, X, W, A, dZ, dX, dW, db, act, input_grad, grad_z, blocks):
    """dZ (with db's partial sums, when ``grad_z``) by row blocks, then dX and dW by output
    blocks, on ``blocks`` threads, and db; returns how many rows of the results hold NaN or inf
    (0: all finite). One block for small layers: a serial twin cost ~3 s of first-call
    compilation for ~10 us a call."""
    m = X.shape[0]
    db_parts = np.zeros((blocks, dZ.shape[1]))
    bad = 0
    if grad_z:
        for t in prange(blocks):
            bad += _grad_z_rows(dA, A, dZ, db_parts[t], act, t * m // blocks,
                                (t + 1) * m // blocks)
    for t in prange(blocks):
        bad += _grad_inputs_block(X, W, dZ, dX, dW, t, blocks, input_grad)
    return bad + _store_bias_grad(db_parts, db)


def _blocks(X, W):
    m, n_in = X.shape
    return n_blocks(m, m * n_in * W.shape[1], config.DENSE_PARALLEL_MIN_FLOPS)


def dense_forward(X, W, b=None, activation="linear", out=None):
    """A = g(X @ W + b); see ``fastnn.kernels.dense_forward``."""
    act = ACTIVATIONS.index(activation)
    bias = W[0, :0] if b is None else b  # empty: no bias
    A = np.empty((X.shape[0], W.shape[1]), X.dtype) if out is None else out
    blocks = _blocks(X, W)
    with single_threaded_blas:  # (small layers: the block kernel on this thread, no pool)
        if blocks == 1:
            bad = _forward_block(X, W, bias, A, act, 0, 1)
        else:
            bad = _forward_parallel(X, W, bias, A, act, blocks)
    if bad:
        raise NonFiniteError
    return A


def dense_backward(dA, X, W, A, activation="linear", input_grad=True, out=None,
                   overwrite_dA=False, bias_grad=True):
    """(dX, dW, db) of the dense layer; see ``fastnn.kernels.dense_backward``. dZ is computed
    into dA's memory when ``overwrite_dA`` (or is dA itself for "linear"). ``overwrite_dA`` is a
    permission, as SciPy's ``overwrite_a``: a read-only dA is copied first (the kernels take dZ
    writable, and Numba would not compile them for a read-only one), and the copy is used."""
    act = ACTIVATIONS.index(activation)
    if not dA.flags.writeable:
        dA, overwrite_dA = dA.copy(), True  # (our own copy: free to overwrite)
    dZ = dA if overwrite_dA or activation == "linear" else np.empty_like(dA)
    out_dX, dW, out_db = (None, None, None) if out is None else out
    dW = np.empty_like(W) if dW is None else dW
    if not input_grad:
        dX = X[:0]
    else:
        dX = np.empty_like(X) if out_dX is None else out_dX
    if not bias_grad:
        db = W[0, :0]  # empty: not computed
    else:
        db = np.empty(W.shape[1], X.dtype) if out_db is None else out_db
    args = (dA, X, W, A, dZ, dX, dW, db, act, input_grad, act != LINEAR or bias_grad)
    blocks = _blocks(X, W)
    with single_threaded_blas:
        bad = _backward_threads(*args, blocks)
    if bad:
        raise NonFiniteError
    return (dX if input_grad else None), dW, (db if bias_grad else None)


@jit
def _activation_rows(Z, A, act, r0, r1):
    """A = g(Z) for rows r0:r1; returns how many rows of Z hold NaN or inf."""
    bad = 0
    for i in range(r0, r1):
        a = A[i]
        a[:] = Z[i]
        bad += _math.nonfinite(a)
        activate_in_place(a, act)
    return bad


@jit(parallel=True)
def _activation_parallel(Z, A, act, blocks):
    m = Z.shape[0]
    bad = 0
    for t in prange(blocks):
        bad += _activation_rows(Z, A, act, t * m // blocks, (t + 1) * m // blocks)
    return bad


@jit(parallel=True)
def _activation_backward_parallel(dA, A, dZ, db_parts, act, blocks):
    m = A.shape[0]
    bad = 0
    for t in prange(blocks):
        bad += _grad_z_rows(dA, A, dZ, db_parts[t], act, t * m // blocks, (t + 1) * m // blocks)
    return bad


def activation_forward(Z, activation, out=None):
    """A = g(Z) on its own; see ``fastnn.kernels.activation_forward``."""
    act = ACTIVATIONS.index(activation)
    A = np.empty_like(Z) if out is None else out
    blocks = n_blocks(Z.shape[0], Z.size, config.ACTIVATION_PARALLEL_MIN_ELEMENTS)
    if blocks == 1:
        bad = _activation_rows(Z, A, act, 0, Z.shape[0])
    else:
        bad = _activation_parallel(Z, A, act, blocks)
    if bad:
        raise NonFiniteError
    return A


def activation_backward(dA, A, activation, out=None):
    """dZ = dA * g'(Z) on its own; see ``fastnn.kernels.activation_backward``."""
    act = ACTIVATIONS.index(activation)
    dZ = np.empty_like(dA) if out is None else out
    if activation == "linear":  # dZ = dA: copy, then count NaN/inf in the copy
        dZ[...] = dA
        dA = dZ
    blocks = n_blocks(A.shape[0], A.size, config.ACTIVATION_PARALLEL_MIN_ELEMENTS)
    db_unused = np.zeros((blocks, A.shape[1]))
    if blocks == 1:
        bad = _grad_z_rows(dA, A, dZ, db_unused[0], act, 0, A.shape[0])
    else:
        bad = _activation_backward_parallel(dA, A, dZ, db_unused, act, blocks)
    if bad:
        raise NonFiniteError
    return dZ
