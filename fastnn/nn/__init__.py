"""Layers, the Sequential model, its training loop, saving, initializers and callbacks (thin: they
call fastnn.kernels)."""
from fastnn.errors import TrainingDivergedError
from fastnn.nn.callbacks import Callback, EarlyStopping
from fastnn.nn.initializers import INITIALIZERS
from fastnn.nn.layers import (
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    Layer,
    Normalization,
    ReLU,
    Sigmoid,
    Tanh,
)
from fastnn.nn.mlp import build_mlp
from fastnn.nn.model import Sequential
from fastnn.nn.saving import load
from fastnn.nn.training import History

__all__ = ["Activation", "BatchNorm", "Callback", "Dense", "Dropout", "EarlyStopping", "History",
           "INITIALIZERS", "Layer", "Normalization", "ReLU", "Sequential", "Sigmoid", "Tanh",
           "TrainingDivergedError", "build_mlp", "load"]
