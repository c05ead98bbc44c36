"""Column sums of an (m, n) array by block reductions over rows: the engine of batch norm's
statistics and gradient sums, of the dense bias gradient and of the device-side totals (loss,
correct rows, sum of squares).

A block of ``CUDA_REDUCE_COLS`` x ``CUDA_REDUCE_ROW_THREADS`` threads takes
``CUDA_REDUCE_ROWS_PER_BLOCK`` rows of ``CUDA_REDUCE_COLS`` adjacent columns. Thread (tx, ty)
adds up rows ty, ty + ROW_THREADS, ... of its column in the input's dtype (adjacent threads read
adjacent columns: coalesced), then the block adds its ROW_THREADS partial sums in shared memory
(a float64 tree) and writes one float64 row of partial sums. ``column_sums`` sums those rows the
same way until one row is left: a deterministic order, no atomics.

What element (i, j) contributes is a ``term`` device function: one sum (SUM, SQUARES, GRAD_Z) or
two (MOMENTS, GRAD_SUMS), written side by side as a (1, 2n) row. Terms with an activation g take the
upstream gradient dA in D and A = g(Z) in E, and use dz = dA * g'(Z) (from A).
"""
import functools

import numpy as np
from numba import cuda, float64

from fastnn.kernels.base import LINEAR
from fastnn.kernels.cuda import _scratch
from fastnn.kernels.cuda._launch import setting
from fastnn.kernels.cuda._math import activation_grad, add_count, nonfinite

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


@functools.lru_cache(maxsize=None)
def _kernel(term, cols, row_threads):
    """The block reduction for one term and block shape (compile-time shared-memory sizes)."""
    fn, sums = _TERMS[term]

    @cuda.jit
    def kernel(X, D, c, E, act, P, rows_per_block, bad):
        sh1 = cuda.shared.array((row_threads, cols), float64)
        sh2 = cuda.shared.array((row_threads, cols), float64)
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
        add_count(bad, count)
        sh1[ty, tx] = s1
        sh2[ty, tx] = s2
        cuda.syncthreads()
        step = row_threads // 2
        while step > 0:
            if ty < step:
                sh1[ty, tx] += sh1[ty + step, tx]
                if sums == 2:
                    sh2[ty, tx] += sh2[ty + step, tx]
            cuda.syncthreads()
            step //= 2
        if ty == 0 and j < n:  # (into ``out`` of any dtype: what it stores is counted too)
            v1 = P.dtype.type(sh1[0, tx])
            P[cuda.blockIdx.y, j] = v1
            count = nonfinite(v1)
            if sums == 2:
                v2 = P.dtype.type(sh2[0, tx])
                P[cuda.blockIdx.y, n + j] = v2
                count += nonfinite(v2)
            add_count(bad, count)

    return kernel


def _launch(term, X, D, c, E, act, bad, out=None):
    """One pass: the (ceil(m / ROWS_PER_BLOCK), sums * n) float64 partial sums of ``term``,
    written into ``out`` when it is given and they are one row."""
    cols = setting("CUDA_REDUCE_COLS")
    row_threads = setting("CUDA_REDUCE_ROW_THREADS", power_of_two=True)
    rows_per_block = setting("CUDA_REDUCE_ROWS_PER_BLOCK", minimum=2)
    m, n = X.shape
    row_blocks = -(-m // rows_per_block)
    shape = (row_blocks, _TERMS[term][1] * n)
    P = out if out is not None and row_blocks == 1 else \
        _scratch.scratch("column sums", shape, np.float64)  # (passes differ in their rows)
    grid = (-(-n // cols), row_blocks)
    _kernel(term, cols, row_threads)[grid, (cols, row_threads)](X, D, c, E, act, P,
                                                                rows_per_block, bad)
    return P


def column_sums(term, X, bad, D=None, c=None, E=None, act=LINEAR, out=None):
    """Sums over the rows of X (m, n) of ``term`` (see the module doc), as a float64 device row:
    (1, n) for SUM, SQUARES and GRAD_Z, (1, 2n) for MOMENTS and GRAD_SUMS (first sums, then
    second sums). ``out``: a device array of that shape (any float dtype) the last pass writes
    the sums into (no copy afterwards), returned.

    D: (m, n) the upstream gradient (dA for GRAD_Z and GRAD_SUMS); c: (n,) the shift or the mean;
    E: (m, n) dZ written by GRAD_Z, or A read by GRAD_SUMS; act: the activation code.
    ``bad`` counts the NaN/inf met. The result is a scratch array of this thread: the kernel
    call that asked for it uses it (in a launch, or read back) before it returns.
    """
    D = X if D is None else D
    c = X[0] if c is None else c
    E = D if E is None else E
    P = _launch(term, X, D, c, E, act, bad, out)
    while P.shape[0] > 1:
        P = _launch(SUM, P, P, P[0], P, LINEAR, bad, out)
    return P
