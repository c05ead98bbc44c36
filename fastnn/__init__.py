"""fastnn: Numba-accelerated neural-network kernels and a thin model API on top of them."""
from fastnn import kernels
from fastnn.backend import get_default as get_backend
from fastnn.backend import set_default as set_backend
from fastnn.errors import NonFiniteError, TrainingDivergedError
from fastnn.gradcheck import gradcheck
from fastnn.nn import (
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    EarlyStopping,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    load,
)

__version__ = "0.1.0"

__all__ = ["Activation", "BatchNorm", "Dense", "Dropout", "EarlyStopping", "NonFiniteError", "ReLU",
           "Sequential", "Sigmoid", "Tanh", "TrainingDivergedError", "get_backend", "gradcheck",
           "kernels", "load", "set_backend", "__version__"]
