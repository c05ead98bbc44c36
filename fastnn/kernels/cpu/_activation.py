"""Activations on one row segment, shared by the kernels that fuse them (dense, batch norm).

Each branch on the activation code is taken once per row, outside the element loop, so that every
loop vectorizes. Codes come from ``fastnn.kernels._names``.
"""
from numba.extending import register_jitable

from fastnn.kernels._names import RELU, SIGMOID, TANH
from fastnn.kernels.cpu import _math


@register_jitable
def activate_in_place(row, act):
    """row <- g(row): relu max(z, 0), tanh, sigmoid 1 / (1 + e^-z); linear leaves it."""
    zero = row.dtype.type(0)
    if act == RELU:
        for j in range(row.shape[0]):
            row[j] = row[j] if row[j] > zero else zero
    elif act == TANH:
        for j in range(row.shape[0]):
            row[j] = _math.tanh(row[j])
    elif act == SIGMOID:
        for j in range(row.shape[0]):
            row[j] = _math.sigmoid(row[j])


@register_jitable
def grad_z_row(da, a, dz, act):
    """dz = da * g'(z) with g' from a = g(z): relu 1[a > 0], tanh 1 - a^2, sigmoid a (1 - a);
    linear copies da. dz may be da itself (computed in place)."""
    zero, one = a.dtype.type(0), a.dtype.type(1)
    if act == RELU:  # zero * da keeps a NaN of da visible where the unit is off
        for j in range(dz.shape[0]):
            dz[j] = da[j] if a[j] > zero else zero * da[j]
    elif act == TANH:
        for j in range(dz.shape[0]):
            dz[j] = da[j] * (one - a[j] * a[j])
    elif act == SIGMOID:
        for j in range(dz.shape[0]):
            dz[j] = da[j] * (a[j] * (one - a[j]))
    else:
        for j in range(dz.shape[0]):
            dz[j] = da[j]
