"""Numba CPU backend: the same functions and arguments as ``fastnn.kernels.reference``."""
from fastnn.kernels.cpu.batchnorm import batchnorm_backward, batchnorm_forward
from fastnn.kernels.cpu.dense import dense_backward, dense_forward
from fastnn.kernels.cpu.softmax import hardmax, log_softmax, softmax, softmax_cross_entropy

__all__ = ["batchnorm_backward", "batchnorm_forward", "dense_backward", "dense_forward", "hardmax",
           "log_softmax", "softmax", "softmax_cross_entropy"]
