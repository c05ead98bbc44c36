"""Optimizer updates on the GPU over flat device buffers (one call can update every parameter of a
model held in one buffer), by grid-stride loops that count NaN/inf in every value they compute.

Every update is all or nothing (as on the CPU, see ``fastnn.kernels.cpu.optim``): when a computed
value is NaN or inf (NaN/inf in an input always reaches one) NonFiniteError is raised with p and
the state read as they were.

- ``state_out`` and ``backup`` given (the optimizers of ``fastnn.optim``, which double-buffer their
  state): one launch reads the state, writes the new state into ``state_out`` and p's old values
  into ``backup`` while it updates p; on failure p is copied back from ``backup`` on the device.
  Inside ``kernel_scope`` on device arrays the check waits for the scope's end, and putting p
  back from ``backup`` (and keeping the old state) falls to the caller when the scope raises
  (``fastnn.optim.Optimizer.undo_last_step``: a model's training step does).
- neither (the public in-place kernels): a first launch computes the update and only counts; the
  second, which reads the count on the device (no wait in between), updates in place only when it
  is 0. Both run the same code, so the second computes exactly what the first counted.

Hyperparameters reach the kernel in the arrays' dtype, with everything that does not depend on the
element (1 - beta, Adam's bias corrections) computed once on the host, in float64. Host arrays are
copied to the device and the updated values back (only after a success).
"""
import math

from numba import cuda

from fastnn.errors import NonFiniteError
from fastnn.kernels.base import is_device_array
from fastnn.kernels.cuda._launch import stride_grid
from fastnn.kernels.cuda._math import add_count, nonfinite
from fastnn.kernels.cuda._transfer import DeviceCall, flat

SGD, MOMENTUM, RMSPROP, ADAM = range(4)
#: Launch modes: count only; update in place when bad[0] is 0; write the new state and p's old
#: values to their own arrays while updating p; update in place with no count (add_scaled).
CHECK, IN_PLACE, TO_NEW, PLAIN = range(4)
_N_HYPER = 7  # hyperparameter slots (Adam's count): one kernel signature for every optimizer


@cuda.jit
def _update_kernel(kind, mode, p, g, s1, s2, o1, o2, p_old, h, bad):
    """One step of optimizer ``kind`` over flat arrays in ``mode`` (see above); s1, s2: the state
    read, o1, o2: where TO_NEW writes the new state (unused slots: any array, never touched).
    SGD h = (lr,); MOMENTUM (lr, beta, 1 - beta); RMSPROP (lr, beta, 1 - beta, eps);
    ADAM (lr / (1 - beta1^t), beta1, 1 - beta1, beta2, 1 - beta2, 1 / sqrt(1 - beta2^t), eps)."""
    if mode == IN_PLACE and bad[0] != 0:
        return
    zero = p.dtype.type(0)
    count = 0
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi, pi = g[i], p[i]
        n1, n2 = zero, zero
        if kind == SGD:
            q = pi - h[0] * gi
        elif kind == MOMENTUM:
            n1 = h[1] * s1[i] + h[2] * gi
            q = pi - h[0] * n1
        elif kind == RMSPROP:
            n1 = h[1] * s1[i] + h[2] * gi * gi
            q = pi - h[0] * gi / (math.sqrt(n1) + h[3])
        else:
            n1 = h[1] * s1[i] + h[2] * gi
            n2 = h[3] * s2[i] + h[4] * gi * gi
            q = pi - h[0] * n1 / (math.sqrt(n2) * h[5] + h[6])
        count += nonfinite(q) + nonfinite(n1) + nonfinite(n2)
        if mode == CHECK:
            continue
        if mode == TO_NEW:
            p_old[i] = pi
            if kind != SGD:
                o1[i] = n1
            if kind == ADAM:
                o2[i] = n2
        else:
            if kind != SGD:
                s1[i] = n1
            if kind == ADAM:
                s2[i] = n2
        p[i] = q
    if mode != PLAIN:
        add_count(bad, count)


def _launch(kind, mode, arrays, hyper, bad):
    pd = arrays[0]
    h = tuple(pd.dtype.type(x) for x in hyper + (0.0,) * (_N_HYPER - len(hyper)))
    blocks, threads = stride_grid(pd.size)
    _update_kernel[blocks, threads](kind, mode, *arrays, h, bad)


def _update(kind, p, g, states, hyper, state_out=None, backup=None):
    """Update p and the state from g, all or nothing (see the module doc)."""
    if (state_out is None) != (backup is None):
        raise TypeError("give both state_out and backup, or neither")
    state_out = () if state_out is None else tuple(state_out)
    call = DeviceCall(p, g, *states, *state_out, backup, deferrable=backup is not None)
    pd, gd = flat(call.update(p, "p")), flat(call.read(g, "g"))
    if backup is None:
        sd = [flat(call.update(s, "state")) for s in states]
        s1, s2 = (sd + [pd, pd])[:2]  # unused state slots get p (never touched)
        arrays = (pd, gd, s1, s2, s1, s2, pd)
        _launch(kind, CHECK, arrays, hyper, call.bad)
        _launch(kind, IN_PLACE, arrays, hyper, call.bad)
        call.finish()
        return
    if len(state_out) != len(states):
        raise TypeError(f"state_out must hold {len(states)} arrays, got {len(state_out)}")
    sd = [flat(call.read(s, "state")) for s in states]
    od = [flat(call.update(s, "state_out")) for s in state_out]
    bd = flat(call.update(backup, "backup"))
    for a in (gd, *sd, *od, bd):
        if a.size != pd.size or a.dtype != pd.dtype:
            raise ValueError(f"every array must have p's size {pd.size} and dtype {pd.dtype}, "
                             f"got {a.size} and {a.dtype}")
    s1, s2 = (sd + [pd, pd])[:2]
    o1, o2 = (od + [pd, pd])[:2]
    _launch(kind, TO_NEW, (pd, gd, s1, s2, o1, o2, bd), hyper, call.bad)
    try:
        call.finish()
    except NonFiniteError:
        if is_device_array(p):  # (a host p was not copied back)
            pd.copy_to_device(bd)
        raise


def add_scaled(y, alpha, x):
    """y <- y + alpha * x, in place (an L2 gradient term): the gradient-descent step with
    lr = -alpha, no NaN/inf count."""
    call = DeviceCall(y, x)
    yd, xd = flat(call.update(y, "y")), flat(call.read(x, "x"))
    _launch(SGD, PLAIN, (yd, xd, yd, yd, yd, yd, yd), (-alpha,), call.bad)
    call.finish()


def sgd_update(p, g, lr, check_finite=True, *, state_out=None, backup=None):
    """See ``fastnn.kernels.sgd_update``. (``state_out``: () when ``backup`` is given;
    ``check_finite`` is accepted for compatibility: every call counts.)"""
    _update(SGD, p, g, (), (lr,), state_out, backup)


def momentum_update(p, g, v, lr, beta, check_finite=True, *, state_out=None, backup=None):
    """See ``fastnn.kernels.momentum_update``. (``state_out``: (v_new,).)"""
    _update(MOMENTUM, p, g, (v,), (lr, beta, 1.0 - beta), state_out, backup)


def rmsprop_update(p, g, s, lr, beta, eps, check_finite=True, *, state_out=None, backup=None):
    """See ``fastnn.kernels.rmsprop_update``. (``state_out``: (s_new,).)"""
    _update(RMSPROP, p, g, (s,), (lr, beta, 1.0 - beta, eps), state_out, backup)


def adam_update(p, g, m, v, t, lr, beta1, beta2, eps, check_finite=True, *, state_out=None,
                backup=None):
    """See ``fastnn.kernels.adam_update``. The bias corrections are folded into two scalars.
    (``state_out``: (m_new, v_new).)"""
    step = lr / (1.0 - beta1 ** t)
    inv_sqrt_bc2 = 1.0 / math.sqrt(1.0 - beta2 ** t)
    _update(ADAM, p, g, (m, v), (step, beta1, 1.0 - beta1, beta2, 1.0 - beta2, inv_sqrt_bc2, eps),
            state_out, backup)
