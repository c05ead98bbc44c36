"""Optimizer update kernels, fused: one pass per element reads p, g and the state and writes them.

The arrays are seen as flat views (``a.reshape(-1)``; p and the state must be C-contiguous, since
they are updated in place), so one call over a single buffer that holds every parameter of a model
updates them all. A first pass counts NaN/inf in every input; the update pass runs only when the
count is 0, so a bad gradient leaves p and the state bit-for-bit unchanged. Above
``config.OPTIM_PARALLEL_MIN_ELEMENTS`` both passes run on Numba's threads, each thread on one
contiguous block. ``check_finite=False`` skips the counting pass: for callers that vouch for their
inputs (a model whose gradients come from kernels that already counted NaN/inf in them).

The loops run over views p[i0:i1] (and the like) indexed from 0: with indices from i0, which
Numba must allow to be negative (wrapping around), LLVM does not vectorize them.

Hyperparameters reach the loops as scalars of the arrays' dtype (a bare Python float would make
Numba compute float32 data in float64), and everything that does not depend on the element
(1 - beta, Adam's bias corrections) is computed once, in float64, before the loop.
"""
import math

from numba import prange

from fastnn import config
from fastnn.kernels.cpu import _math
from fastnn.kernels.cpu._jit import jit, n_blocks
from fastnn.errors import NonFiniteError

__all__ = ["adam_update", "add_scaled", "momentum_update", "rmsprop_update", "sgd_update"]


# --- per-block loops (serial) and their parallel drivers -----------------------------------------

@jit
def _count_nonfinite(a):
    """1 if a value of a 1-D array is NaN or inf, else 0 (the serial path's first pass)."""
    return _math.nonfinite(a)


@jit(parallel=True)
def _count_nonfinite_parallel(a, b, c, d, n_arrays, blocks):
    """How many blocks of the first ``n_arrays`` of the 1-D arrays a, b, c, d (one size) hold NaN
    or inf (0: all finite), each thread checking one contiguous block of each."""
    n = a.shape[0]
    bad = 0
    for t in prange(blocks):
        i0, i1 = t * n // blocks, (t + 1) * n // blocks
        bad += _math.nonfinite(a[i0:i1])
        if n_arrays > 1:
            bad += _math.nonfinite(b[i0:i1])
        if n_arrays > 2:
            bad += _math.nonfinite(c[i0:i1])
        if n_arrays > 3:
            bad += _math.nonfinite(d[i0:i1])
    return bad


@jit
def _sgd_block(p, g, lr, i0, i1):
    p, g = p[i0:i1], g[i0:i1]  # views indexed from 0: the loop vectorizes (see the module doc)
    for i in range(p.shape[0]):
        p[i] -= lr * g[i]


@jit(parallel=True)
def _sgd_parallel(p, g, lr, blocks):
    n = p.shape[0]
    for b in prange(blocks):
        _sgd_block(p, g, lr, b * n // blocks, (b + 1) * n // blocks)


@jit
def _momentum_block(p, g, v, lr, beta, one_minus_beta, i0, i1):
    p, g, v = p[i0:i1], g[i0:i1], v[i0:i1]
    for i in range(p.shape[0]):
        vi = beta * v[i] + one_minus_beta * g[i]
        v[i] = vi
        p[i] -= lr * vi


@jit(parallel=True)
def _momentum_parallel(p, g, v, lr, beta, one_minus_beta, blocks):
    n = p.shape[0]
    for b in prange(blocks):
        _momentum_block(p, g, v, lr, beta, one_minus_beta, b * n // blocks,
                        (b + 1) * n // blocks)


@jit
def _rmsprop_block(p, g, s, lr, beta, one_minus_beta, eps, i0, i1):
    p, g, s = p[i0:i1], g[i0:i1], s[i0:i1]
    for i in range(p.shape[0]):
        gi = g[i]
        si = beta * s[i] + one_minus_beta * gi * gi
        s[i] = si
        p[i] -= lr * gi / (math.sqrt(si) + eps)


@jit(parallel=True)
def _rmsprop_parallel(p, g, s, lr, beta, one_minus_beta, eps, blocks):
    n = p.shape[0]
    for b in prange(blocks):
        _rmsprop_block(p, g, s, lr, beta, one_minus_beta, eps, b * n // blocks,
                       (b + 1) * n // blocks)


@jit
def _adam_block(p, g, m, v, step, beta1, one_minus_beta1, beta2, one_minus_beta2, inv_sqrt_bc2,
                eps, i0, i1):
    """m, v <- moving averages; p <- p - step * m / (sqrt(v) * inv_sqrt_bc2 + eps), where
    step = lr / (1 - beta1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - beta2^t): the same as
    lr * mhat / (sqrt(vhat) + eps) with the bias corrections folded into two scalars."""
    p, g, m, v = p[i0:i1], g[i0:i1], m[i0:i1], v[i0:i1]
    for i in range(p.shape[0]):
        gi = g[i]
        mi = beta1 * m[i] + one_minus_beta1 * gi
        vi = beta2 * v[i] + one_minus_beta2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)


@jit(parallel=True)
def _adam_parallel(p, g, m, v, step, beta1, one_minus_beta1, beta2, one_minus_beta2, inv_sqrt_bc2,
                   eps, blocks):
    n = p.shape[0]
    for b in prange(blocks):
        _adam_block(p, g, m, v, step, beta1, one_minus_beta1, beta2, one_minus_beta2,
                    inv_sqrt_bc2, eps, b * n // blocks, (b + 1) * n // blocks)


# --- public kernels ------------------------------------------------------------------------------

def _flat(a, name):
    """The 1-D view of an array updated in place (a copy would lose the update)."""
    if not a.flags.c_contiguous:
        raise TypeError(f"{name} must be C-contiguous because it is updated in place")
    return a.reshape(-1)


def _update(block, parallel, p, g, states, scalars, check_finite):
    """Count NaN/inf in every input (unless ``check_finite`` is false), raising NonFiniteError
    with nothing changed if there is any; then run the update ``block`` over the flat views,
    serially or ``parallel``."""
    arrays = [_flat(p, "p"), g.reshape(-1), *(_flat(a, "state") for a in states)]
    scalars = tuple(p.dtype.type(x) for x in scalars)  # the arrays' dtype, see the module doc
    n = arrays[0].shape[0]
    blocks = n_blocks(n, n, config.OPTIM_PARALLEL_MIN_ELEMENTS)
    if check_finite:
        if blocks == 1:
            bad = sum(_count_nonfinite(a) for a in arrays)
        else:
            padded = arrays + arrays[:1] * (4 - len(arrays))
            bad = _count_nonfinite_parallel(*padded, len(arrays), blocks)
        if bad:
            raise NonFiniteError
    if blocks == 1:
        block(*arrays, *scalars, 0, n)
    else:
        parallel(*arrays, *scalars, blocks)


def add_scaled(y, alpha, x):
    """y <- y + alpha * x in place, with no temporary (an L2 gradient term)."""
    flat_y = _flat(y, "y")
    _sgd_block(flat_y, x.reshape(-1), y.dtype.type(-alpha), 0, flat_y.shape[0])


def sgd_update(p, g, lr, check_finite=True):
    """Gradient descent: p <- p - lr * g; see ``fastnn.kernels.sgd_update``."""
    _update(_sgd_block, _sgd_parallel, p, g, (), (lr,), check_finite)


def momentum_update(p, g, v, lr, beta, check_finite=True):
    """v <- beta * v + (1 - beta) * g; p <- p - lr * v; see ``fastnn.kernels.momentum_update``."""
    _update(_momentum_block, _momentum_parallel, p, g, (v,), (lr, beta, 1.0 - beta), check_finite)


def rmsprop_update(p, g, s, lr, beta, eps, check_finite=True):
    """s <- beta * s + (1 - beta) * g^2; p <- p - lr * g / (sqrt(s) + eps); see
    ``fastnn.kernels.rmsprop_update``."""
    _update(_rmsprop_block, _rmsprop_parallel, p, g, (s,), (lr, beta, 1.0 - beta, eps),
            check_finite)


def adam_update(p, g, m, v, t, lr, beta1, beta2, eps, check_finite=True):
    """Adam at step t >= 1; see ``fastnn.kernels.adam_update``."""
    step = lr / (1.0 - beta1 ** t)
    inv_sqrt_bc2 = 1.0 / math.sqrt(1.0 - beta2 ** t)
    _update(_adam_block, _adam_parallel, p, g, (m, v),
            (step, beta1, 1.0 - beta1, beta2, 1.0 - beta2, inv_sqrt_bc2, eps), check_finite)
