"""Batch normalization on the GPU, on (m, n) C-ordered data, with an optional fused activation.

Column sums run as block reductions over rows (``_colsum``): in training the forward pass sums
x - shift and (x - shift)^2 (shift: the first row, for an accurate one-pass variance), the
backward pass sums dy and dy * (x - mean). A small per-column kernel turns the sums into
coefficients, and one elementwise pass applies them: A = g(alpha * (X - mean) + beta) with
alpha = gamma * invstd; dX = a * dY + c * (X - mean) + d. With a fused activation g the backward
pass reads the gradient of A and uses dY = dA * g'(A) wherever it reads dY. Running statistics are
updated on the device, after the forward pass, only when no NaN/inf was met.
"""
import math

import numpy as np
from numba import cuda, float64

from fastnn.kernels.base import ACTIVATIONS, LINEAR, BatchNormCache
from fastnn.kernels.cuda import _scratch
from fastnn.kernels.cuda._colsum import GRAD_SUMS, MOMENTS, column_sums
from fastnn.kernels.cuda._launch import stride_grid
from fastnn.kernels.cuda._math import activate, activation_grad, add_count, nonfinite
from fastnn.kernels.cuda._transfer import DeviceCall, split_out


@cuda.jit
def _forward_coefficients(training, sums, shift, running_mean, running_var, gamma, m, eps,
                          mean, invstd, alpha, mean64, var64, bad):
    """Per column: mean, biased var (training: from sums = [sum(x - shift), sum((x - shift)^2)];
    inference: the running statistics), invstd = 1 / sqrt(var + eps), alpha = gamma * invstd.
    mean, invstd, alpha in X's dtype; mean64, var64 kept in float64 for the running update."""
    n = mean.shape[0]
    count = 0
    for j in range(cuda.grid(1), n, cuda.gridsize(1)):
        if training:
            s1, s2 = sums[0, j], sums[0, n + j]
            count += nonfinite(s1) + nonfinite(s2)
            mean_shifted = s1 / m
            mu = float64(shift[j]) + mean_shifted
            var = max(s2 / m - mean_shifted * mean_shifted, 0.0)
        else:
            mu, var = float64(running_mean[j]), float64(running_var[j])
        inv = 1.0 / math.sqrt(var + eps)
        mean64[j], var64[j] = mu, var
        mean[j] = mu
        invstd[j] = inv
        alpha[j] = gamma[j] * inv
    add_count(bad, count)


@cuda.jit
def _running_update(mean64, var64, running_mean, running_var, decay, unbias, bad):
    """running = decay * running + (1 - decay) * batch value (var * unbias, unbias = m / (m - 1)),
    only when bad[0] is 0."""
    if bad[0] != 0:
        return
    for j in range(cuda.grid(1), running_mean.shape[0], cuda.gridsize(1)):
        running_mean[j] = decay * running_mean[j] + (1.0 - decay) * mean64[j]
        running_var[j] = decay * running_var[j] + (1.0 - decay) * var64[j] * unbias


@cuda.jit
def _backward_coefficients(training, sums, gamma, invstd, m, a, c, d, dgamma, dbeta, bad):
    """Per column, from sums = [sum(dy), sum(dy * (x - mean))]: dbeta = sum(dy),
    dgamma = invstd * sum(dy * (x - mean)) and dX = a * dY + c * (X - mean) + d with
    a = gamma * invstd and, in training, c = -a * invstd * dgamma / m, d = -a * dbeta / m
    (at inference c = d = 0)."""
    n = a.shape[0]
    count = 0
    for j in range(cuda.grid(1), n, cuda.gridsize(1)):
        sum_dy, sum_dyx = sums[0, j], sums[0, n + j]
        count += nonfinite(sum_dy) + nonfinite(sum_dyx)
        inv = float64(invstd[j])
        g = sum_dyx * inv
        aj = float64(gamma[j]) * inv
        dbeta[j] = sum_dy
        dgamma[j] = g
        a[j] = aj
        c[j] = -aj * inv * g / m if training else 0.0
        d[j] = -aj * sum_dy / m if training else 0.0
    add_count(bad, count)


@cuda.jit
def _normalize(X, mean, alpha, beta, act, A, bad):
    """A = g(alpha * (X - mean) + beta), per column (mean, alpha, beta: (n,)); counts NaN/inf
    before g."""
    n = X.shape[1]
    zero, one = X.dtype.type(0), X.dtype.type(1)
    count = 0
    for k in range(cuda.grid(1), X.size, cuda.gridsize(1)):
        i, j = k // n, k % n
        y = alpha[j] * (X[i, j] - mean[j]) + beta[j]
        count += nonfinite(y)
        A[i, j] = activate(y, act, zero, one)
    add_count(bad, count)


@cuda.jit
def _grad_x(dA, A, act, X, mean, a, c, d, dX, bad):
    """dX = a * dY + c * (X - mean) + d, per column (mean, a, c, d: (n,)), dY = dA * g'(A) (dA for
    linear); counts NaN/inf in dX."""
    n = X.shape[1]
    zero, one = X.dtype.type(0), X.dtype.type(1)
    count = 0
    for k in range(cuda.grid(1), X.size, cuda.gridsize(1)):
        i, j = k // n, k % n
        dy = dA[i, j] if act == LINEAR else activation_grad(dA[i, j], A[i, j], act, zero, one)
        v = a[j] * dy + c[j] * (X[i, j] - mean[j]) + d[j]
        dX[i, j] = v
        count += nonfinite(v)
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
    alpha, mean64, var64 = (_scratch.scratch(f"batchnorm forward {name}", (n,), t)
                            for name, t in (("alpha", dtype), ("mean", np.float64),
                                            ("var", np.float64)))
    sums = column_sums(MOMENTS, Xd, call.bad) if training else mean64.reshape(1, n)
    blocks, threads = stride_grid(n)
    _forward_coefficients[blocks, threads](training, sums, Xd[0], rm, rv, gd, float(m), eps, mean,
                                           invstd, alpha, mean64, var64, call.bad)
    blocks, threads = stride_grid(Xd.size)
    _normalize[blocks, threads](Xd, mean, alpha, bd, ACTIVATIONS.index(activation), Y, call.bad)
    if training:
        blocks, threads = stride_grid(n)
        _running_update[blocks, threads](mean64, var64, rm, rv, decay, m / (m - 1), call.bad)
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
    a, c, d = (_scratch.scratch(f"batchnorm backward {name}", (n,), dtype) for name in "acd")
    dgamma = call.output(out_dgamma, (n,), dtype, "out[1] (dgamma)")
    dbeta = call.output(out_dbeta, (n,), dtype, "out[2] (dbeta)")
    blocks, threads = stride_grid(n)
    _backward_coefficients[blocks, threads](training, sums, gd, invd, float(m), a, c, d, dgamma,
                                            dbeta, call.bad)
    dX = call.output(out_dX, (m, n), dtype, "out[0] (dX)")
    blocks, threads = stride_grid(Xd.size)
    _grad_x[blocks, threads](dYd, Ad, act, Xd, meand, a, c, d, dX, call.bad)
    return call.finish(dX, dgamma, dbeta)
