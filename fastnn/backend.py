"""Chooses the kernel backend: the one place that decides.

"numpy" is the NumPy reference (``fastnn.kernels.reference``); "cpu" the Numba CPU kernels
(``fastnn.kernels.cpu``, the default); "cuda" the Numba CUDA kernels (``fastnn.kernels.cuda``),
which need an NVIDIA GPU and numba-cuda (``pip install "fastnn[cuda]"``) or Numba's CUDA
simulator: choosing it elsewhere raises a RuntimeError that says why. The default comes from
``FASTNN_BACKEND`` or ``set_default``; every kernel also takes ``backend=`` per call.
"""
import importlib

from fastnn import config

BACKENDS = {"numpy": "fastnn.kernels.reference", "cpu": "fastnn.kernels.cpu",
            "cuda": "fastnn.kernels.cuda"}

_default = config.DEFAULT_BACKEND


def _check(name):
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")


_modules = {}  # name -> module, for backends whose hardware check passed


def get(name=None):
    """The module implementing the kernels for backend ``name`` (None: the default); for "cuda",
    a RuntimeError saying why when no GPU (or simulator) can run it."""
    name = _default if name is None else name
    module = _modules.get(name)
    if module is None:
        _check(name)
        module = importlib.import_module(BACKENDS[name])
        if hasattr(module, "require_gpu"):
            module.require_gpu()
        _modules[name] = module
    return module


def set_default(name):
    """Make ``name`` the backend used when a kernel is called without ``backend=``."""
    global _default
    _check(name)
    get(name)  # fails now, not at the first kernel call, when the backend cannot run
    _default = name


def get_default():
    """The name of the default backend."""
    return _default
