"""Optimizer update kernels, fused: one pass per element reads p, g and the state and writes the
new values, counting NaN/inf in every value it computes (the sum of x * 0, as the other kernels
do: free here, the loop is bound by sqrt and division or by memory).

The arrays are seen as flat views (``a.reshape(-1)``; p and the state must be C-contiguous, since
they are updated in place), so one call over a single buffer that holds every parameter of a model
updates them all. Every update is all or nothing: when a value it computes is NaN or inf (NaN/inf
in an input always reaches one, so this also finds bad inputs), NonFiniteError is raised with p and
the state read as they were. Two ways to get there:

- ``state_out`` and ``backup`` given (the optimizers of ``fastnn.optim``): one pass reads the state
  and writes the new state into ``state_out`` (double buffering: the caller switches to it after a
  success) and p's old values into ``backup`` while p is updated; on failure p is copied back from
  ``backup``. One extra write stream.
- neither (the public in-place kernels): a first pass computes the update and counts without
  writing, and the update pass runs only when the count is 0 (the same arithmetic, so it then
  cannot fail).

Above ``config.OPTIM_PARALLEL_MIN_ELEMENTS`` the passes run on Numba's threads, each thread on one
contiguous block. The loops run over views p[i0:i1] (and the like) indexed from 0: with indices
from i0, which Numba must allow to be negative (wrapping around), LLVM does not vectorize them.

Hyperparameters reach the loops in a small array ``h`` of the arrays' dtype (a bare Python float
would make Numba compute float32 data in float64; one array argument is also cheaper to dispatch
than seven scalars), read into locals before the loops, and everything that does not depend on the
element (1 - beta, Adam's bias corrections) is computed once, in float64, before the loop.
"""
import math

import numpy as np
from numba import prange
from numba.extending import register_jitable

from fastnn import config
from fastnn.errors import NonFiniteError
from fastnn.kernels.cpu._jit import jit, n_blocks

__all__ = ["adam_update", "add_scaled", "momentum_update", "rmsprop_update", "sgd_update"]

#: Pass modes of the block kernels: count only; update p and the state in place; write the new
#: state to the ``*_new`` arrays and p's old values to ``p_old`` while updating p.
CHECK, IN_PLACE, TO_NEW = 0, 1, 2


@register_jitable
def _clean(a, b, c):
    """The three per-block accumulators of x * 0 are all 0 (no NaN/inf met): 0, else 1. (Kept
    apart: one sum of (x + y) * 0 could overflow in x + y.)"""
    return 0 if a + b + c == 0 else 1


# --- element updates (shared by every pass, so that the check and the update compute the same) ---

@register_jitable
def _momentum_values(pi, gi, vi, lr, beta, one_minus_beta):
    v = beta * vi + one_minus_beta * gi
    return v, pi - lr * v


@register_jitable
def _rmsprop_values(pi, gi, si, lr, beta, one_minus_beta, eps):
    s = beta * si + one_minus_beta * gi * gi
    return s, pi - lr * gi / (math.sqrt(s) + eps)


@register_jitable
def _adam_values(pi, gi, mi, vi, step, beta1, one_minus_beta1, beta2, one_minus_beta2,
                 inv_sqrt_bc2, eps):
    """m, v <- moving averages; p <- p - step * m / (sqrt(v) * inv_sqrt_bc2 + eps), where
    step = lr / (1 - beta1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - beta2^t): the same as
    lr * mhat / (sqrt(vhat) + eps) with the bias corrections folded into two scalars."""
    m = beta1 * mi + one_minus_beta1 * gi
    v = beta2 * vi + one_minus_beta2 * gi * gi
    return m, v, pi - step * m / (math.sqrt(v) * inv_sqrt_bc2 + eps)


# --- per-block loops (serial, one loop per mode) and their parallel drivers ----------------------

@jit
def _sgd_block(p, g, p_old, h, mode, i0, i1):
    """p <- p - lr * g over [i0, i1) in ``mode``, h = (lr,); returns 1 if a new p is NaN or
    inf, else 0."""
    lr = h[0]  # (hyperparameters read into locals before the loops, see the module doc)
    p, g = p[i0:i1], g[i0:i1]  # views indexed from 0: the loop vectorizes (see the module doc)
    zero = p.dtype.type(0)
    bad = zero
    if mode == CHECK:
        for i in range(p.shape[0]):
            bad += (p[i] - lr * g[i]) * zero
    elif mode == IN_PLACE:
        for i in range(p.shape[0]):
            q = p[i] - lr * g[i]
            p[i] = q
            bad += q * zero
    else:
        p_old = p_old[i0:i1]
        for i in range(p.shape[0]):
            pi = p[i]
            q = pi - lr * g[i]
            p_old[i] = pi
            p[i] = q
            bad += q * zero
    return _clean(bad, zero, zero)


@jit(parallel=True)
def _sgd_parallel(p, g, p_old, h, mode, blocks):
    n = p.shape[0]
    bad = 0
    for b in prange(blocks):
        bad += _sgd_block(p, g, p_old, h, mode, b * n // blocks, (b + 1) * n // blocks)
    return bad


@jit
def _momentum_block(p, g, v, v_new, p_old, h, mode, i0, i1):
    """h = (lr, beta, 1 - beta)."""
    lr, beta, one_minus_beta = h[0], h[1], h[2]
    p, g, v = p[i0:i1], g[i0:i1], v[i0:i1]
    zero = p.dtype.type(0)
    bad_v, bad_p = zero, zero
    if mode == CHECK:
        for i in range(p.shape[0]):
            vi, pi = _momentum_values(p[i], g[i], v[i], lr, beta, one_minus_beta)
            bad_v += vi * zero
            bad_p += pi * zero
    elif mode == IN_PLACE:
        for i in range(p.shape[0]):
            vi, pi = _momentum_values(p[i], g[i], v[i], lr, beta, one_minus_beta)
            v[i] = vi
            p[i] = pi
            bad_v += vi * zero
            bad_p += pi * zero
    else:
        v_new, p_old = v_new[i0:i1], p_old[i0:i1]
        for i in range(p.shape[0]):
            old = p[i]
            vi, pi = _momentum_values(old, g[i], v[i], lr, beta, one_minus_beta)
            v_new[i] = vi
            p_old[i] = old
            p[i] = pi
            bad_v += vi * zero
            bad_p += pi * zero
    return _clean(bad_v, bad_p, zero)


@jit(parallel=True)
def _momentum_parallel(p, g, v, v_new, p_old, h, mode, blocks):
    n = p.shape[0]
    bad = 0
    for b in prange(blocks):
        bad += _momentum_block(p, g, v, v_new, p_old, h, mode, b * n // blocks,
                               (b + 1) * n // blocks)
    return bad


@jit
def _rmsprop_block(p, g, s, s_new, p_old, h, mode, i0, i1):
    """h = (lr, beta, 1 - beta, eps)."""
    lr, beta, one_minus_beta, eps = h[0], h[1], h[2], h[3]
    p, g, s = p[i0:i1], g[i0:i1], s[i0:i1]
    zero = p.dtype.type(0)
    bad_s, bad_p = zero, zero
    if mode == CHECK:
        for i in range(p.shape[0]):
            si, pi = _rmsprop_values(p[i], g[i], s[i], lr, beta, one_minus_beta, eps)
            bad_s += si * zero
            bad_p += pi * zero
    elif mode == IN_PLACE:
        for i in range(p.shape[0]):
            si, pi = _rmsprop_values(p[i], g[i], s[i], lr, beta, one_minus_beta, eps)
            s[i] = si
            p[i] = pi
            bad_s += si * zero
            bad_p += pi * zero
    else:
        s_new, p_old = s_new[i0:i1], p_old[i0:i1]
        for i in range(p.shape[0]):
            old = p[i]
            si, pi = _rmsprop_values(old, g[i], s[i], lr, beta, one_minus_beta, eps)
            s_new[i] = si
            p_old[i] = old
            p[i] = pi
            bad_s += si * zero
            bad_p += pi * zero
    return _clean(bad_s, bad_p, zero)


@jit(parallel=True)
def _rmsprop_parallel(p, g, s, s_new, p_old, h, mode, blocks):
    n = p.shape[0]
    bad = 0
    for b in prange(blocks):
        bad += _rmsprop_block(p, g, s, s_new, p_old, h, mode, b * n // blocks,
                              (b + 1) * n // blocks)
    return bad


@jit
def _adam_block(p, g, m, v, m_new, v_new, p_old, h, mode, i0, i1):
    """Adam over [i0, i1) in ``mode`` (see ``_adam_values``), h = (step, beta1, 1 - beta1, beta2,
    1 - beta2, inv_sqrt_bc2, eps); returns 1 if a computed value is NaN or inf, else 0."""
    step, beta1, one_minus_beta1, beta2 = h[0], h[1], h[2], h[3]
    one_minus_beta2, inv_sqrt_bc2, eps = h[4], h[5], h[6]
    p, g, m, v = p[i0:i1], g[i0:i1], m[i0:i1], v[i0:i1]
    zero = p.dtype.type(0)
    bad_m, bad_v, bad_p = zero, zero, zero
    if mode == CHECK:
        for i in range(p.shape[0]):
            mi, vi, pi = _adam_values(p[i], g[i], m[i], v[i], step, beta1, one_minus_beta1,
                                      beta2, one_minus_beta2, inv_sqrt_bc2, eps)
            bad_m += mi * zero
            bad_v += vi * zero
            bad_p += pi * zero
    elif mode == IN_PLACE:
        for i in range(p.shape[0]):
            mi, vi, pi = _adam_values(p[i], g[i], m[i], v[i], step, beta1, one_minus_beta1,
                                      beta2, one_minus_beta2, inv_sqrt_bc2, eps)
            m[i] = mi
            v[i] = vi
            p[i] = pi
            bad_m += mi * zero
            bad_v += vi * zero
            bad_p += pi * zero
    else:
        m_new, v_new, p_old = m_new[i0:i1], v_new[i0:i1], p_old[i0:i1]
        for i in range(p.shape[0]):
            old = p[i]
            mi, vi, pi = _adam_values(old, g[i], m[i], v[i], step, beta1, one_minus_beta1,
                                      beta2, one_minus_beta2, inv_sqrt_bc2, eps)
            m_new[i] = mi
            v_new[i] = vi
            p_old[i] = old
            p[i] = pi
            bad_m += mi * zero
            bad_v += vi * zero
            bad_p += pi * zero
    return _clean(bad_m, bad_v, bad_p)


@jit(parallel=True)
def _adam_parallel(p, g, m, v, m_new, v_new, p_old, h, mode, blocks):
    n = p.shape[0]
    bad = 0
    for b in prange(blocks):
        bad += _adam_block(p, g, m, v, m_new, v_new, p_old, h, mode, b * n // blocks,
                           (b + 1) * n // blocks)
    return bad


@jit
def _add_scaled_block(y, x, alpha):
    for i in range(y.shape[0]):
        y[i] += alpha * x[i]


# --- public kernels ------------------------------------------------------------------------------

def _flat(a, name):
    """The 1-D view of an array written in place (a copy would lose the update)."""
    if not isinstance(a, np.ndarray) or not a.flags.c_contiguous:
        raise TypeError(f"{name} must be a C-contiguous NumPy array because it is written in "
                        "place")
    return a if a.ndim == 1 else a.reshape(-1)


def _update(block, parallel, p, g, states, scalars, state_out, backup):
    """Run the update ``block`` over the flat views, serially or ``parallel``, all or nothing:
    one pass into ``state_out`` and ``backup`` when they are given (p copied back from
    ``backup`` on failure), else a counting pass and then the in-place pass. Raises
    NonFiniteError (nothing changed) when a computed value is NaN or inf. (Lean: the model's
    training step calls this once per batch.)"""
    if state_out is None:
        if backup is not None:
            raise TypeError("give both state_out and backup, or neither")
        arrays = [_flat(a, "p or a state") for a in (p, *states)]
        arrays = [arrays[0], g.reshape(-1), *arrays[1:], *arrays[1:], arrays[0]]
    else:
        if backup is None or len(state_out) != len(states):
            raise TypeError(f"give both state_out ({len(states)} arrays) and backup, or neither")
        arrays = [_flat(a, "p, state_out or backup") for a in (p, *state_out, backup)]
        arrays = [arrays[0], g.reshape(-1), *(a.reshape(-1) for a in states), *arrays[1:]]
    n, dtype = p.size, p.dtype
    for a in arrays:
        if a.size != n or a.dtype != dtype:
            raise ValueError(f"every array must have p's size {n} and dtype {dtype}, got "
                             f"{a.size} and {a.dtype}")
    h = np.array(scalars, dtype)  # the arrays' dtype, see the module doc
    blocks = n_blocks(n, n, config.OPTIM_PARALLEL_MIN_ELEMENTS)
    if state_out is not None:
        bad = block(*arrays, h, TO_NEW, 0, n) if blocks == 1 else \
            parallel(*arrays, h, TO_NEW, blocks)
        if bad:
            arrays[0][:] = arrays[-1]  # p from its backup
            raise NonFiniteError
        return
    for mode in (CHECK, IN_PLACE):  # (the second cannot fail: the same arithmetic)
        if block(*arrays, h, mode, 0, n) if blocks == 1 else parallel(*arrays, h, mode, blocks):
            raise NonFiniteError


def add_scaled(y, alpha, x):
    """y <- y + alpha * x in place, with no temporary (an L2 gradient term); no NaN/inf count."""
    flat_y = _flat(y, "y")
    _add_scaled_block(flat_y, x.reshape(-1), y.dtype.type(alpha))


def sgd_update(p, g, lr, check_finite=True, *, state_out=None, backup=None):
    """See ``fastnn.kernels.sgd_update``; the module doc says how ``state_out`` (here () when
    ``backup`` is given) and ``backup`` are used. ``check_finite`` is accepted for compatibility:
    every call counts NaN/inf in what it computes."""
    _update(_sgd_block, _sgd_parallel, p, g, (), (lr,), state_out, backup)


def momentum_update(p, g, v, lr, beta, check_finite=True, *, state_out=None, backup=None):
    """See ``fastnn.kernels.momentum_update``. (``state_out``: (v_new,).)"""
    _update(_momentum_block, _momentum_parallel, p, g, (v,), (lr, beta, 1.0 - beta), state_out,
            backup)


def rmsprop_update(p, g, s, lr, beta, eps, check_finite=True, *, state_out=None, backup=None):
    """See ``fastnn.kernels.rmsprop_update``. (``state_out``: (s_new,).)"""
    _update(_rmsprop_block, _rmsprop_parallel, p, g, (s,), (lr, beta, 1.0 - beta, eps),
            state_out, backup)


def adam_update(p, g, m, v, t, lr, beta1, beta2, eps, check_finite=True, *, state_out=None,
                backup=None):
    """Adam at step t >= 1; see ``fastnn.kernels.adam_update`` (``state_out``: (m_new,
    v_new))."""
    step = lr / (1.0 - beta1 ** t)
    inv_sqrt_bc2 = 1.0 / math.sqrt(1.0 - beta2 ** t)
    _update(_adam_block, _adam_parallel, p, g, (m, v),
            (step, beta1, 1.0 - beta1, beta2, 1.0 - beta2, inv_sqrt_bc2, eps), state_out, backup)
