"""Column sums of an (m, n) array by block reductions over rows: the engine of batch norm's
statistics and gradient sums, of the dense bias gradient and of the device-side totals (loss,
correct rows, sum of squares).

A block of ``CUDA_REDUCE_COLS`` x ``CUDA_REDUCE_ROW_THREADS`` threads takes
``CUDA_REDUCE_ROWS_PER_BLOCK`` rows of ``CUDA_REDUCE_COLS`` adjacent columns. Thread (tx, ty)
adds up rows ty, ty + ROW_THREADS, ... of its column in the input's dtype (adjacent threads read
adjacent columns: coalesced), then the block adds its ROW_THREADS partial sums in shared memory
(a float64 tree) and writes one float64 row of partial sums; the last block of each column group
to finish adds those rows up the same way (``_math.last_block``) and writes the totals: one
launch, in a fixed order (the atomics only hand out tickets).

What element (i, j) contributes is a ``term`` device function: one sum (SUM, SQUARES, GRAD_Z) or
two (MOMENTS, GRAD_SUMS), written side by side as a (1, 2n) row. Terms with an activation g take the
upstream gradient dA in D and A = g(Z) in E, and use dz = dA * g'(Z) (from A).
"""
import functools

import numpy as np
from numba import cuda, float64, int32

from fastnn.kernels.base import LINEAR
from fastnn.kernels.cuda import _scratch
from fastnn.kernels.cuda._launch import setting
from fastnn.kernels.cuda._math import activation_grad, add_count, last_block, nonfinite

# --- terms: (X, D, c, E, act, i, j, zero, one) -> (t1, t2, NaN/inf count) ------------------------

@cuda.jit(device=True)
def _sum(X, D, c, E, act, i, j, zero, one):
    return X[i, j], zero, 0


@cuda.jit(device=True)
def _squares(X, D, c, E, act, i, j, zero, one):
    x = X[i, j]
    return x * x, zero, 0


@cuda.jit(device=True)
def _moments(X, D, c, E, act, i, j, zero, one):
    """x - shift and its square (shift c: a row of X, for an accurate one-pass variance)."""
    d = X[i, j] - c[j]
    return d, d * d, 0


@cuda.jit(device=True)
def _grad_sums(X, D, c, E, act, i, j, zero, one):
    """dy and dy * (x - mean) for c = mean, dy = dA * g'(A) with D = dA and E = A (dy = D for
    linear)."""
    dy = D[i, j] if act == LINEAR else activation_grad(D[i, j], E[i, j], act, zero, one)
    return dy, dy * (X[i, j] - c[j]), 0


@cuda.jit(device=True)
def _grad_z(X, D, c, E, act, i, j, zero, one):
    """dz = dA * g'(A) with X = A and D = dA, written to dZ = E on the way (nothing to write for
    linear, where E is D); counts NaN/inf in A and dz."""
    a = X[i, j]
    dz = activation_grad(D[i, j], a, act, zero, one)
    if act != LINEAR:
        E[i, j] = dz
    return dz, zero, nonfinite(a) + nonfinite(dz)


#: term -> (device function, sums per column)
SUM, SQUARES, MOMENTS, GRAD_SUMS, GRAD_Z = "sum", "squares", "moments", "grad_sums", "grad_z"
_TERMS = {SUM: (_sum, 1), SQUARES: (_squares, 1), MOMENTS: (_moments, 2),
          GRAD_SUMS: (_grad_sums, 2), GRAD_Z: (_grad_z, 1)}


@cuda.jit(device=True)
def _tree(sh1, sh2, tx, ty, row_threads, sums):
    """Add the row_threads partial sums of column tx in shared memory (sh2 too when sums == 2)
    into row 0, by a tree (a fixed order)."""
    cuda.syncthreads()
    step = row_threads // 2
    while step > 0:
        if ty < step:
            sh1[ty, tx] += sh1[ty + step, tx]
            if sums == 2:
                sh2[ty, tx] += sh2[ty + step, tx]
        cuda.syncthreads()
        step //= 2


@cuda.jit(device=True)
def _store(out, row, j, n, v1, v2, sums):
    """out[row, j] = v1 (and out[row, n + j] = v2), cast to out's dtype; the NaN/inf count of
    what is stored."""
    a = out.dtype.type(v1)
    out[row, j] = a
    count = nonfinite(a)
    if sums == 2:
        b = out.dtype.type(v2)
        out[row, n + j] = b
        count += nonfinite(b)
    return count


@functools.lru_cache(maxsize=None)
def _kernel(term, cols, row_threads):
    """The block reduction for one term and block shape (compile-time shared-memory sizes)."""
    fn, sums = _TERMS[term]

    @cuda.jit
    def kernel(X, D, c, E, act, P, out, tickets, rows_per_block, bad):
        sh1 = cuda.shared.array((row_threads, cols), float64)
        sh2 = cuda.shared.array((row_threads, cols), float64)
        flag = cuda.shared.array(1, int32)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        m, n = X.shape
        j = cuda.blockIdx.x * cols + tx
        r0 = cuda.blockIdx.y * rows_per_block
        zero, one = X.dtype.type(0), X.dtype.type(1)
        s1, s2, count = zero, zero, 0
        if j < n:
            for i in range(r0 + ty, min(r0 + rows_per_block, m), row_threads):
                t1, t2, t_bad = fn(X, D, c, E, act, i, j, zero, one)
                s1 += t1
                s2 += t2
                count += t_bad
        sh1[ty, tx] = s1
        sh2[ty, tx] = s2
        _tree(sh1, sh2, tx, ty, row_threads, sums)
        row_blocks = cuda.gridDim.y
        if row_blocks == 1:  # (the block's sums are the totals)
            if ty == 0 and j < n:
                count += _store(out, 0, j, n, sh1[0, tx], sh2[0, tx], sums)
        else:  # the partial sums of each block, then the last block adds them up
            if ty == 0 and j < n:
                _store(P, cuda.blockIdx.y, j, n, sh1[0, tx], sh2[0, tx], sums)
            if last_block(tickets, cuda.blockIdx.x, row_blocks, flag):
                t1, t2 = 0.0, 0.0
                if j < n:
                    for r in range(ty, row_blocks, row_threads):
                        t1 += P[r, j]
                        if sums == 2:
                            t2 += P[r, n + j]
                sh1[ty, tx] = t1
                sh2[ty, tx] = t2
                _tree(sh1, sh2, tx, ty, row_threads, sums)
                if ty == 0 and j < n:
                    count += _store(out, 0, j, n, sh1[0, tx], sh2[0, tx], sums)
        add_count(bad, count)

    return kernel


def column_sums(term, X, bad, D=None, c=None, E=None, act=LINEAR, out=None):
    """Sums over the rows of X (m, n) of ``term`` (see the module doc), as a float64 device row:
    (1, n) for SUM, SQUARES and GRAD_Z, (1, 2n) for MOMENTS and GRAD_SUMS (first sums, then
    second sums), in one launch. ``out``: a device array of that shape (any float dtype) the sums
    are written into (no copy afterwards), returned.

    D: (m, n) the upstream gradient (dA for GRAD_Z and GRAD_SUMS); c: (n,) the shift or the mean;
    E: (m, n) dZ written by GRAD_Z, or A read by GRAD_SUMS; act: the activation code.
    ``bad`` counts the NaN/inf met (what is stored too). Without ``out`` the result is a scratch
    array of this thread: the kernel call that asked for it uses it (in a launch, or read back)
    before it returns.
    """
    cols = setting("CUDA_REDUCE_COLS")
    row_threads = setting("CUDA_REDUCE_ROW_THREADS", power_of_two=True)
    rows_per_block = setting("CUDA_REDUCE_ROWS_PER_BLOCK", minimum=2)
    D = X if D is None else D
    c = X[0] if c is None else c
    E = D if E is None else E
    m, n = X.shape
    width = _TERMS[term][1] * n
    row_blocks, col_blocks = -(-m // rows_per_block), -(-n // cols)
    if out is None:
        out = _scratch.scratch("column sums", (1, width), np.float64)
    P = out if row_blocks == 1 else \
        _scratch.scratch("column partial sums", (row_blocks, width), np.float64)
    tickets = _scratch.zeros("column sums tickets", (col_blocks,), np.int32)
    _kernel(term, cols, row_threads)[(col_blocks, row_blocks), (cols, row_threads)](
        X, D, c, E, act, P, out, tickets, rows_per_block, bad)
    return out
