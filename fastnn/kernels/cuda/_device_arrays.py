"""What a model needs from the CUDA backend besides the kernels, for device arrays: allocation,
transfers, batch gathering and the sum of squares of an L2 penalty (the same functions as
``fastnn.kernels._host_arrays`` for the host backends; ``count_correct`` is in ``softmax`` and
``add_scaled`` in ``optim``). Arrays of this backend are Numba device arrays; inputs may also be
host arrays or objects with ``__cuda_array_interface__``.
"""
import numpy as np
from numba import cuda

from fastnn import config
from fastnn.kernels.base import (
    device_view,
    is_device_array,
    to_host,  # noqa: F401  (part of a backend's interface)
)
from fastnn.kernels.cuda._colsum import SQUARES, SUM, column_sums
from fastnn.kernels.cuda._launch import stride_grid
from fastnn.kernels.cuda._transfer import DeviceCall, flat


def to_backend(a, dtype=None):
    """``a`` as a device array of ``dtype`` (default: its own): a device array of that dtype is
    used as it is (no copy), anything else is copied to the device (converted on the host)."""
    if is_device_array(a):
        d = device_view(a)
        if dtype is None or np.dtype(dtype) == d.dtype:
            return d
        a = d.copy_to_host()
    return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))


def empty(shape, dtype):
    return cuda.device_array(shape, dtype)


@cuda.jit
def _fill_kernel(a, value):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] = value


def zeros(shape, dtype):
    a = cuda.device_array(shape, dtype)
    blocks, threads = stride_grid(a.size)
    _fill_kernel[blocks, threads](flat(a), np.dtype(dtype).type(0))
    return a


def copy(a):
    """A new device array holding a copy of ``a``."""
    source = to_backend(a)
    result = cuda.device_array(source.shape, source.dtype)
    result.copy_to_device(source)
    return result


def assign(target, source):
    """target[...] = source (source: a device array, or a host array copied in)."""
    target.copy_to_device(to_backend(source, target.dtype))


@cuda.jit
def _gather_kernel(X, rows, out):
    """out[i] = X[rows[i]] for 2-D X and out, the indices clipped to X's rows."""
    n, last = out.shape[1], X.shape[0] - 1
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        i, j = k // n, k % n
        out[i, j] = X[min(max(rows[i], 0), last), j]


def take_rows(X, rows, out):
    """out = X[rows] (a mini-batch), rows: integer indices (clipped to X's rows), X: (m, n) or
    (m,) such as labels; ``out`` None allocates it."""
    Xd = device_view(X)
    if out is None:
        out = cuda.device_array((len(rows),) + Xd.shape[1:], Xd.dtype)
    as_2d = (lambda a: a.reshape(a.shape[0], 1)) if Xd.ndim == 1 else (lambda a: a)
    blocks, threads = stride_grid(out.size)
    _gather_kernel[blocks, threads](as_2d(Xd), to_backend(rows, np.int64), as_2d(device_view(out)))
    return out


def sum_squares(a):
    """sum(a^2) by the column-sum reduction on a (size / COLS, COLS) view of the flat array (and
    a (rest, 1) view of the elements left over), then of each view's column sums, on the
    device: a Python float (``Pending`` inside ``kernel_scope`` on a device array)."""
    size = device_view(a).size if is_device_array(a) else np.size(a)
    cols = config.CUDA_REDUCE_COLS
    body = size // cols * cols
    parts = [(lo, hi, width) for lo, hi, width in ((0, body, cols), (body, size, 1)) if hi > lo]
    call = DeviceCall(a, values=len(parts))
    values = flat(call.read(a))
    for i, (lo, hi, width) in enumerate(parts):
        sums = column_sums(SQUARES, values[lo:hi].reshape((hi - lo) // width, width), call.bad)
        total = call.values_out[i:i + 1].reshape(1, 1)
        column_sums(SUM, sums.reshape(width, 1), call.bad, out=total)
    call.finish()
    return sum((call.number(i) for i in range(len(parts))), 0.0)
