"""Optimizer updates on the GPU, in place, over flat device buffers (one call can update every
parameter of a model held in one buffer), by grid-stride loops.

Two launches: the first counts NaN/inf in p, g and the state; the second updates only when the
count is 0 (it reads the count on the device: no wait in between), so a bad gradient leaves p and
the state bit-for-bit unchanged. ``check_finite=False`` (the caller vouches that every input is
finite) skips the count. Hyperparameters reach the kernel in the arrays' dtype, with
everything that does not depend on the element (1 - beta, Adam's bias corrections) computed once
on the host, in float64. Host arrays are copied to the device and the updated values back.
"""
import math

from numba import cuda

from fastnn.kernels.cuda._launch import count_nonfinite, stride_grid
from fastnn.kernels.cuda._transfer import DeviceCall, flat

SGD, MOMENTUM, RMSPROP, ADAM = range(4)
_N_HYPER = 7  # hyperparameter slots (Adam's count): one kernel signature for every optimizer


@cuda.jit
def _update_kernel(kind, p, g, s1, s2, h, bad):
    """One step of optimizer ``kind`` over flat arrays, skipped when bad[0] != 0.
    SGD h = (lr,); MOMENTUM (lr, beta, 1 - beta); RMSPROP (lr, beta, 1 - beta, eps);
    ADAM (lr / (1 - beta1^t), beta1, 1 - beta1, beta2, 1 - beta2, 1 / sqrt(1 - beta2^t), eps)."""
    if bad[0] != 0:
        return
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        if kind == SGD:
            p[i] -= h[0] * gi
        elif kind == MOMENTUM:
            v = h[1] * s1[i] + h[2] * gi
            s1[i] = v
            p[i] -= h[0] * v
        elif kind == RMSPROP:
            s = h[1] * s1[i] + h[2] * gi * gi
            s1[i] = s
            p[i] -= h[0] * gi / (math.sqrt(s) + h[3])
        else:
            m = h[1] * s1[i] + h[2] * gi
            v = h[3] * s2[i] + h[4] * gi * gi
            s1[i] = m
            s2[i] = v
            p[i] -= h[0] * m / (math.sqrt(v) * h[5] + h[6])


def _update(kind, p, g, states, hyper, check_finite):
    """Count NaN/inf in p, g and the states (if ``check_finite``), then update p and the states in
    place (when there are none)."""
    call = DeviceCall(p, g, *states)
    pd, gd = flat(call.update(p, "p")), flat(call.read(g, "g"))
    sd = [flat(call.update(s, "state")) for s in states]
    if check_finite:
        count_nonfinite(call.bad, pd, gd, *sd)
    s1, s2 = (sd + [pd, pd])[:2]  # unused state slots get p (never touched)
    h = tuple(pd.dtype.type(x) for x in hyper + (0.0,) * (_N_HYPER - len(hyper)))
    blocks, threads = stride_grid(pd.size)
    _update_kernel[blocks, threads](kind, pd, gd, s1, s2, h, call.bad)
    call.finish()


def add_scaled(y, alpha, x):
    """y <- y + alpha * x, in place (an L2 gradient term): the gradient-descent step with
    lr = -alpha, no finiteness check."""
    _update(SGD, y, x, (), (-alpha,), False)


def sgd_update(p, g, lr, check_finite=True):
    """Gradient descent, in place: p <- p - lr * g. Returns None."""
    _update(SGD, p, g, (), (lr,), check_finite)


def momentum_update(p, g, v, lr, beta, check_finite=True):
    """Momentum (exponentially weighted average), in place: v <- beta * v + (1 - beta) * g;
    p <- p - lr * v. Returns None."""
    _update(MOMENTUM, p, g, (v,), (lr, beta, 1.0 - beta), check_finite)


def rmsprop_update(p, g, s, lr, beta, eps, check_finite=True):
    """RMSprop, in place: s <- beta * s + (1 - beta) * g^2; p <- p - lr * g / (sqrt(s) + eps).
    Returns None."""
    _update(RMSPROP, p, g, (s,), (lr, beta, 1.0 - beta, eps), check_finite)


def adam_update(p, g, m, v, t, lr, beta1, beta2, eps, check_finite=True):
    """Adam at step t >= 1, in place: m <- beta1 * m + (1 - beta1) * g;
    v <- beta2 * v + (1 - beta2) * g^2; p <- p - lr * mhat / (sqrt(vhat) + eps) with
    mhat = m / (1 - beta1^t), vhat = v / (1 - beta2^t) (folded into two scalars). Returns None."""
    step = lr / (1.0 - beta1 ** t)
    inv_sqrt_bc2 = 1.0 / math.sqrt(1.0 - beta2 ** t)
    _update(ADAM, p, g, (m, v), (step, beta1, 1.0 - beta1, beta2, 1.0 - beta2, inv_sqrt_bc2, eps),
            check_finite)
