"""fastnn: Numba-accelerated neural-network kernels and a thin model API on top of them."""
from fastnn import kernels
from fastnn.backend import get_default as get_backend, set_default as set_backend

__version__ = "0.1.0"

__all__ = ["kernels", "get_backend", "set_backend", "__version__"]
