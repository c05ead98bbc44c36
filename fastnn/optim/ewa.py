"""Exponentially weighted averages of a series (the course's smoothing of noisy values)."""
import numbers
from collections.abc import Sequence

import numpy as np

__all__ = ["ewa"]


def ewa(values: Sequence[float], beta: float, bias_correction: bool = True) -> np.ndarray:
    """Exponentially weighted averages v_t = beta * v_{t-1} + (1 - beta) * x_t, v_0 = 0, for
    t = 1..n, divided by 1 - beta^t when ``bias_correction`` (so that the first averages are not
    pulled towards 0).

    values: a 1-D sequence of finite real numbers (x_1..x_n); beta in [0, 1) (about 1 / (1 - beta)
    values are averaged). Returns a float64 array of shape (n,).

    >>> ewa([1.0, 1.0, 1.0], 0.5, bias_correction=False)
    array([0.5  , 0.75 , 0.875])
    >>> ewa([1.0, 1.0, 1.0], 0.5)
    array([1., 1., 1.])
    """
    fn = "ewa"
    if not isinstance(beta, numbers.Real) or isinstance(beta, bool):
        raise TypeError(f"{fn}: beta must be a real number, got {type(beta).__name__}")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"{fn}: beta must be a number in [0, 1), got {beta!r}")
    if not isinstance(bias_correction, (bool, np.bool_)):
        raise TypeError(f"{fn}: bias_correction must be True or False, got {bias_correction!r}")
    x = np.asarray(values)
    if x.dtype.kind not in "iuf":
        raise TypeError(f"{fn}: values must be real numbers, got dtype {x.dtype}")
    if x.ndim != 1:
        raise ValueError(f"{fn}: values must be 1-D, got shape {x.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{fn}: values contains NaN or inf (first at index "
                         f"{int(np.argmin(np.isfinite(x)))})")
    from scipy.signal import lfilter  # (here: importing scipy.signal takes ~0.9 s)

    beta = float(beta)
    # lfilter runs the recursion v_t = (1 - beta) x_t + beta v_{t-1} in C, from v_0 = 0.
    v = lfilter([1.0 - beta], [1.0, -beta], x)
    if bias_correction:
        v /= 1.0 - beta ** np.arange(1, x.shape[0] + 1, dtype=np.float64)
    return v
