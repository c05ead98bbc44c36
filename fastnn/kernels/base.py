"""The types and helpers that the public kernel API, every backend and the layers above share.

``ACTIVATIONS``: the activations a kernel can fuse (a CPU or CUDA kernel receives the index, named
by ``LINEAR``, ``RELU``, ``TANH``, ``SIGMOID``); ``Activation`` and ``Backend``: the types of the
``activation=`` and ``backend=`` arguments; ``BatchNormCache``: what ``batchnorm_backward``
needs from the forward pass; ``NonFiniteError``: the signal a backend raises on NaN or inf;
``is_device_array``, ``device_view`` and ``to_host``: CUDA device arrays told apart from host
arrays, viewed and copied back (``numba.cuda`` is imported only when a device array is met);
``OutermostScope``: the nesting per-thread context that a backend's ``kernel_scope`` is made of;
``run_kind``: names the kind of run a ``kernel_scope`` times (a model's training step).
"""
import contextlib
import threading
from typing import Literal, NamedTuple, Optional

import numpy as np

from fastnn.errors import NonFiniteError

__all__ = ["ACTIVATIONS", "Activation", "Backend", "BatchNormCache", "LINEAR", "NonFiniteError",
           "RELU", "SIGMOID", "TANH", "device_view", "is_device_array", "to_host"]

#: Activations a dense layer or batch norm can fuse after its work; a CPU or CUDA kernel
#: receives the index.
ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")
LINEAR, RELU, TANH, SIGMOID = range(len(ACTIVATIONS))

#: The type of an ``activation=`` argument (None means "linear").
Activation = Optional[Literal["linear", "relu", "tanh", "sigmoid"]]
#: The type of a ``backend=`` argument (None: the default backend, see ``fastnn.backend``).
Backend = Optional[Literal["numpy", "cpu", "cuda"]]


class BatchNormCache(NamedTuple):
    """What ``batchnorm_backward`` needs from the forward pass (the same for every backend).

    X: the input (m, n); gamma: (n,); mean, invstd: the statistics used to normalize, (n,)
    (batch statistics in training, running ones at inference); training: which of the two;
    activation: the fused activation g; A: the output g(Y) (m, n), from which g' is computed
    (None when g is linear).
    """
    X: np.ndarray
    gamma: np.ndarray
    mean: np.ndarray
    invstd: np.ndarray
    training: bool
    activation: str = "linear"
    A: np.ndarray = None


def is_device_array(a) -> bool:
    """A CUDA device array: a Numba device array or an object with ``__cuda_array_interface__``
    (a CuPy array, a PyTorch CUDA tensor)."""
    return bool(getattr(a, "__cuda_ndarray__", False)) or hasattr(a, "__cuda_array_interface__")


def device_view(a, name="array"):
    """``a`` on the device as a Numba device array: itself (a Numba device array), a view of its
    memory (an object with ``__cuda_array_interface__``, no copy) or a copy (a host array).
    Device arrays must be C-contiguous (TypeError naming ``name`` otherwise)."""
    from numba import cuda
    if not is_device_array(a):
        return cuda.to_device(np.ascontiguousarray(a))
    d = a if getattr(a, "__cuda_ndarray__", False) else cuda.as_cuda_array(a)
    if not d.is_c_contiguous():
        raise TypeError(f"{name}: device arrays must be C-contiguous, got strides {d.strides} "
                        f"for shape {d.shape}")
    return d


def to_host(a) -> np.ndarray:
    """``a`` as a NumPy array in host memory: a copy of a device array, a host array as it is."""
    return device_view(a).copy_to_host() if is_device_array(a) else np.asarray(a)


_run_kind = threading.local()


@contextlib.contextmanager
def run_kind(kind):
    """Name the kind of run that the kernel calls inside make (a hashable, e.g. a training step
    of one model at one batch size): a backend that learns from timing its runs (the CPU
    backend's thread count) keeps each kind's timings apart. Nests; the innermost name holds."""
    saved = getattr(_run_kind, "kind", None)
    _run_kind.kind = kind
    try:
        yield
    finally:
        _run_kind.kind = saved


def current_run_kind():
    """The kind named by the innermost ``run_kind`` of this thread, or None."""
    return getattr(_run_kind, "kind", None)


class OutermostScope:
    """A context manager that one object serves for every thread, whose scopes nest per thread:
    only a thread's outermost scope calls ``begin(local)`` when entered and
    ``end(local, exc_type)`` when left (``local``: that thread's namespace, for what the scope
    keeps). A backend's ``kernel_scope`` is one."""

    def __init__(self):
        self._local = threading.local()

    def begin(self, local):
        """The outermost scope is entered."""

    def end(self, local, exc_type):
        """The outermost scope is left (``exc_type``: the exception leaving it, or None)."""

    def __enter__(self):
        local = self._local
        local.depth = getattr(local, "depth", 0) + 1
        if local.depth == 1:
            try:
                self.begin(local)
            except BaseException:
                local.depth = 0
                raise
        return self

    def __exit__(self, exc_type, exc, tb):
        local = self._local
        local.depth -= 1
        if local.depth == 0:
            self.end(local, exc_type)
        return False
