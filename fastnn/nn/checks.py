"""Argument checks shared by the layers and the model: each raises TypeError or
ValueError naming the function (``fn``) and the argument, with what was expected and received."""
import math
import numbers

import numpy as np

from fastnn.kernels.base import is_device_array, to_host


def number(fn, name, value, low, high, low_open=False, high_open=False):
    """``value`` as a float, checked to be a real number in the interval [low, high] (open at an
    end where asked)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not (math.isfinite(value) and (low < value if low_open else low <= value)
            and (value < high if high_open else value <= high)):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{fn}: {name} must be in {interval}, got {value!r}")
    return value


def l2(fn, l2):
    """The L2 factor lambda: a finite number >= 0."""
    if not (isinstance(l2, numbers.Real) and not isinstance(l2, bool) and l2 >= 0
            and math.isfinite(l2)):
        raise ValueError(f"{fn}: l2 must be a number >= 0, got {l2!r}")
    return float(l2)


def exact_array(fn, name, value, shape, dtype):
    """``value`` as a host array of exactly ``shape`` and ``dtype``, finite (and >= 0 for a
    running variance), for ``set_weights``."""
    if is_device_array(value):
        value = to_host(value)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a NumPy array, got {type(value).__name__}")
    if value.shape != tuple(shape) or value.dtype != dtype:
        raise ValueError(f"{fn}: {name} must have shape {tuple(shape)} and dtype {dtype}, got "
                         f"shape {value.shape} and dtype {value.dtype}")
    if not np.isfinite(value).all():
        raise ValueError(f"{fn}: {name} contains NaN or inf")
    if name.endswith("running_var") and (value < 0).any():
        raise ValueError(f"{fn}: {name} must be >= 0, got a minimum of {value.min()}")
    return value


def integer(fn, name, value, low):
    """An integer >= low (not a bool)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{fn}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def length(seq):
    """ "of length n" for a message, or "(no length)"."""
    return f"of length {len(seq)}" if hasattr(seq, "__len__") else "(no length)"


def scheduled_lr(fn, schedule, when, optimizer):
    """schedule(when), checked to be a valid learning rate (a ValueError naming the schedule)."""
    lr = schedule(when)
    try:
        return optimizer.hyperparameters["lr"](fn, "lr", lr)
    except (TypeError, ValueError):
        unit = getattr(schedule, "unit", "epoch")
        raise ValueError(f"{fn}: the schedule {schedule!r} returned lr = {lr!r} at {unit} "
                         f"{when}; a learning rate must be a finite number > 0 (a decaying "
                         f"schedule may have underflowed to 0)") from None
