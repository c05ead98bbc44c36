"""NumPy reference of every fastnn kernel: the oracle for tests and the baseline for benchmarks.

Written for clarity, in plain NumPy, the way the equations read. Inputs are validated by
``fastnn.kernels`` before any backend runs; a backend raises ``NonFiniteError`` when it meets NaN or
inf, and the public function then names the argument.

Conventions: arrays are (n_samples, n_features); dense weights are (n_in, n_out), Z = X @ W + b.
``out=`` (an array, or a tuple for several results) receives the results in place and is returned;
here the result is computed first and copied in, as the point is clarity.
"""
import contextlib

import numpy as np

from fastnn.kernels._host_arrays import (  # noqa: F401
    assign,
    copy,
    count_binary_correct,
    count_correct,
    dropout_backward,
    dropout_forward,
    empty,
    on_device,
    sum_squares,
    take_rows,
    to_backend,
    to_host,
    zeros,
)
from fastnn.kernels.base import BatchNormCache, NonFiniteError

#: A context manager for a run of kernel calls (a backend may set up shared resources once for
#: them; the CPU backend pins BLAS). Here nothing is needed.
kernel_scope = contextlib.nullcontext()


def _require_finite(*arrays):
    if not all(np.isfinite(a).all() for a in arrays):
        raise NonFiniteError


def _into(out, result):
    """``result``, or ``out`` holding it when an output array is given."""
    if out is None:
        return result
    out[...] = result
    return out


# --- activations ---------------------------------------------------------------------------------

def activation_forward(Z, activation, out=None):
    """See ``fastnn.kernels.activation_forward``."""
    _require_finite(Z)
    return _into(out, _apply_activation(Z, activation))


def activation_backward(dA, A, activation, out=None):
    """See ``fastnn.kernels.activation_backward``."""
    _require_finite(dA, A)
    return _into(out, dA * activation_derivative(A, activation))


def _apply_activation(Z, activation):
    if activation == "relu":
        return np.maximum(Z, 0)
    if activation == "tanh":
        return np.tanh(Z)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-Z))
    return Z


def activation_derivative(A, activation):
    """g'(Z) in terms of A = g(Z): relu 1[A > 0], tanh 1 - A^2, sigmoid A (1 - A), linear 1."""
    if activation == "relu":
        return (A > 0).astype(A.dtype)
    if activation == "tanh":
        return 1 - A * A
    if activation == "sigmoid":
        return A * (1 - A)
    return np.ones_like(A)


# --- dense ---------------------------------------------------------------------------------------

def dense_forward(X, W, b=None, activation="linear", out=None):
    """See ``fastnn.kernels.dense_forward``."""
    _require_finite(X, W)
    Z = X @ W
    if b is not None:
        Z = Z + b
    _require_finite(Z)  # before g: tanh, sigmoid and relu map inf to finite values
    return _into(out, _apply_activation(Z, activation))


def dense_backward(dA, X, W, A, activation="linear", input_grad=True, out=None,
                   overwrite_dA=False, bias_grad=True):
    """See ``fastnn.kernels.dense_backward``. ``overwrite_dA`` is ignored here."""
    _require_finite(X, W)
    dZ = dA if activation == "linear" and not bias_grad else activation_backward(dA, A, activation)
    dX = dZ @ W.T if input_grad else np.zeros(0, dZ.dtype)
    dW = X.T @ dZ
    db = dZ.sum(axis=0) if bias_grad else np.zeros(0, dZ.dtype)
    _require_finite(dX, dW, db)
    out = (None, None, None) if out is None else out
    return ((_into(out[0], dX) if input_grad else None), _into(out[1], dW),
            (_into(out[2], db) if bias_grad else None))


# --- batch normalization -------------------------------------------------------------------------

def batchnorm_forward(X, gamma, beta, running_mean, running_var, training=True, decay=0.9,
                      eps=1e-5, activation="linear", out=None):
    """See ``fastnn.kernels.batchnorm_forward``."""
    if training and X.shape[0] < 2:  # (the public API checks first; models call this directly)
        raise ValueError("batchnorm_forward: training needs a batch of at least 2 rows to "
                         f"estimate a variance, got X of shape {tuple(X.shape)}")
    out, mean_out, invstd_out = out if isinstance(out, tuple) else (out, None, None)
    _require_finite(X)
    # the statistics in float64, as the kernels compute them (float32 sums overflow or lose
    # the variance of large values), then used in X's dtype
    if training:
        mean, var = X.mean(axis=0, dtype=np.float64), X.var(axis=0, dtype=np.float64)
    else:
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
    with np.errstate(over="ignore"):
        invstd = (1 / np.sqrt(var + eps)).astype(X.dtype)
        mean_x = mean.astype(X.dtype)
    Y = (X - mean_x) * invstd * gamma + beta
    _require_finite(Y)
    if training:  # written only once everything, the new averages included, is finite
        m = X.shape[0]
        with np.errstate(over="ignore"):
            new_mean = (decay * running_mean + (1 - decay) * mean).astype(X.dtype)
            new_var = (decay * running_var + (1 - decay) * var * (m / (m - 1))).astype(X.dtype)
        _require_finite(new_mean, new_var)
        running_mean[...] = new_mean
        running_var[...] = new_var
    A = _into(out, _apply_activation(Y, activation))
    mean_x, invstd = _into(mean_out, mean_x), _into(invstd_out, invstd)
    return A, BatchNormCache(X, gamma, mean_x, invstd, training, activation,
                             None if activation == "linear" else A)


def batchnorm_backward(dY, cache, out=None):
    """See ``fastnn.kernels.batchnorm_backward``."""
    X, gamma, mean, invstd, training, activation, A = cache
    if activation != "linear":
        dY = dY * activation_derivative(A, activation)
    m = X.shape[0]
    xhat = (X - mean) * invstd
    dbeta = dY.sum(axis=0)
    dgamma = (dY * xhat).sum(axis=0)
    if training:
        dX = (gamma * invstd / m) * (m * dY - dbeta - xhat * dgamma)
    else:
        dX = dY * (gamma * invstd)
    _require_finite(dX, dgamma, dbeta)
    if out is None:
        return dX, dgamma, dbeta
    return tuple(_into(o, r) for o, r in zip(out, (dX, dgamma, dbeta)))


# --- softmax -------------------------------------------------------------------------------------

def log_softmax(Z, out=None):
    """See ``fastnn.kernels.log_softmax``. A value beyond the dtype's range (a row holding
    3e38 and -3e38 in float32) raises NonFiniteError."""
    _require_finite(Z)
    with np.errstate(over="ignore"):
        shifted = Z - Z.max(axis=1, keepdims=True)
    result = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    _require_finite(result)
    return _into(out, result)


def softmax(Z, out=None):
    """See ``fastnn.kernels.softmax``."""
    _require_finite(Z)
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return _into(out, e / e.sum(axis=1, keepdims=True))


def hardmax(Z, out=None):
    """See ``fastnn.kernels.hardmax``."""
    _require_finite(Z)
    H = np.zeros_like(Z)
    H[np.arange(Z.shape[0]), Z.argmax(axis=1)] = 1
    return _into(out, H)


def softmax_cross_entropy(Z, y, out=None):
    """See ``fastnn.kernels.softmax_cross_entropy``. The loss is computed as
    (1/m) sum_i (sum_k Y_ik lse_i - sum_k Y_ik Z_ik) with lse_i = log sum_k exp(Z_ik) in float64,
    so that a log-probability below the dtype's range where Y is 0 does not matter."""
    _require_finite(Z)
    m = Z.shape[0]
    if y.ndim == 1:
        Y = np.zeros_like(Z)
        Y[np.arange(m), y] = 1
    else:
        Y = y
        _require_finite(Y)
    top = Z.max(axis=1, keepdims=True)
    with np.errstate(over="ignore"):
        e = np.exp(Z - top)  # (Z - top may overflow to -inf: its exp is 0)
    total = e.sum(axis=1, keepdims=True)
    lse = top.astype(np.float64) + np.log(total.astype(np.float64))
    ysum = Y.sum(axis=1, keepdims=True, dtype=np.float64)
    loss = float((ysum * lse - (Y * Z.astype(np.float64)).sum(axis=1, keepdims=True)).sum() / m)
    dZ = (e / total * ysum.astype(Z.dtype) - Y) / Z.dtype.type(m)
    if not np.isfinite(loss):
        raise NonFiniteError
    _require_finite(dZ)
    return loss, _into(out, dZ)


# --- elementwise losses (any shape: Z and its targets of one shape, N values in all) -------------

def _sigmoid(Z):
    """1 / (1 + e^-z) in a form that never overflows: e = exp(-|z|) <= 1, then 1 / (1 + e) for
    z >= 0 and e / (1 + e) below."""
    e = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_cross_entropy(Z, y, out=None):
    """See ``fastnn.kernels.sigmoid_cross_entropy``. The loss terms
    max(z, 0) - z y + log1p(exp(-|z|)) in float64, their mean returned."""
    _require_finite(Z, y)
    Z64, y64 = Z.astype(np.float64), y.astype(np.float64)
    loss = float(np.mean(np.maximum(Z64, 0) - Z64 * y64 + np.log1p(np.exp(-np.abs(Z64)))))
    dZ = (_sigmoid(Z) - y) / Z.dtype.type(Z.size)
    return loss, _into(out, dZ)


def mean_squared_error(Z, Y, out=None):
    """See ``fastnn.kernels.mean_squared_error``. The squares summed in float64; a difference
    beyond the dtype's range raises NonFiniteError."""
    _require_finite(Z, Y)
    with np.errstate(over="ignore"):
        D = Z - Y
        dZ = D * Z.dtype.type(2 / Z.size)
        loss = float(np.mean(np.square(D, dtype=np.float64)))
    if not np.isfinite(loss):
        raise NonFiniteError
    _require_finite(dZ)
    return loss, _into(out, dZ)


# --- optimizer updates (in place; any shape, one flat buffer for a whole model) -------------------
#
# Every update is all or nothing: the new values are computed first, and when one is NaN or inf
# (NaN/inf in an input always reaches one) NonFiniteError is raised before anything is written.
# ``state_out`` (the new state arrays, in the order of the state arguments) and ``backup`` are for
# the optimizers of ``fastnn.optim``, which double-buffer their state: given, the new state goes to
# ``state_out`` (the state read is left as it was) and p's old values to ``backup``; not given, the
# state is updated in place. ``check_finite`` is accepted for compatibility (the results are
# always checked).

def _commit(p, new_p, states, new_states, state_out, backup):
    """Check the new values, then write them: the state in place or to ``state_out``, p's old
    values to ``backup`` (when given), then p."""
    _require_finite(new_p, *new_states)
    if backup is not None:
        backup[...] = p
    for target, value in zip(states if state_out is None else state_out, new_states):
        target[...] = value
    p[...] = new_p


#: NaN/inf in the new values is counted and raised as NonFiniteError, not warned about.
_quiet = np.errstate(over="ignore", invalid="ignore", divide="ignore")


@_quiet
def sgd_update(p, g, lr, check_finite=True, *, state_out=None, backup=None):
    """See ``fastnn.kernels.sgd_update``."""
    _commit(p, p - lr * g, (), (), state_out, backup)


@_quiet
def momentum_update(p, g, v, lr, beta, check_finite=True, *, state_out=None, backup=None):
    """See ``fastnn.kernels.momentum_update``."""
    v_new = beta * v + (1 - beta) * g
    _commit(p, p - lr * v_new, (v,), (v_new,), state_out, backup)


@_quiet
def rmsprop_update(p, g, s, lr, beta, eps, check_finite=True, *, state_out=None, backup=None):
    """See ``fastnn.kernels.rmsprop_update``."""
    s_new = beta * s + (1 - beta) * g * g
    _commit(p, p - lr * g / (np.sqrt(s_new) + eps), (s,), (s_new,), state_out, backup)


@_quiet
def adam_update(p, g, m, v, t, lr, beta1, beta2, eps, check_finite=True, *, state_out=None,
                backup=None):
    """See ``fastnn.kernels.adam_update``."""
    m_new = beta1 * m + (1 - beta1) * g
    v_new = beta2 * v + (1 - beta2) * g * g
    mhat = m_new / (1 - beta1 ** t)
    vhat = v_new / (1 - beta2 ** t)
    _commit(p, p - lr * mhat / (np.sqrt(vhat) + eps), (m, v), (m_new, v_new), state_out, backup)


def add_scaled(y, alpha, x):
    """y <- y + alpha * x, in place (an L2 gradient term)."""
    y += alpha * x
