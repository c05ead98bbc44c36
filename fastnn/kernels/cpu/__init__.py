"""Numba CPU backend: the same functions and arguments as ``fastnn.kernels.reference``.

``kernel_scope``: a context manager for a run of kernel calls (a training step) that pins SciPy's
BLAS to one thread once for all of them (each kernel otherwise pins and restores it itself) and
runs them on the number of Numba threads that recent runs found fastest (``_threads``: fewer
when other processes keep cores busy).
Arrays are host NumPy arrays, so the allocation, transfer and dropout functions are the
reference's (``fastnn.kernels._host_arrays``). ``BLAS_PROVIDER``: which BLAS the matrix products
call (oneMKL or SciPy's OpenBLAS, see ``fastnn.config.BLAS``), as a line of text.
"""
from fastnn.kernels._host_arrays import (
    assign,
    copy,
    count_binary_correct,
    dropout_backward,
    dropout_forward,
    empty,
    on_device,
    sum_squares,
    take_rows,
    to_backend,
    to_host,
    zeros,
)
from fastnn.kernels.cpu._blas import PROVIDER_INFO as BLAS_PROVIDER
from fastnn.kernels.cpu._blas import single_threaded_blas
from fastnn.kernels.cpu._threads import adaptive_threads, adapts
from fastnn.kernels.cpu.batchnorm import batchnorm_backward, batchnorm_forward
from fastnn.kernels.cpu.dense import (
    activation_backward,
    activation_forward,
    dense_backward,
    dense_forward,
)
from fastnn.kernels.cpu.losses import mean_squared_error, sigmoid_cross_entropy
from fastnn.kernels.cpu.optim import (
    adam_update,
    add_scaled,
    momentum_update,
    rmsprop_update,
    sgd_update,
)
from fastnn.kernels.cpu.softmax import (
    count_correct,
    hardmax,
    log_softmax,
    softmax,
    softmax_cross_entropy,
)


class _KernelScope:
    """``single_threaded_blas`` and the thread-count chooser around a run of kernel calls."""

    def __enter__(self):
        single_threaded_blas.__enter__()
        try:
            adaptive_threads.__enter__()
        except BaseException:
            single_threaded_blas.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            adaptive_threads.__exit__(exc_type, exc, tb)
        finally:
            single_threaded_blas.__exit__(exc_type, exc, tb)
        return False


kernel_scope = _KernelScope()

# The kernels that run in parallel choose their thread count when called on their own.
activation_backward, activation_forward = adapts(activation_backward), adapts(activation_forward)
dense_backward, dense_forward = adapts(dense_backward), adapts(dense_forward)
batchnorm_backward, batchnorm_forward = adapts(batchnorm_backward), adapts(batchnorm_forward)
adam_update, momentum_update = adapts(adam_update), adapts(momentum_update)
rmsprop_update, sgd_update = adapts(rmsprop_update), adapts(sgd_update)
log_softmax, softmax = adapts(log_softmax), adapts(softmax)
hardmax, softmax_cross_entropy = adapts(hardmax), adapts(softmax_cross_entropy)
mean_squared_error = adapts(mean_squared_error)
sigmoid_cross_entropy = adapts(sigmoid_cross_entropy)

__all__ = ["BLAS_PROVIDER", "activation_backward", "activation_forward", "adam_update",
           "add_scaled", "assign", "batchnorm_backward", "batchnorm_forward", "copy",
           "count_binary_correct", "count_correct", "dense_backward", "dense_forward",
           "dropout_backward", "dropout_forward", "empty", "hardmax", "kernel_scope", "log_softmax",
           "mean_squared_error", "momentum_update", "on_device", "rmsprop_update", "sgd_update",
           "sigmoid_cross_entropy", "softmax", "softmax_cross_entropy", "sum_squares", "take_rows",
           "to_backend", "to_host", "zeros"]
