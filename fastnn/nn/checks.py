"""Argument checks shared by the layers, the model and the training loop: each raises TypeError
or ValueError naming the function (``fn``) and the argument, with what was expected and received.
``inputs`` and ``labels`` check a data set X (n_samples, n_features) and its class labels y."""
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


def host_or_device(a, kernels):
    """(a, True) as a NumPy array, or (a, False) as a device array when a is one and the backend
    ``kernels`` keeps its arrays on the device (a device array for a host backend is copied to
    the host)."""
    if not is_device_array(a):
        return np.asarray(a), True
    return (kernels.to_backend(a), False) if kernels.on_device else (to_host(a), True)


def inputs(fn, X, dtype, kernels, n_features=None, source="the model was built for",
           finite=True):
    """X as a C-contiguous array of ``dtype`` with ``n_features`` columns (None: any number;
    ``source`` says where that number comes from). NaN or inf is looked for only when
    ``finite`` (else the kernels find it). A device array stays on the device for a device
    backend ``kernels`` (its dtype must then be ``dtype``: a conversion would copy it)."""
    X, host, dtype = *host_or_device(X, kernels), np.dtype(dtype)
    if np.dtype(X.dtype).kind not in "fiu" or len(X.shape) != 2:
        raise ValueError(f"{fn}: X must be a 2-D real array (n_samples, n_features), got "
                         f"shape {X.shape} and dtype {X.dtype}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{fn}: X is empty (shape {X.shape}: no rows or no features)")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{fn}: X has {X.shape[1]} features, {source} {n_features}")
    original = X
    if host:
        X = np.ascontiguousarray(X, dtype=dtype)
    elif X.dtype != dtype:
        raise TypeError(f"{fn}: X on the device must have the model's dtype {dtype}, got "
                        f"{X.dtype}")
    narrowed = (host and original.dtype.kind == "f"
                and original.dtype.itemsize > dtype.itemsize)
    if finite or narrowed:  # (one pass over the converted values)
        values = X if host else kernels.to_host(X)
        if not np.isfinite(values).all():
            if narrowed and np.isfinite(original).all():  # finite, but too large for dtype
                raise ValueError(f"{fn}: X holds values up to {np.abs(original).max():.3g}, "
                                 f"beyond the range of the model's dtype {dtype}")
            if finite:
                where = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
                raise ValueError(f"{fn}: X contains NaN or inf (first at index {where})")
    return X


def labels(fn, y, n_rows, n_classes, kernels, device_range=True):
    """y as 1-D integer class labels in [0, n_classes), one per row of X (``n_rows``): an
    intp array on the host, or the device array itself for a device backend ``kernels``.
    ``device_range=False`` leaves the range of labels on the device to the kernels (no copy to
    the host; the CUDA kernels raise ValueError)."""
    y, host = host_or_device(y, kernels)
    if len(y.shape) != 1 or np.dtype(y.dtype).kind not in "iu":
        raise ValueError(f"{fn}: y must be 1-D integer class labels, got shape {y.shape} and "
                         f"dtype {y.dtype}")
    if y.shape[0] != n_rows:
        raise ValueError(f"{fn}: X has {n_rows} rows but y has {y.shape[0]} labels")
    if not host and not device_range:
        return y
    values = y if host else kernels.to_host(y)  # (device labels: a small copy)
    if values.min() < 0 or values.max() >= n_classes:
        bad = int(values.min()) if values.min() < 0 else int(values.max())
        raise ValueError(f"{fn}: label {bad} is outside [0, {n_classes}), the model's "
                         f"{n_classes} outputs")
    return y.astype(np.intp, copy=False) if host else y


def value_targets(fn, y, n_rows, n_outputs, dtype, kernels, unit_interval=False):
    """y as finite real targets (n_rows, n_outputs) of ``dtype`` ((n_rows,) is taken for one
    output), C-contiguous; with ``unit_interval`` each in [0, 1] (labels 0/1, or
    probabilities). A host array for a host backend; a device array stays on the device for a
    device backend ``kernels`` (its dtype must then be ``dtype``; its values are checked on a
    host copy)."""
    y, host = host_or_device(y, kernels)
    dtype = np.dtype(dtype)
    if np.dtype(y.dtype).kind not in "fiub":
        raise ValueError(f"{fn}: y must be real or boolean targets, got dtype {y.dtype}")
    if len(y.shape) == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if len(y.shape) != 2 or y.shape[0] != n_rows or y.shape[1] != n_outputs:
        one = f" or ({n_rows},)" if n_outputs == 1 else ""
        raise ValueError(f"{fn}: y must have shape ({n_rows}, {n_outputs}){one} (a target per "
                         f"row of X and per output of the model), got shape {tuple(y.shape)}")
    if host:
        y = np.ascontiguousarray(y, dtype=dtype)
    elif y.dtype != dtype:
        raise TypeError(f"{fn}: y on the device must have the model's dtype {dtype}, got "
                        f"{y.dtype}")
    values = y if host else kernels.to_host(y)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{fn}: y contains NaN or inf ({int(bad.sum())} values, first at row "
                         f"{int(np.argwhere(bad)[0][0])})")
    if unit_interval:
        outside = (values < 0) | (values > 1)
        if outside.any():
            raise ValueError(f"{fn}: y must be in [0, 1] (0/1 labels or probabilities), got "
                             f"{int(outside.sum())} values outside, first "
                             f"{values[outside][0]!r} at row {int(np.argwhere(outside)[0][0])}")
    return y
