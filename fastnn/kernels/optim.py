"""Optimizer update kernels: the public, validating layer (re-exported by ``fastnn.kernels``).

Each kernel updates the parameters ``p`` and its state arrays in place from the gradient ``g`` and
returns None. p, g and the state are NumPy arrays of one float dtype (float32 or float64) and one
shape, any shape: one call over a single flat buffer that holds every parameter of a model updates
them all. p and the state must be writable and C-contiguous (they are updated in place); g is copied
when it is not C-contiguous. Hyperparameters: lr > 0, betas in [0, 1), eps > 0 (finite numbers),
Adam's step count t an integer >= 1.

Bad input raises TypeError/ValueError naming the function and the argument before anything changes.
Every update is all or nothing: NaN or inf in g, p or the state raises ValueError naming the array,
and an update that overflows to inf or NaN from finite inputs (a learning rate far too large, a
gradient above ~1.8e19 squared by Adam and RMSprop in float32) raises ``fastnn.NonFiniteError``;
either way p and the state are left bit-for-bit unchanged (every backend counts NaN/inf in the
values it computes before it writes them, see ``fastnn.kernels.cpu.optim``).
"""
import math
import numbers

import numpy as np
from numpy.typing import ArrayLike

from fastnn import backend as _backend
from fastnn.kernels import validation as check
from fastnn.kernels.base import Backend, NonFiniteError, is_device_array

__all__ = ["adam_update", "momentum_update", "rmsprop_update", "sgd_update"]

def _backend_module(fn, backend):
    """The module of backend ``backend`` (None: the default backend)."""
    try:
        return _backend.get(backend)
    except ValueError as error:
        raise ValueError(f"{fn}: {error}") from None


# --- checks --------------------------------------------------------------------------------------

def _real(fn, name, value):
    if type(value) is float:  # the common case, without the slower abstract-class checks
        return value
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(value).__name__}")
    return float(value)


def positive(fn, name, value):
    """A finite real number > 0 (lr, eps), as a Python float."""
    x = _real(fn, name, value)
    if not (0.0 < x < math.inf):
        raise ValueError(f"{fn}: {name} must be a finite number > 0, got {value!r}")
    return x


def fraction(fn, name, value):
    """A real number in [0, 1) (the betas), as a Python float."""
    x = _real(fn, name, value)
    if not 0.0 <= x < 1.0:
        raise ValueError(f"{fn}: {name} must be a number in [0, 1), got {value!r}")
    return x


def step_count(fn, name, value):
    """An integer >= 1 (Adam's t), as a Python int."""
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be an integer (the step count, 1 on the first step), "
                        f"got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{fn}: {name} must be >= 1 (the step count after incrementing: the "
                         f"first step uses t=1), got {value!r}")
    if value > 2 ** 1023:  # (beta ** t needs t as a float)
        raise ValueError(f"{fn}: {name} must be at most 2**1023, got a {int(value).bit_length()}"
                         "-bit integer")
    return int(value)


def in_dtype(fn, dtype, **values):
    """Hyperparameters that must stay nonzero in the arrays' ``dtype`` (eps: 1e-50 is 0 in
    float32, and an element with m = v = 0 then gives 0 / 0). (A learning rate that is 0 there
    is not refused: the update it makes is below the parameters' resolution anyway, and a
    decaying schedule gets there.)"""
    for name, value in values.items():
        if np.dtype(dtype).type(value) == 0:
            raise ValueError(f"{fn}: {name} = {value!r} is 0 in {np.dtype(dtype).name}, the "
                             "parameters' dtype; give a value that it can hold")


def _float_ndarray(fn, name, a):
    if is_device_array(a):  # (C-contiguous and float: checked on a Numba view)
        a = check.float_array(fn, name, a, len(a.shape))
    elif not isinstance(a, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a NumPy array, got {type(a).__name__}")
    if a.dtype not in check.FLOAT_DTYPES:
        raise TypeError(f"{fn}: {name} must have dtype float32 or float64, got {a.dtype}")
    return a


def arrays(fn, p, g, **states):
    """Check the arrays of an update (see the module doc); returns g, C-contiguous. Device
    arrays (the "cuda" backend) are checked for dtype, shape and layout only."""
    updated = {"p": p, **states}
    if is_device_array(p):
        for name, a in {**updated, "g": g}.items():
            updated[name] = _float_ndarray(fn, name, a)
        g = updated.pop("g")
        check.same_dtype(fn, g=g, **updated)
        for name, a in {**updated, "g": g}.items():
            check.shape(fn, name, a, updated["p"].shape, "(the shape of p)")
        return g
    for name, a in updated.items():
        _float_ndarray(fn, name, a)
        if not a.flags.writeable:
            raise TypeError(f"{fn}: {name} must be a writable array (it is updated in place), "
                            "got a read-only one")
        if not a.flags.c_contiguous:
            raise TypeError(f"{fn}: {name} must be C-contiguous because it is updated in place "
                            f"(got strides {a.strides} for shape {a.shape}); use "
                            "np.ascontiguousarray once and keep that array")
    _float_ndarray(fn, "g", g)
    check.same_dtype(fn, p=p, g=g, **states)
    check.shape(fn, "g", g, p.shape, "(the shape of p)")
    for name, a in states.items():
        check.shape(fn, name, a, p.shape, "(the shape of p)")
    names = list(updated)
    for i, a in enumerate(names):
        for b in names[i + 1:] + ["g"]:
            other = g if b == "g" else updated[b]
            if np.may_share_memory(updated[a], other):
                raise ValueError(f"{fn}: {a} and {b} share memory; give each its own array")
    return np.asarray(g, order="C")  # (np.ascontiguousarray would make a 0-d g 1-D)


def overflow_message(lr, what="p and the state are unchanged"):
    """The message of an update that overflowed from finite inputs (after "fn: ")."""
    return (f"the update overflowed to inf or NaN although the inputs are finite ({what}); "
            f"lower the learning rate (lr={lr!r})")


def _run(fn, backend, p, g, states, *args, lr, eps=None):
    """Call ``fn`` of the chosen backend on (p, g, *states, *args); on NaN/inf name the array,
    or report the overflow (nothing was written either way)."""
    module = _backend_module(fn, backend)
    check.host_backend_arrays(fn, module, {"p": p, "g": g, **states})
    if eps is not None:
        in_dtype(fn, p.dtype, eps=eps)
    try:
        getattr(module, fn)(p, g, *states.values(), *args)
    except NonFiniteError:
        check.nonfinite_result(fn, overflow_message(lr), g=g, p=p, **states)


# --- kernels -------------------------------------------------------------------------------------

def sgd_update(p: np.ndarray, g: ArrayLike, lr: float, *, backend: Backend = None) -> None:
    """Gradient descent, in place: p <- p - lr * g. Returns None."""
    fn = "sgd_update"
    g = arrays(fn, p, g)
    _run(fn, backend, p, g, {}, positive(fn, "lr", lr), lr=lr)


def momentum_update(p: np.ndarray, g: ArrayLike, v: np.ndarray, lr: float, beta: float, *,
                    backend: Backend = None) -> None:
    """Momentum (the course's exponentially weighted average form), in place:
    v <- beta * v + (1 - beta) * g;  p <- p - lr * v. Returns None.

    PyTorch's SGD momentum is v <- mu * v + g: the same as this with dampening = beta, and its step
    is 1 / (1 - beta) times larger without dampening.
    """
    fn = "momentum_update"
    g = arrays(fn, p, g, v=v)
    _run(fn, backend, p, g, {"v": v}, positive(fn, "lr", lr), fraction(fn, "beta", beta), lr=lr)


def rmsprop_update(p: np.ndarray, g: ArrayLike, s: np.ndarray, lr: float, beta: float, eps: float,
                   *, backend: Backend = None) -> None:
    """RMSprop, in place: s <- beta * s + (1 - beta) * g^2;  p <- p - lr * g / (sqrt(s) + eps).
    Returns None. (PyTorch's RMSprop: beta is its ``alpha``, eps is outside the sqrt too.)
    """
    fn = "rmsprop_update"
    g = arrays(fn, p, g, s=s)
    _run(fn, backend, p, g, {"s": s}, positive(fn, "lr", lr), fraction(fn, "beta", beta),
         positive(fn, "eps", eps), lr=lr, eps=eps)


def adam_update(p: np.ndarray, g: ArrayLike, m: np.ndarray, v: np.ndarray, t: int, lr: float,
                beta1: float, beta2: float, eps: float, *, backend: Backend = None) -> None:
    """Adam, in place, at step t >= 1 (the count after incrementing: the first step uses t = 1):
    m <- beta1 * m + (1 - beta1) * g;  v <- beta2 * v + (1 - beta2) * g^2;
    mhat = m / (1 - beta1^t);  vhat = v / (1 - beta2^t);  p <- p - lr * mhat / (sqrt(vhat) + eps).
    Returns None. The same as torch.optim.Adam without weight decay (eps outside the sqrt).
    """
    fn = "adam_update"
    g = arrays(fn, p, g, m=m, v=v)
    _run(fn, backend, p, g, {"m": m, "v": v}, step_count(fn, "t", t), positive(fn, "lr", lr),
         fraction(fn, "beta1", beta1), fraction(fn, "beta2", beta2), positive(fn, "eps", eps),
         lr=lr, eps=eps)
