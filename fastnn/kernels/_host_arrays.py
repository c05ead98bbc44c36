"""What a model needs from a backend besides the kernels, for backends whose arrays are NumPy
arrays in host memory ("numpy", "cpu"): allocation, transfers (none here), batch gathering and
the few reductions a training step makes. The CUDA backend has the same functions for device
arrays, so that ``fastnn.nn`` holds no backend-specific code.
"""
import numpy as np

from fastnn.kernels.base import to_host  # noqa: F401  (part of a backend's interface)

#: Arrays of these backends live in host memory.
on_device = False


def to_backend(a, dtype=None):
    """``a`` as an array of this backend (here: C-contiguous NumPy, no copy when it is one)."""
    return np.ascontiguousarray(a, dtype=dtype)


def empty(shape, dtype):
    return np.empty(shape, dtype)


def zeros(shape, dtype):
    return np.zeros(shape, dtype)


def copy(a):
    return a.copy()


def assign(target, source):
    """target[...] = source (source: an array of this backend or of the host)."""
    target[...] = source


def take_rows(X, rows, out):
    """out = X[rows] (a mini-batch), rows: host integer indices."""
    return np.take(X, rows, axis=0, out=out, mode="clip")  # ("raise" would buffer)


def count_correct(Z, y):
    """How many rows of Z have their largest value at the label y (first maximum on ties)."""
    return int(np.count_nonzero(np.argmax(Z, axis=1) == y))


def count_binary_correct(Z, Y):
    """How many values of Z fall on their target's side: z > 0 where y >= 0.5, z <= 0
    elsewhere (binary and multi-label accuracy). Z, Y: one shape."""
    return int(np.count_nonzero((Z > 0) == (Y >= 0.5)))


def sum_squares(a):
    """sum(a^2) as a Python float."""
    flat = a.reshape(-1)
    return float(np.dot(flat, flat))


def dropout_forward(X, rate, seed, out=None):
    """Inverted dropout: mask ~ Bernoulli(1 - rate) per element from a generator seeded with
    ``seed``, Y = X * mask / (1 - rate). X: (m, n). out: (Y, mask). Returns (Y, mask), mask in
    {0, 1} of X's dtype."""
    Y, mask = (None, None) if out is None else out
    mask = np.empty_like(X) if mask is None else mask
    keep = X.dtype.type(1.0 - rate)
    np.random.default_rng(seed).random(dtype=X.dtype, out=mask)
    np.less(mask, keep, out=mask, casting="unsafe")
    return dropout_backward(X, mask, rate, out=Y), mask


def dropout_backward(dY, mask, rate, out=None):
    """dX = dY * mask / (1 - rate) (also Y from X with a given mask)."""
    out = np.empty_like(dY) if out is None else out
    np.multiply(dY, mask, out=out)
    out *= dY.dtype.type(1.0 / (1.0 - rate))
    return out
