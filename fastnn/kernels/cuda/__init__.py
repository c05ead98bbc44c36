"""Numba CUDA backend: the same functions and arguments as ``fastnn.kernels.reference`` (``out=``
buffers included), device dropout, and the array functions a model needs
(``fastnn.kernels._host_arrays`` for device arrays).

Every kernel takes host NumPy arrays (copied in and out) or device arrays (Numba device arrays,
or anything with ``__cuda_array_interface__`` such as CuPy), and returns the kind it was given
(see ``_transfer``). Importing this package needs no GPU and does not touch one; ``require_gpu()``
says why the backend cannot run, and every kernel calls it. Tunables: ``fastnn.config.CUDA_*``.
``kernel_scope`` (a context for a run of kernel calls, as in the other backends) defers the
NaN/inf checks of the calls inside it to its end: one wait for the GPU instead of one per call
(``checks_now()`` suspends that for the calls inside it).
"""

from fastnn.kernels.cuda._device import gpu_available, is_simulator, require_gpu
from fastnn.kernels.cuda._device_arrays import (
    assign,
    copy,
    empty,
    sum_squares,
    take_rows,
    to_backend,
    to_host,
    zeros,
)
from fastnn.kernels.cuda._transfer import deferred_checks
from fastnn.kernels.cuda.batchnorm import batchnorm_backward, batchnorm_forward
from fastnn.kernels.cuda.dense import (
    activation_backward,
    activation_forward,
    dense_backward,
    dense_forward,
)
from fastnn.kernels.cuda.dropout import dropout_backward, dropout_forward
from fastnn.kernels.cuda.losses import (
    count_binary_correct,
    mean_squared_error,
    sigmoid_cross_entropy,
)
from fastnn.kernels.cuda.optim import (
    adam_update,
    add_scaled,
    momentum_update,
    rmsprop_update,
    sgd_update,
)
from fastnn.kernels.cuda.softmax import (
    count_correct,
    hardmax,
    log_softmax,
    softmax,
    softmax_cross_entropy,
)

kernel_scope = deferred_checks
#: A context inside ``kernel_scope`` whose calls check NaN/inf at once.
checks_now = deferred_checks.suspended

#: Arrays of this backend live in GPU memory (a model keeps its data there).
on_device = True

__all__ = ["activation_backward", "activation_forward", "adam_update", "add_scaled", "assign",
           "batchnorm_backward", "batchnorm_forward", "checks_now", "copy",
           "count_binary_correct", "count_correct",
           "dense_backward", "dense_forward", "dropout_backward", "dropout_forward", "empty",
           "gpu_available", "hardmax", "is_simulator", "kernel_scope", "log_softmax",
           "mean_squared_error", "momentum_update", "on_device", "require_gpu", "rmsprop_update",
           "sgd_update", "sigmoid_cross_entropy", "softmax", "softmax_cross_entropy",
           "sum_squares", "take_rows", "to_backend", "to_host", "zeros"]
