"""``build_mlp``: the batch-normalized MLP on which the command line's ``train`` job and
``fastnn.tune.MLPObjective`` (the trials of its ``tune`` job) train."""
from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

from fastnn.kernels.base import Backend
from fastnn.nn.layers import BatchNorm, Dense, Dropout, Normalization, ReLU
from fastnn.nn.model import Sequential

__all__ = ["build_mlp"]


def build_mlp(hidden: Sequence[int], n_classes: int, dropout: float = 0.0, backend: Backend = None,
              dtype: DTypeLike = np.float32, loss: str = "softmax_cross_entropy",
              normalize: bool = False) -> Sequential:
    """[Normalization ->] Dense(h, no bias) -> BatchNorm -> ReLU [-> Dropout] per hidden width h,
    then Dense(n_classes) (the Dense bias is dropped before BatchNorm, whose beta replaces it).
    n_classes: the number of outputs (classes, labels or values, as the loss wants). normalize:
    standardize the inputs first (``Normalization``, learned from the training data at the first
    ``fit``). loss: the model's loss (``fastnn.nn.losses``)."""
    layers = [Normalization()] if normalize else []
    for width in hidden:
        layers += [Dense(width, use_bias=False), BatchNorm(), ReLU()]
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Dense(n_classes, init="glorot"))
    return Sequential(layers, loss=loss, backend=backend, dtype=dtype)
