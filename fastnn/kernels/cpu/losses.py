"""Elementwise losses, fused: sigmoid (binary) cross-entropy from logits and mean squared error.

Both are means over all N values of Z (m,) or (m, k), so a kernel sees Z, its targets and dZ as
flat runs of values: one pass reads each value of Z and of its target once, writes the gradient
and adds the loss term to a float64 sum. Above ``config.LOSS_PARALLEL_MIN_ELEMENTS`` threads take
blocks of rows (each block a flat run, indexed from 0 so that the loop vectorizes); the block sums
are added in float64.

NaN/inf cost no pass of their own: sigmoid cross-entropy's loss term is NaN or inf whenever z or y
is (max(z, 0) - z y meets inf - inf or inf * 0), and so is a squared difference, whose gradient is
also counted (x * 0 summed: NaN once one is not finite) for an overflow of 2 (z - y) / N in the
dtype. A block's sum that is not finite raises NonFiniteError after the pass: dZ (``out``) has
then been written with values that mean nothing.
"""
import math

import numpy as np
from numba import prange

from fastnn import config
from fastnn.errors import NonFiniteError
from fastnn.kernels.cpu import _math
from fastnn.kernels.cpu._jit import jit, n_blocks

SIGMOID_CE, SQUARED_ERROR = range(2)


@jit
def _sigmoid_ce_run(z, y, g, scale):
    """g = (sigmoid(z) - y) * scale over flat runs; returns the float64 sum of the loss terms
    max(z, 0) - z y + log1p(exp(-|z|)). With e = exp(-|z|) <= 1 (never overflows), sigmoid(z) is
    1 / (1 + e) for z >= 0 and e / (1 + e) below."""
    zero, one = z.dtype.type(0), z.dtype.type(1)
    total = 0.0
    for i in range(z.shape[0]):
        zi, yi = z[i], y[i]
        e = _math.exp(-abs(zi))
        inv = one / (one + e)
        g[i] = ((inv if zi >= zero else e * inv) - yi) * scale
        total += (np.float64(max(zi, zero)) - np.float64(zi) * np.float64(yi)
                  + np.float64(_math.log1p_unit(e)))
    return total


@jit
def _squared_error_run(z, y, g, scale):
    """g = (z - y) * scale over flat runs; returns the float64 sum of (z - y)^2, or NaN when a
    gradient is NaN or inf."""
    zero = z.dtype.type(0)
    total, bad = 0.0, zero
    for i in range(z.shape[0]):
        d = z[i] - y[i]
        gi = d * scale
        g[i] = gi
        bad += gi * zero
        dd = np.float64(d)
        total += dd * dd
    return total if bad == zero else math.nan


@jit
def _loss_run(mode, z, y, g, scale):
    if mode == SIGMOID_CE:
        return _sigmoid_ce_run(z, y, g, scale)
    return _squared_error_run(z, y, g, scale)


@jit(parallel=True)
def _loss_parallel(mode, z, y, g, scale, row_len, blocks):
    """``_loss_run`` over ``blocks`` blocks of whole rows (``row_len`` values each) in
    parallel; the sum of their sums, added in block order (a parallel reduction would add them
    in an order that depends on the threads running)."""
    m = z.shape[0] // row_len
    sums = np.empty(blocks)
    for b in prange(blocks):
        i0 = b * m // blocks * row_len
        i1 = (b + 1) * m // blocks * row_len
        sums[b] = _loss_run(mode, z[i0:i1], y[i0:i1], g[i0:i1], scale)
    total = 0.0
    for b in range(blocks):
        total += sums[b]
    return total


def _loss(mode, Z, Y, out, factor):
    """(mean loss, dZ) with dZ = the term's derivative * factor / N; Z, Y, out: C-contiguous, of
    one shape."""
    dZ = np.empty_like(Z) if out is None else out
    n = Z.size
    m = Z.shape[0]
    scale = Z.dtype.type(factor / n)
    z, y, g = Z.reshape(-1), Y.reshape(-1), dZ.reshape(-1)
    blocks = n_blocks(m, n, config.LOSS_PARALLEL_MIN_ELEMENTS)
    if blocks == 1:
        total = _loss_run(mode, z, y, g, scale)
    else:
        total = _loss_parallel(mode, z, y, g, scale, n // m, blocks)
    if not math.isfinite(total):
        raise NonFiniteError
    return total / n, dZ


def sigmoid_cross_entropy(Z, y, out=None):
    """Mean binary cross-entropy of sigmoid(Z) against y, and its gradient; see
    ``fastnn.kernels.sigmoid_cross_entropy``."""
    return _loss(SIGMOID_CE, Z, y, out, 1.0)


def mean_squared_error(Z, Y, out=None):
    """Mean squared error and its gradient; see ``fastnn.kernels.mean_squared_error``."""
    return _loss(SQUARED_ERROR, Z, Y, out, 2.0)
