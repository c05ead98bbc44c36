"""Device functions shared by the CUDA kernels: activations, NaN/inf counting.

They keep the arrays' precision: ``zero`` and ``one`` come in typed by the calling kernel
(``A.dtype.type(0)``), since a bare literal would promote float32 arithmetic to float64.
"""
import math

from numba import cuda

from fastnn.kernels.base import RELU, SIGMOID, TANH


@cuda.jit(device=True)
def nonfinite(x):
    """1 when x is NaN or +-inf, else 0."""
    return 0 if math.isfinite(x) else 1


@cuda.jit(device=True)
def add_count(bad, count):
    """bad[0] += count, atomically, skipped when count is 0 (the common case)."""
    if count != 0:
        cuda.atomic.add(bad, 0, count)


@cuda.jit(device=True)
def activate(z, act, zero, one):
    """g(z) for act in LINEAR, RELU (max(z, 0)), TANH, SIGMOID (1 / (1 + e^-z))."""
    if act == RELU:
        return z if z > zero else zero
    if act == TANH:
        return math.tanh(z)
    if act == SIGMOID:  # (exp of a negative argument only: no overflow, in the simulator too)
        if z >= zero:
            return one / (one + math.exp(-z))
        e = math.exp(z)
        return e / (one + e)
    return z


@cuda.jit(device=True)
def activation_grad(da, a, act, zero, one):
    """dz = da * g'(z) with g' from a = g(z): relu 1[a > 0], tanh 1 - a^2, sigmoid a (1 - a).
    relu keeps a NaN of da visible where the unit is off (zero * da)."""
    if act == RELU:
        return da if a > zero else zero * da
    if act == TANH:
        return da * (one - a * a)
    if act == SIGMOID:
        return da * (a * (one - a))
    return da
