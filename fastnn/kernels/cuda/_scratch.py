"""Device buffers reused from one kernel call to the next, one set per thread, so that a call
allocates nothing after the first of its kind:

- ``record()``: the float64 record of a call (``_transfer.Record``) with its count slots zero. A
  call gives its record back (``give_back``) when it read zero counts from it, so a reused record
  always counts from zero; one that counted something is dropped.
- ``zeros(tag, shape, dtype)``: an array that starts at zero and that every kernel using it
  leaves at zero (the tickets of a last-block reduction).
- ``scratch(tag, shape, dtype)``: an array whose contents do not outlive the call that fills it
  (per-block partial sums, read back or reduced before the call returns). Launches run in order
  on the default stream, so the next call's writes come after this call's reads.
"""
import threading

import numpy as np
from numba import cuda

_local = threading.local()


def _pool(name):
    pool = getattr(_local, name, None)
    if pool is None:
        pool = {} if name == "scratch" else []
        setattr(_local, name, pool)
    return pool


#: The slots of a record: counts (added atomically by the kernels), then the values they store.
NONFINITE, BAD_LABELS, FIRST_VALUE = 0, 1, 2
RECORD_SIZE = 16


def record():
    """A float64 device array of ``RECORD_SIZE`` whose count slots hold 0."""
    free = _pool("records")
    return free.pop() if free else cuda.to_device(np.zeros(RECORD_SIZE))


def give_back(d):
    """Return a record whose count slots hold 0 for a later call."""
    _pool("records").append(d)


def scratch(tag, shape, dtype):
    """The thread's scratch array named ``tag`` of this shape and dtype (allocated once)."""
    return _get(tag, shape, dtype, cuda.device_array)


def zeros(tag, shape, dtype):
    """The thread's array named ``tag`` of this shape and dtype, zero when first made (its users
    leave it at zero)."""
    return _get(tag, shape, dtype, lambda shape, dtype: cuda.to_device(np.zeros(shape, dtype)))


def _get(tag, shape, dtype, make):
    key = (tag, tuple(shape), np.dtype(dtype))
    pool = _pool("scratch")
    d = pool.get(key)
    if d is None:
        d = pool[key] = make(shape, dtype)
    return d
