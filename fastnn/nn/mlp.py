"""``build_mlp``: the batch-normalized MLP on which the command line's ``train`` job and
``fastnn.tune.MLPObjective`` (the trials of its ``tune`` job) train."""
from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

from fastnn.kernels.base import Backend
from fastnn.nn.layers import BatchNorm, Dense, Dropout, ReLU
from fastnn.nn.model import Sequential

__all__ = ["build_mlp"]


def build_mlp(hidden: Sequence[int], n_classes: int, dropout: float = 0.0, backend: Backend = None,
              dtype: DTypeLike = np.float32) -> Sequential:
    """Dense(h, no bias) -> BatchNorm -> ReLU [-> Dropout] per hidden width h, then Dense(n_classes)
    (the Dense bias is dropped before BatchNorm, whose beta replaces it)."""
    layers = []
    for width in hidden:
        layers += [Dense(width, use_bias=False), BatchNorm(), ReLU()]
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Dense(n_classes, init="glorot"))
    return Sequential(layers, backend=backend, dtype=dtype)
