"""Batch normalization on the GPU, on (m, n) C-ordered data, with an optional fused activation.

Column sums run as block reductions over rows (``_colsum``): in training the forward pass sums
x - shift and (x - shift)^2 (shift: the first row, for an accurate one-pass variance), the
backward pass sums dy and dy * (x - mean). One elementwise pass then applies them, by threads that
each keep one column over many rows and work out its coefficients from the sums once (no launch
between, no per-element float64 work): A = g(alpha * (X - mean) + beta) with alpha = gamma * invstd;
dX = a * dY + c * (X - mean) + d. With a fused activation g the backward pass reads the gradient
of A and uses dY = dA * g'(A) wherever it reads dY. Running statistics are updated on the device:
by the forward pass itself inside ``kernel_scope`` (a failed training step puts them back), else
after it, only when no NaN/inf was met. Two launches per pass in training.
"""
import math

import numpy as np
from numba import cuda, float64

from fastnn.kernels.base import ACTIVATIONS, LINEAR, BatchNormCache
from fastnn.kernels.cuda import _scratch
from fastnn.kernels.cuda._colsum import GRAD_SUMS, MOMENTS, column_sums
from fastnn.kernels.cuda._launch import column_grid, column_thread, stride_grid
from fastnn.kernels.cuda._math import activate, activation_grad, add_count, nonfinite
from fastnn.kernels.cuda._transfer import DeviceCall, split_out


@cuda.jit(device=True)
def _statistics(training, sums, shift, running_mean, running_var, j, n, m):
    """(mean, biased var) of column j in float64: in training from sums = [sum(x - shift),
    sum((x - shift)^2)] over m rows (a one-pass variance, shifted for accuracy), else the running
    statistics."""
    if not training:
        return float64(running_mean[j]), float64(running_var[j])
    mean_shifted = sums[0, j] / m
    return (float64(shift[j]) + mean_shifted,
            max(sums[0, n + j] / m - mean_shifted * mean_shifted, 0.0))


@cuda.jit(device=True)
def _update_running(running_mean, running_var, j, mean, var, decay, unbias):
    """running = decay * running + (1 - decay) * batch value (var * unbias, unbias = m / (m-1))."""
    running_mean[j] = decay * running_mean[j] + (1.0 - decay) * mean
    running_var[j] = decay * running_var[j] + (1.0 - decay) * var * unbias


@cuda.jit
def _normalize(training, X, sums, running_mean, running_var, gamma, beta, eps, act, update, decay,
               unbias, A, mean, invstd, mean64, var64, bad):
    """A = g(alpha * (X - mean) + beta) with alpha = gamma * invstd, invstd = 1 / sqrt(var + eps),
    by threads that each keep one column (``column_grid``) and work out its coefficients once
    from the sums (or the running statistics; ``_statistics``); counts NaN/inf before g and in
    the sums. The thread that has row 0 also writes the column's mean and invstd (X's dtype) and
    either updates the running statistics (``update``: the caller undoes a failed step) or keeps
    mean, var in float64 for ``_running_update``."""
    m, n = X.shape
    j, first, step = column_thread()
    if j >= n:
        return
    zero, one = X.dtype.type(0), X.dtype.type(1)
    mu, var = _statistics(training, sums, X[0], running_mean, running_var, j, n, float64(m))
    inv = 1.0 / math.sqrt(var + eps)
    mean_j, alpha_j, beta_j = X.dtype.type(mu), X.dtype.type(gamma[j] * inv), beta[j]
    count = 0
    for i in range(first, m, step):
        y = alpha_j * (X[i, j] - mean_j) + beta_j
        count += nonfinite(y)
        A[i, j] = activate(y, act, zero, one)
    if first == 0:
        mean[j], invstd[j] = mean_j, inv
        if training:
            count += nonfinite(sums[0, j]) + nonfinite(sums[0, n + j])
            if update:
                _update_running(running_mean, running_var, j, mu, var, decay, unbias)
            else:
                mean64[j], var64[j] = mu, var
    add_count(bad, count)


@cuda.jit
def _running_update(mean64, var64, running_mean, running_var, decay, unbias, bad):
    """``_update_running`` of every column, only when bad[0] is 0 (no NaN/inf met)."""
    if bad[0] != 0:
        return
    for j in range(cuda.grid(1), running_mean.shape[0], cuda.gridsize(1)):
        _update_running(running_mean, running_var, j, mean64[j], var64[j], decay, unbias)


@cuda.jit
def _grad_x(training, sums, gamma, invstd, dA, A, act, X, mean, dX, dgamma, dbeta, bad):
    """dX = a * dY + c * (X - mean) + d, dY = dA * g'(A) (dA for linear), by threads that each
    keep one column (``column_grid``) and work out its coefficients once from
    sums = [sum(dy), sum(dy * (x - mean))]: a = gamma * invstd and, in training,
    c = -a * invstd * dgamma / m, d = -a * dbeta / m (at inference c = d = 0). The thread that
    has row 0 writes dbeta = sum(dy) and dgamma = invstd * sum(dy * (x - mean)). Counts NaN/inf in
    dX and in the sums."""
    m, n = X.shape
    j, first, step = column_thread()
    if j >= n:
        return
    zero, one = X.dtype.type(0), X.dtype.type(1)
    sum_dy, sum_dyx = sums[0, j], sums[0, n + j]
    inv = float64(invstd[j])
    g = sum_dyx * inv
    aj = float64(gamma[j]) * inv
    a = X.dtype.type(aj)
    c = X.dtype.type(-aj * inv * g / m) if training else zero
    d = X.dtype.type(-aj * sum_dy / m) if training else zero
    mean_j = mean[j]
    count = 0
    for i in range(first, m, step):
        dy = dA[i, j] if act == LINEAR else activation_grad(dA[i, j], A[i, j], act, zero, one)
        v = a * dy + c * (X[i, j] - mean_j) + d
        dX[i, j] = v
        count += nonfinite(v)
    if first == 0:
        dbeta[j], dgamma[j] = sum_dy, g
        count += nonfinite(sum_dy) + nonfinite(sum_dyx)
    add_count(bad, count)


def batchnorm_forward(X, gamma, beta, running_mean, running_var, training=True, decay=0.9,
                      eps=1e-5, activation="linear", out=None):
    """See ``fastnn.kernels.batchnorm_forward``. The running statistics are updated in place on
    the device (a host array gets the new values copied back); the cache holds arrays of the kind
    returned."""
    if training and X.shape[0] < 2:  # (the public API checks first; models call this directly)
        raise ValueError("batchnorm_forward: training needs a batch of at least 2 rows to "
                         f"estimate a variance, got X of shape {tuple(X.shape)}")
    out, mean_out, invstd_out = split_out(out, 3) if isinstance(out, tuple) else (out, None, None)
    call = DeviceCall(X, gamma, beta, running_mean, running_var, out, mean_out, invstd_out)
    Xd, gd, bd = call.read(X, "X"), call.read(gamma, "gamma"), call.read(beta, "beta")
    stats = call.update if training else call.read  # training updates them in place
    rm, rv = stats(running_mean, "running_mean"), stats(running_var, "running_var")
    (m, n), dtype = Xd.shape, Xd.dtype
    Y = call.output(out, (m, n), dtype)
    mean = call.output(mean_out, (n,), dtype, "out[1] (mean)")  # (in the cache)
    invstd = call.output(invstd_out, (n,), dtype, "out[2] (invstd)")
    mean64, var64 = (_scratch.scratch(f"batchnorm forward {name}", (n,), np.float64)
                     for name in ("mean", "var"))
    sums = column_sums(MOMENTS, Xd, call.bad) if training else mean64.reshape(1, n)
    update = training and call.deferred  # (else after the check that nothing was NaN/inf)
    unbias = m / (m - 1) if training else 1.0
    grid, block = column_grid(m, n)
    _normalize[grid, block](training, Xd, sums, rm, rv, gd, bd, eps,
                                ACTIVATIONS.index(activation), update, decay, unbias, Y, mean,
                                invstd, mean64, var64, call.bad)
    if training and not update:
        blocks, threads = stride_grid(n)
        _running_update[blocks, threads](mean64, var64, rm, rv, decay, unbias, call.bad)
    Y, mean, invstd = call.finish(Y, mean, invstd)
    return Y, BatchNormCache(X, gamma, mean, invstd, training, activation,
                             None if activation == "linear" else Y)


def batchnorm_backward(dY, cache, out=None):
    """See ``fastnn.kernels.batchnorm_backward``."""
    X, gamma, mean, invstd, training, activation, A = cache
    act = ACTIVATIONS.index(activation)
    out_dX, out_dgamma, out_dbeta = split_out(out, 3)
    call = DeviceCall(dY, X, gamma, mean, invstd, A, out_dX, out_dgamma, out_dbeta)
    dYd, Xd = call.read(dY, "dY"), call.read(X, "cache.X")
    gd, meand, invd = call.read(gamma), call.read(mean), call.read(invstd)
    Ad = dYd if A is None else call.read(A, "cache.A")  # (A is not read when linear)
    (m, n), dtype = Xd.shape, Xd.dtype
    sums = column_sums(GRAD_SUMS, Xd, call.bad, D=dYd, c=meand, E=Ad, act=act)
    dgamma = call.output(out_dgamma, (n,), dtype, "out[1] (dgamma)")
    dbeta = call.output(out_dbeta, (n,), dtype, "out[2] (dbeta)")
    dX = call.output(out_dX, (m, n), dtype, "out[0] (dX)")
    grid, block = column_grid(m, n)
    _grad_x[grid, block](training, sums, gd, invd, dYd, Ad, act, Xd, meand, dX, dgamma, dbeta,
                             call.bad)
    return call.finish(dX, dgamma, dbeta)
