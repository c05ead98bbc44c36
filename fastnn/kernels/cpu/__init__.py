"""Numba CPU backend: the same functions and arguments as ``fastnn.kernels.reference``.

``kernel_scope``: a context manager for a run of kernel calls (a training step) that pins SciPy's
BLAS to one thread once for all of them (each kernel otherwise pins and restores it itself).
"""
from fastnn.kernels.cpu._blas import single_threaded_blas as kernel_scope
from fastnn.kernels.cpu.batchnorm import batchnorm_backward, batchnorm_forward
from fastnn.kernels.cpu.dense import (activation_backward, activation_forward, dense_backward,
                                      dense_forward)
from fastnn.kernels.cpu.optim import adam_update, momentum_update, rmsprop_update, sgd_update
from fastnn.kernels.cpu.softmax import hardmax, log_softmax, softmax, softmax_cross_entropy

__all__ = ["activation_backward", "activation_forward", "adam_update", "batchnorm_backward",
           "batchnorm_forward", "dense_backward", "dense_forward", "hardmax", "kernel_scope",
           "log_softmax",
           "momentum_update", "rmsprop_update", "sgd_update", "softmax", "softmax_cross_entropy"]
