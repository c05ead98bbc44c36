"""Workspaces: arrays kept from one training step to the next, so that a step allocates nothing
large after the first (NumPy would otherwise allocate, and the OS zero, every result anew; on a
GPU every allocation would synchronize)."""
import math

import numpy as np


class Workspace:
    """Named arrays handed out as views of flat buffers grown to the largest size asked so far:
    ``array(name, shape, dtype)`` returns a C-contiguous array of that shape whose contents are
    left from its last use. A name's array is valid until that name is asked for again."""

    def __init__(self):
        self._buffers = {}
        self._views = {}  # (name, shape, dtype) -> the view last handed out (a step's fast path)

    def array(self, name, shape, dtype, empty=np.empty):
        """The array ``name`` of ``shape`` and ``dtype``; ``empty(n, dtype)`` allocates the
        buffer (a backend's allocator: device memory for "cuda")."""
        key = (name, tuple(shape), dtype)
        view = self._views.get(key)
        if view is not None:
            return view
        n = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < n or buffer.dtype != dtype:
            buffer = self._buffers[name] = empty(n, dtype)
            self._views = {k: v for k, v in self._views.items() if k[0] != name}
        view = self._views[key] = buffer[:n].reshape(shape)
        return view

    def clear(self):
        """Free every buffer (they are made again when next needed)."""
        self._buffers.clear()
        self._views.clear()
