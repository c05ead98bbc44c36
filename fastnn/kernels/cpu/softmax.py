"""Softmax, log-softmax, hardmax and fused softmax cross-entropy, one row at a time.

Rows are independent, so threads take blocks of rows. Per row, each step a vectorized loop: the
max and a NaN/inf check, exp(z - max) with a vectorizable exp and its sum, then the output. The
order z - max - log(sum) keeps logits of 1e4 finite. Z: (m, C).
"""
import math

import numpy as np
from numba import prange

from fastnn import config
from fastnn.errors import NonFiniteError
from fastnn.kernels.cpu import _math
from fastnn.kernels.cpu._jit import jit, n_blocks

SOFTMAX, LOG_SOFTMAX, HARDMAX = range(3)


@jit
def _row_max(z):
    """(max of z, 1 if a value of z is NaN or inf else 0)."""
    best = z[0]
    for j in range(z.shape[0]):
        best = _math.maximum(best, z[j])
    return best, _math.nonfinite(z)


@jit
def _exp_shifted(z, shift, out):
    """out = exp(z - shift); returns sum(out) (z's dtype: the row has at most C terms <= 1)."""
    s = z.dtype.type(0)
    for j in range(z.shape[0]):
        e = _math.exp(z[j] - shift)
        out[j] = e
        s += e
    return s


@jit
def _softmax_rows(Z, out, mode, r0, r1):
    """Rows r0:r1 of softmax, log_softmax or hardmax (by ``mode``); returns how many rows hold
    NaN or inf."""
    bad = 0
    zero, one = Z.dtype.type(0), Z.dtype.type(1)
    for i in range(r0, r1):
        z, o = Z[i], out[i]
        mx, row_bad = _row_max(z)
        bad += row_bad
        if mode == HARDMAX:
            o[:] = zero
            o[np.argmax(z)] = one
            continue
        s = _exp_shifted(z, mx, o)
        if mode == SOFTMAX:
            inv = one / s
            for j in range(z.shape[0]):
                o[j] *= inv
        else:
            log_s = Z.dtype.type(math.log(s))
            for j in range(z.shape[0]):
                o[j] = (z[j] - mx) - log_s
            bad += _math.nonfinite(o)  # a value below the dtype's range (z - max overflowed)
    return bad


@jit(parallel=True)
def _softmax_parallel(Z, out, mode, blocks):
    m = Z.shape[0]
    bad = 0
    for t in prange(blocks):
        bad += _softmax_rows(Z, out, mode, t * m // blocks, (t + 1) * m // blocks)
    return bad


@jit
def _cross_entropy_rows(Z, labels, Y, dZ, use_rows, r0, r1):
    """Loss sum and gradient for rows r0:r1 (see ``softmax_cross_entropy``).

    With use_rows, targets are Y's rows: loss_i = sum_j Y_ij (lse_i - Z_ij),
    dZ_i = (p_i * sum_j Y_ij - Y_i) / m; otherwise class ``labels``: loss_i = lse_i - Z_i,label,
    dZ_i = (p_i - onehot_i) / m. lse_i = log sum_j exp(Z_ij). Returns (loss sum, how many rows
    hold NaN or inf).
    """
    m = Z.shape[0]
    inv_m = Z.dtype.type(1.0 / m)
    loss, bad = 0.0, 0
    for i in range(r0, r1):
        z, g = Z[i], dZ[i]
        mx, row_bad = _row_max(z)
        bad += row_bad
        s = _exp_shifted(z, mx, g)
        lse = np.float64(mx) + math.log(np.float64(s))  # float64: lse - z may exceed the dtype
        if use_rows:
            y = Y[i]
            ysum, yz = 0.0, 0.0
            for j in range(z.shape[0]):
                ysum += y[j]
                yz += y[j] * z[j]
            bad += _math.nonfinite(y)
            loss += ysum * lse - yz
            scale = Z.dtype.type(ysum / s) * inv_m
            for j in range(z.shape[0]):
                g[j] = g[j] * scale - y[j] * inv_m
        else:
            label = labels[i]
            loss += lse - np.float64(z[label])
            scale = Z.dtype.type(1.0 / s) * inv_m
            for j in range(z.shape[0]):
                g[j] *= scale
            g[label] -= inv_m
    return loss, bad


@jit(parallel=True)
def _cross_entropy_parallel(Z, labels, Y, dZ, use_rows, blocks):
    """The row blocks in parallel; the blocks' losses added in block order afterwards (a
    parallel reduction would add them in an order that depends on the threads running)."""
    m = Z.shape[0]
    parts = np.empty(blocks)
    bad = 0
    for t in prange(blocks):
        part, part_bad = _cross_entropy_rows(Z, labels, Y, dZ, use_rows,
                                             t * m // blocks, (t + 1) * m // blocks)
        parts[t] = part
        bad += part_bad
    loss = 0.0
    for t in range(blocks):
        loss += parts[t]
    return loss, bad


def _softmax_like(Z, mode, out):
    out = np.empty_like(Z) if out is None else out
    blocks = n_blocks(Z.shape[0], Z.size, config.SOFTMAX_PARALLEL_MIN_ELEMENTS)
    if blocks == 1:
        bad = _softmax_rows(Z, out, mode, 0, Z.shape[0])
    else:
        bad = _softmax_parallel(Z, out, mode, blocks)
    if bad:
        raise NonFiniteError
    return out


def softmax(Z, out=None):
    """Row-wise softmax; see ``fastnn.kernels.softmax``."""
    return _softmax_like(Z, SOFTMAX, out)


def log_softmax(Z, out=None):
    """Row-wise log-softmax; see ``fastnn.kernels.log_softmax``."""
    return _softmax_like(Z, LOG_SOFTMAX, out)


def hardmax(Z, out=None):
    """One-hot of the row argmax; see ``fastnn.kernels.hardmax``."""
    return _softmax_like(Z, HARDMAX, out)


@jit
def _count_correct(Z, y):
    correct = 0
    for i in range(Z.shape[0]):
        z, best = Z[i], 0
        for j in range(1, z.shape[0]):
            if z[j] > z[best]:
                best = j
        correct += best == y[i]
    return correct


def count_correct(Z, y):
    """How many rows of Z (finite logits, (m, C)) have their largest value at the label y (m,)
    (the first maximum on ties, as ``np.argmax``): one compiled pass instead of three NumPy
    calls."""
    return int(_count_correct(Z, y.astype(np.intp, copy=False)))


_NO_LABELS = np.zeros(0, np.intp)


def softmax_cross_entropy(Z, y, out=None):
    """Mean softmax cross-entropy and its gradient; see ``fastnn.kernels.softmax_cross_entropy``."""
    m = Z.shape[0]
    use_rows = y.ndim == 2
    labels = _NO_LABELS if use_rows else y.astype(np.intp, copy=False)
    Y = y if use_rows else Z[:0]
    dZ = np.empty_like(Z) if out is None else out
    blocks = n_blocks(m, Z.size, config.SOFTMAX_PARALLEL_MIN_ELEMENTS)
    if blocks == 1:
        loss, bad = _cross_entropy_rows(Z, labels, Y, dZ, use_rows, 0, m)
    else:
        loss, bad = _cross_entropy_parallel(Z, labels, Y, dZ, use_rows, blocks)
    if bad or not math.isfinite(loss):
        raise NonFiniteError
    return loss / m, dZ
