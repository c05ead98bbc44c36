"""Layers, the Sequential model, initializers and callbacks (thin: they call fastnn.kernels)."""
from fastnn.nn.callbacks import Callback, EarlyStopping
from fastnn.nn.initializers import INITIALIZERS
from fastnn.nn.layers import Activation, BatchNorm, Dense, Dropout, Layer, ReLU, Sigmoid, Tanh
from fastnn.nn.model import History, Sequential, TrainingDivergedError
from fastnn.nn.saving import load

__all__ = ["Activation", "BatchNorm", "Callback", "Dense", "Dropout", "EarlyStopping", "History",
           "INITIALIZERS", "Layer", "ReLU", "Sequential", "Sigmoid", "Tanh",
           "TrainingDivergedError", "load"]
