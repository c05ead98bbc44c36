"""Chooses the kernel backend: the one place that decides.

"numpy" is the NumPy reference (``fastnn.kernels.reference``); "cpu" the Numba CPU kernels
(``fastnn.kernels.cpu``, the default). The default comes from ``FASTNN_BACKEND`` or
``set_default``; every kernel also takes ``backend=`` per call.
"""
import importlib

from fastnn import config

BACKENDS = {"numpy": "fastnn.kernels.reference", "cpu": "fastnn.kernels.cpu"}

_default = config.DEFAULT_BACKEND


def _check(name):
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")


def get(name=None):
    """The module implementing the kernels for backend ``name`` (None: the default)."""
    name = _default if name is None else name
    _check(name)
    return importlib.import_module(BACKENDS[name])


def set_default(name):
    """Make ``name`` the backend used when a kernel is called without ``backend=``."""
    global _default
    _check(name)
    _default = name


def get_default():
    """The name of the default backend."""
    return _default
