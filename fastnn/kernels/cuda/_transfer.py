"""Host and device arrays in and out of the CUDA kernels.

A kernel accepts NumPy arrays (copied to the device and back), Numba device arrays (used as they
are) and any object with ``__cuda_array_interface__``, such as CuPy arrays or PyTorch CUDA tensors
(viewed with ``cuda.as_cuda_array``, no copy). It returns NumPy arrays when every array argument
was a host array, and Numba device arrays when any was a device array. Device arrays must be
C-contiguous (the kernels see them as flat buffers). Shapes and dtypes are taken from the Numba
views (a PyTorch tensor's own ``dtype`` and ``size`` are not NumPy's).

``out=`` buffers of any kind are written into and returned as given (a host ``out`` gets the
result copied in). Arguments updated in place (running statistics, optimizer state) are updated
where they live: a host array gets its new values copied back once the kernels succeeded.

NaN/inf: each kernel counts what it meets into the call's counter, and ``finish`` reads it (which
waits for the GPU). Inside ``deferred_checks`` (the backend's ``kernel_scope``, which a model's
training step enters), calls on device arrays add to one counter that is read once, when the
scope is left: one wait per step instead of one per kernel call.
"""
import threading

import numpy as np
from numba import cuda

from fastnn.errors import NonFiniteError
from fastnn.kernels.base import device_view, is_device_array
from fastnn.kernels.cuda import _scratch
from fastnn.kernels.cuda._device import require_gpu


def flat(d):
    """The 1-D view of a C-contiguous device array."""
    return d.reshape(d.size)


class DeferredChecks:
    """A context manager (one object serves every thread; scopes nest): kernel calls on device
    arrays made inside add their NaN/inf counts to the scope's counter and do not wait to check
    it; leaving the scope without an exception reads the counter once and raises
    NonFiniteError when it is not zero. The scope's calls then still copy host arrays back and
    return results, so a caller that reads a value (a loss) on the way sees NaN there first."""

    def __init__(self):
        self._local = threading.local()

    def counter(self):
        """The counter of the innermost scope of this thread, or None outside any."""
        return getattr(self._local, "counter", None)

    def __enter__(self):
        local = self._local
        local.depth = getattr(local, "depth", 0) + 1
        if local.depth == 1:
            local.counter = _scratch.counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        local = self._local
        local.depth -= 1
        if local.depth:
            return False
        counter, local.counter = local.counter, None
        if exc_type is None:
            if counter.copy_to_host()[0]:
                raise NonFiniteError("NaN or inf in a kernel of this training step")
            _scratch.give_back(counter)
        return False  # (a counter that counted, or whose scope failed, is dropped)


deferred_checks = DeferredChecks()


class DeviceCall:
    """The transfers of one kernel call: ``read`` inputs, ``update`` in-place arguments,
    ``output`` buffers, then ``finish`` (raise on NaN/inf, copy back, return results)."""

    def __init__(self, *arrays, deferrable=True):
        """``deferrable=False``: check at ``finish`` even inside ``deferred_checks`` (a call
        that must undo its writes on NaN/inf, as an optimizer update does)."""
        require_gpu()
        self.on_host = not any(is_device_array(a) for a in arrays if a is not None)
        shared = None if self.on_host or not deferrable else deferred_checks.counter()
        self.deferred = shared is not None  # (checked when the scope is left)
        self.bad = _scratch.counter() if shared is None else shared  # NaN/inf count (0 at first)
        self._copy_back = []  # (device array, host array updated in place)
        self._given = {}      # id(device array) -> the ``out`` buffer it stands for

    def read(self, a, name="array"):
        """An input on the device (None stays None)."""
        return None if a is None else device_view(a, name)

    def update(self, a, name="array"):
        """An argument updated in place, on the device; a host one is copied back by finish."""
        d = device_view(a, name)
        if not is_device_array(a):
            self._copy_back.append((d, a))
        return d

    def output(self, out, shape, dtype, name="out"):
        """The device array a result is written to: ``out``'s memory when given, else new."""
        if out is None:
            return cuda.device_array(shape, dtype)
        on_device = is_device_array(out)
        if on_device:
            view = device_view(out, name)
        elif isinstance(out, np.ndarray) and out.flags.writeable and out.flags.c_contiguous:
            view = out
        else:
            raise TypeError(f"{name} must be a writable C-contiguous NumPy array or a device "
                            f"array, got {type(out).__name__}")
        if tuple(view.shape) != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(view.shape)}")
        if np.dtype(view.dtype) != np.dtype(dtype):
            raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {view.dtype}")
        d = view if on_device else cuda.device_array(shape, dtype)
        self._given[id(d)] = out
        return d

    def check(self):
        """Raise NonFiniteError when a kernel counted NaN or inf (waits for the kernels)."""
        if self.bad.copy_to_host()[0]:
            raise NonFiniteError

    def finish(self, *results):
        """``check``, copy in-place host arguments back, and return the results (one or a tuple;
        None stays None) as NumPy arrays, device arrays or the ``out`` buffers given. The
        counter, read zero, goes back for a later call; this call launches nothing more."""
        if not self.deferred or self._copy_back:  # (host arrays get only checked values)
            self.check()
        if not self.deferred:
            _scratch.give_back(self.bad)
        self.bad = None
        for d, host in self._copy_back:
            d.copy_to_host(host)
        returned = tuple(self._returned(d) for d in results)
        return returned[0] if len(returned) == 1 else returned

    def _returned(self, d):
        if d is None:
            return None
        out = self._given.get(id(d))
        if out is None:
            return d.copy_to_host() if self.on_host else d
        if not is_device_array(out):
            d.copy_to_host(out)
        return out


def split_out(out, count, name="out"):
    """The ``out=`` of a kernel with ``count`` results: None, or a tuple/list of that many
    buffers (each None or an array)."""
    if out is None:
        return (None,) * count
    if not isinstance(out, (tuple, list)) or len(out) != count:
        raise TypeError(f"{name} must be a tuple of {count} arrays (or None), got "
                        f"{type(out).__name__}")
    return tuple(out)
