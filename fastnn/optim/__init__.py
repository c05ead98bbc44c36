"""Optimizers, learning-rate schedules and exponentially weighted averages.

The optimizers update any list of NumPy arrays in place from their gradients, model or not: they
form a framework for minimizing a function, not a part of one model. Minimizing
J(w) = w^2 - 10w + 25 = (w - 5)^2, whose gradient is 2w - 10, from w = 0:

>>> import numpy as np
>>> from fastnn.optim import GD, Adam
>>> w = np.zeros(1)
>>> gd = GD(lr=0.01)
>>> gd.step([w], [2 * w - 10])
>>> w  # 0 - 0.01 * (-10)
array([0.1])
>>> for _ in range(1000):
...     gd.step([w], [2 * w - 10])
>>> float(w[0])  # w_k = 5 - 5 * 0.98^k after k steps: 5 - 5 * 0.98**1001, about 4.99999
4.999999991753459
>>> w = np.zeros(1)
>>> adam = Adam(lr=0.1)
>>> for _ in range(3000):
...     adam.step([w], [2 * w - 10])
>>> bool(abs(w[0] - 5) < 1e-3)
True

Classes: ``GD``, ``Momentum``, ``RMSprop``, ``Adam`` (one base class, ``Optimizer``); ``get`` makes
one from its name (``OPTIMIZERS``). Schedules
(``fastnn.optim.schedules``): ``constant``, ``inverse_time``, ``exponential``, ``inverse_sqrt``,
``staircase``, ``piecewise_constant``, each a function of the epoch (or step) giving lr, to be set
with ``optimizer.lr = schedule(epoch)``. ``ewa`` smooths a series.
"""
from fastnn.optim.ewa import ewa
from fastnn.optim.optimizers import GD, OPTIMIZERS, Adam, Momentum, Optimizer, RMSprop, get
from fastnn.optim.schedules import (
    Schedule,
    constant,
    exponential,
    inverse_sqrt,
    inverse_time,
    piecewise_constant,
    staircase,
)

__all__ = ["OPTIMIZERS", "GD", "Adam", "Momentum", "Optimizer", "RMSprop", "Schedule", "constant",
           "ewa", "exponential", "get", "inverse_sqrt", "inverse_time", "piecewise_constant",
           "staircase"]
