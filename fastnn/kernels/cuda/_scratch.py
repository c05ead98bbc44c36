"""Device buffers reused from one kernel call to the next, one set per thread, so that a call
allocates nothing after the first of its kind:

- ``counter()``: the int32 NaN/inf counter of a call (``DeviceCall``), zero. A call gives its
  counter back (``give_back``) when it read zero from it, so a reused counter is always zero; a
  counter that counted something is dropped.
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


def counter():
    """A device int32 array of one element holding 0."""
    free = _pool("counters")
    return free.pop() if free else cuda.to_device(np.zeros(1, np.int32))


def give_back(d):
    """Return a counter that holds 0 for a later call."""
    _pool("counters").append(d)


def scratch(tag, shape, dtype):
    """The thread's scratch array named ``tag`` of this shape and dtype (allocated once)."""
    key = (tag, tuple(shape), np.dtype(dtype))
    pool = _pool("scratch")
    d = pool.get(key)
    if d is None:
        d = pool[key] = cuda.device_array(shape, dtype)
    return d
