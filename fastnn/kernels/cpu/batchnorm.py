"""Batch normalization kernels on (m, n) C-ordered data, streamed over rows.

Each thread takes a block of rows and keeps its own column accumulators (no strided access: the
inner loop runs along the contiguous feature axis); the blocks' sums are then added in float64.
Forward reads X twice (statistics; Y = (X - mean) * alpha + beta with alpha = gamma * invstd),
backward reads X and dY twice (sums of dY and dY * (X - mean); then dX). A fused activation
(A = g(Y), for BatchNorm followed by ReLU and the like) is applied to each row of Y as it is
written, and its derivative to each element of dA as it is read (dY = dA * g'(A)).
"""
import numpy as np
from numba import prange
from numba.extending import register_jitable

from fastnn import config
from fastnn.errors import NonFiniteError
from fastnn.kernels.base import ACTIVATIONS, BatchNormCache
from fastnn.kernels.cpu import _math
from fastnn.kernels.cpu._activation import activate_in_place, grad_z_at
from fastnn.kernels.cpu._jit import jit, n_blocks


@register_jitable
def _stats_rows(X, shift, s1, s2, r0, r1):
    """s1 += sum(X - shift), s2 += sum((X - shift)^2) over rows r0:r1. shift, a row of X, keeps
    the one-pass variance accurate when the mean is large. Sums run in X's dtype over chunks of
    ``_math.CHUNK_ROWS`` rows, each folded into the float64 s1, s2."""
    n = X.shape[1]
    p1, p2 = np.empty(n, X.dtype), np.empty(n, X.dtype)
    for c in range(r0, r1, _math.CHUNK_ROWS):
        p1[:] = 0
        p2[:] = 0
        for i in range(c, min(c + _math.CHUNK_ROWS, r1)):
            x = X[i]
            for j in range(n):
                d = x[j] - shift[j]
                p1[j] += d
                p2[j] += d * d
        for j in range(n):
            s1[j] += p1[j]
            s2[j] += p2[j]


@register_jitable
def _normalize_rows(X, mean, alpha, beta, Y, act, r0, r1):
    """Y = g((X - mean) * alpha + beta) for rows r0:r1; returns how many rows hold NaN or
    inf before g."""
    bad = 0
    for i in range(r0, r1):
        x, y = X[i], Y[i]
        for j in range(x.shape[0]):
            y[j] = (x[j] - mean[j]) * alpha[j] + beta[j]
        bad += _math.nonfinite(y)
        activate_in_place(y, act)
    return bad


@register_jitable
def _grad_sums_rows(dA, A, act, X, mean, sdy, sdyx, r0, r1):
    """sdy += sum(dY), sdyx += sum(dY * (X - mean)) over rows r0:r1, in chunks (as
    ``_stats_rows``); dY = dA * g'(A)."""
    n = X.shape[1]
    p1, p2 = np.empty(n, X.dtype), np.empty(n, X.dtype)
    for c in range(r0, r1, _math.CHUNK_ROWS):
        p1[:] = 0
        p2[:] = 0
        for i in range(c, min(c + _math.CHUNK_ROWS, r1)):
            x, da, a = X[i], dA[i], A[i]
            for j in range(n):
                dy = grad_z_at(da, a, j, act)
                p1[j] += dy
                p2[j] += dy * (x[j] - mean[j])
        for j in range(n):
            sdy[j] += p1[j]
            sdyx[j] += p2[j]


@register_jitable
def _grad_x_rows(dA, A, act, X, mean, a, c, d, dX, r0, r1):
    """dX = a * dY + c * (X - mean) + d for rows r0:r1 (dY = dA * g'(A)); returns how many rows
    hold NaN or inf."""
    bad = 0
    for i in range(r0, r1):
        x, da, act_row, dx = X[i], dA[i], A[i], dX[i]
        for j in range(x.shape[0]):
            dx[j] = a[j] * grad_z_at(da, act_row, j, act) + c[j] * (x[j] - mean[j]) + d[j]
        bad += _math.nonfinite(dx)
    return bad


@register_jitable
def _block_sums(acc1, acc2, j):
    """Column j of both accumulators summed over the blocks, and whether both sums are finite."""
    s1, s2 = 0.0, 0.0
    for b in range(acc1.shape[0]):
        s1 += acc1[b, j]
        s2 += acc2[b, j]
    return s1, s2, _math.isfinite(s1) and _math.isfinite(s2)


@jit
def _forward_coefficients(acc1, acc2, shift, m, training, running_mean, running_var, gamma, eps,
                          mean, var, mean_x, invstd_x, alpha):
    """Per column, in float64: training mean = shift + s1 / m, var = max(s2 / m - (s1 / m)^2, 0)
    from the blocks' sums s1, s2 of X - shift and (X - shift)^2; inference the running ones.
    Then invstd = 1 / sqrt(var + eps), and mean, invstd, alpha = gamma * invstd in the data's
    dtype (mean_x, invstd_x, alpha). Returns False when a sum is NaN or inf. (The small (n,)
    vectors in one compiled loop instead of a dozen NumPy calls: 30 us less per call.)"""
    for j in range(mean.shape[0]):
        if training:
            s1, s2, finite = _block_sums(acc1, acc2, j)
            if not finite:
                return False
            shifted_mean = s1 / m
            mean[j] = shift[j] + shifted_mean
            var[j] = max(s2 / m - shifted_mean * shifted_mean, 0.0)
        else:
            mean[j], var[j] = running_mean[j], running_var[j]
        invstd = 1.0 / np.sqrt(var[j] + eps)
        mean_x[j], invstd_x[j], alpha[j] = mean[j], invstd, gamma[j] * invstd
    return True


@jit
def _update_running(running_mean, running_var, mean, var, decay, m):
    """r = decay * r + (1 - decay) * batch value; the variance made unbiased (m / (m - 1))."""
    for j in range(mean.shape[0]):
        running_mean[j] = decay * running_mean[j] + (1.0 - decay) * mean[j]
        running_var[j] = decay * running_var[j] + (1.0 - decay) * var[j] * (m / (m - 1.0))


# Each pass has a compiled serial driver (small arrays, on the calling thread: one call instead of
# several, ~10 us less) and a threaded version over row blocks that Python runs step by step: a
# compiled driver calling the threaded kernels cost seconds more compilation (LLVM re-optimizes
# every callee inside it), and a problem compiles only the threaded kernels it uses.

@register_jitable
def _forward_start(X, blocks):
    """The shift (X's first row) and the zeroed (blocks, n) sums of a forward pass."""
    n = X.shape[1]
    return X[0].copy(), np.zeros((blocks, n)), np.zeros((blocks, n))


@register_jitable
def _forward_middle(X, acc1, acc2, shift, training, running_mean, running_var, gamma, eps,
                    mean_x, invstd_x):
    """(mean, var, alpha, finite) from the sums: ``_forward_coefficients``."""
    n = X.shape[1]
    mean, var, alpha = np.empty(n), np.empty(n), np.empty(n, X.dtype)
    finite = _forward_coefficients(acc1, acc2, shift, float(X.shape[0]), training, running_mean,
                                   running_var, gamma, eps, mean, var, mean_x, invstd_x, alpha)
    return mean, var, alpha, finite


@jit
def _forward_serial(X, gamma, beta, running_mean, running_var, training, decay, eps, act, Y,
                    mean_x, invstd_x):
    """The whole forward pass: the statistics (training), the coefficients, Y, and then, only
    when all of it is finite, the running averages (training). Returns 0 when done, else a
    positive count of NaN/inf finds."""
    m = X.shape[0]
    shift, acc1, acc2 = _forward_start(X, 1)
    if training:
        _stats_rows(X, shift, acc1[0], acc2[0], 0, m)
    mean, var, alpha, finite = _forward_middle(X, acc1, acc2, shift, training, running_mean,
                                               running_var, gamma, eps, mean_x, invstd_x)
    if not finite:
        return 1
    bad = _normalize_rows(X, mean_x, alpha, beta, Y, act, 0, m)
    if bad == 0 and training:
        _update_running(running_mean, running_var, mean, var, decay, float(m))
    return bad


@jit(parallel=True)
def _stats_parallel(X, shift, s1, s2):
    m, blocks = X.shape[0], s1.shape[0]
    for t in prange(blocks):
        _stats_rows(X, shift, s1[t], s2[t], t * m // blocks, (t + 1) * m // blocks)


@jit(parallel=True)
def _normalize_parallel(X, mean, alpha, beta, Y, act, blocks):
    m = X.shape[0]
    bad = 0
    for t in prange(blocks):
        bad += _normalize_rows(X, mean, alpha, beta, Y, act, t * m // blocks,
                               (t + 1) * m // blocks)
    return bad


def _forward_threads(X, gamma, beta, running_mean, running_var, training, decay, eps, act, Y,
                     mean_x, invstd_x, blocks):
    """``_forward_serial``'s steps on ``blocks`` row blocks, one per thread, called from Python
    so that only the threaded kernels a run needs are compiled (inference: no statistics)."""
    m = X.shape[0]
    shift, acc1, acc2 = _forward_start(X, blocks)
    if training:
        _stats_parallel(X, shift, acc1, acc2)
    mean, var, alpha, finite = _forward_middle(X, acc1, acc2, shift, training, running_mean,
                                               running_var, gamma, eps, mean_x, invstd_x)
    if not finite:
        return 1
    bad = _normalize_parallel(X, mean_x, alpha, beta, Y, act, blocks)
    if bad == 0 and training:
        _update_running(running_mean, running_var, mean, var, decay, float(m))
    return bad


def batchnorm_forward(X, gamma, beta, running_mean, running_var, training=True, decay=0.9,
                      eps=1e-5, activation="linear", out=None):
    """Batch normalization forward; see ``fastnn.kernels.batchnorm_forward``."""
    if training and X.shape[0] < 2:  # (the public API checks first; models call this directly)
        raise ValueError("batchnorm_forward: training needs a batch of at least 2 rows to "
                         f"estimate a variance, got X of shape {tuple(X.shape)}")
    m, n = X.shape
    out, mean_x, invstd_x = out if isinstance(out, tuple) else (out, None, None)
    Y = np.empty_like(X) if out is None else out
    mean_x = np.empty(n, X.dtype) if mean_x is None else mean_x
    invstd_x = np.empty(n, X.dtype) if invstd_x is None else invstd_x
    args = (X, gamma, beta, running_mean, running_var, bool(training), float(decay), float(eps),
            ACTIVATIONS.index(activation), Y, mean_x, invstd_x)
    blocks = n_blocks(m, X.size, config.BATCHNORM_PARALLEL_MIN_ELEMENTS)
    if _forward_serial(*args) if blocks == 1 else _forward_threads(*args, blocks):
        raise NonFiniteError
    return Y, BatchNormCache(X, gamma, mean_x, invstd_x, training, activation,
                             None if activation == "linear" else Y)


@jit
def _backward_coefficients(acc1, acc2, invstd, gamma, m, training, dgamma, dbeta, a, c, d):
    """Per column, in float64 from the blocks' sums of dY and dY * (X - mean): dbeta = sum(dY),
    dgamma = sum(dY * (X - mean)) * invstd, and the coefficients of dX = a * dY + c * (X - mean)
    + d: a = gamma * invstd; training c = -a * invstd * dgamma / m, d = -a * dbeta / m;
    inference c = d = 0. Returns False when a sum is NaN or inf."""
    for j in range(dgamma.shape[0]):
        sdy, sdyx, finite = _block_sums(acc1, acc2, j)
        if not finite:
            return False
        inv = float(invstd[j])
        grad_gamma = sdyx * inv
        dgamma[j], dbeta[j] = grad_gamma, sdy
        a[j] = gamma[j] * inv
        if training:  # dX = a * (dY - dbeta / m - xhat * dgamma / m), xhat = (X - mean) * invstd
            c[j] = -(gamma[j] * inv) * inv * grad_gamma / m
            d[j] = -(gamma[j] * inv) * sdy / m
        else:
            c[j], d[j] = 0.0, 0.0
    return True


@register_jitable
def _backward_middle(acc1, acc2, X, invstd, gamma, training, dgamma, dbeta):
    """(a, c, d, finite) from the sums: ``_backward_coefficients``."""
    n = X.shape[1]
    a, c, d = np.empty(n, X.dtype), np.empty(n, X.dtype), np.empty(n, X.dtype)
    finite = _backward_coefficients(acc1, acc2, invstd, gamma, float(X.shape[0]), training,
                                    dgamma, dbeta, a, c, d)
    return a, c, d, finite


@jit
def _backward_serial(dY, A, act, X, mean, invstd, gamma, training, dX, dgamma, dbeta):
    """The whole backward pass: the column sums, dgamma, dbeta and the coefficients, then dX.
    Returns 0, or a positive count of NaN/inf finds."""
    m, n = X.shape
    acc1, acc2 = np.zeros((1, n)), np.zeros((1, n))
    _grad_sums_rows(dY, A, act, X, mean, acc1[0], acc2[0], 0, m)
    a, c, d, finite = _backward_middle(acc1, acc2, X, invstd, gamma, training, dgamma, dbeta)
    if not finite:
        return 1
    return _grad_x_rows(dY, A, act, X, mean, a, c, d, dX, 0, m)


@jit(parallel=True)
def _grad_sums_parallel(dA, A, act, X, mean, sdy, sdyx):
    m, blocks = X.shape[0], sdy.shape[0]
    for t in prange(blocks):
        _grad_sums_rows(dA, A, act, X, mean, sdy[t], sdyx[t], t * m // blocks,
                        (t + 1) * m // blocks)


@jit(parallel=True)
def _grad_x_parallel(dA, A, act, X, mean, a, c, d, dX, blocks):
    m = X.shape[0]
    bad = 0
    for t in prange(blocks):
        bad += _grad_x_rows(dA, A, act, X, mean, a, c, d, dX, t * m // blocks,
                            (t + 1) * m // blocks)
    return bad


def _backward_threads(dY, A, act, X, mean, invstd, gamma, training, dX, dgamma, dbeta, blocks):
    """``_backward_serial``'s steps on ``blocks`` row blocks, one per thread (from Python, as
    ``_forward_threads``)."""
    n = X.shape[1]
    acc1, acc2 = np.zeros((blocks, n)), np.zeros((blocks, n))
    _grad_sums_parallel(dY, A, act, X, mean, acc1, acc2)
    a, c, d, finite = _backward_middle(acc1, acc2, X, invstd, gamma, training, dgamma, dbeta)
    if not finite:
        return 1
    return _grad_x_parallel(dY, A, act, X, mean, a, c, d, dX, blocks)


def batchnorm_backward(dY, cache, out=None):
    """Batch normalization backward; see ``fastnn.kernels.batchnorm_backward``."""
    X, gamma, mean, invstd, training, activation, A = cache
    A = dY if A is None else A  # (not read when linear)
    n = X.shape[1]
    dX, dgamma, dbeta = (None, None, None) if out is None else out
    dX = np.empty_like(X) if dX is None else dX
    dgamma = np.empty(n, X.dtype) if dgamma is None else dgamma
    dbeta = np.empty(n, X.dtype) if dbeta is None else dbeta
    args = (dY, A, ACTIVATIONS.index(activation), X, mean, invstd, gamma, bool(training), dX,
            dgamma, dbeta)
    blocks = n_blocks(X.shape[0], X.size, config.BATCHNORM_PARALLEL_MIN_ELEMENTS)
    if _backward_serial(*args) if blocks == 1 else _backward_threads(*args, blocks):
        raise NonFiniteError
    return dX, dgamma, dbeta
