"""Learning-rate schedules: functions of the epoch (or of the step) that return the learning rate.

Each factory returns a ``Schedule``: call it with an integer counter >= 0 to get lr as a float. Its
``unit`` says which counter it expects, "epoch" (the default: the trainer calls it with the epoch
number, 0 for the first epoch) or "step" (the global step count, the number of updates made so
far); every factory takes ``unit=``. The trainer then sets ``optimizer.lr = schedule(counter)``.

>>> from fastnn.optim import schedules
>>> decay = schedules.inverse_time(0.2, decay_rate=1.0)
>>> decay
inverse_time(lr0=0.2, decay_rate=1.0)
>>> [round(decay(epoch), 6) for epoch in range(4)]
[0.2, 0.1, 0.066667, 0.05]
>>> schedules.exponential(0.1, base=0.95)(2)  # 0.1 * 0.95^2
0.09025
"""
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Literal

__all__ = ["Schedule", "constant", "exponential", "inverse_sqrt", "inverse_time",
           "piecewise_constant", "staircase"]

UNITS = ("epoch", "step")
#: The type of a ``unit=`` argument.
Unit = Literal["epoch", "step"]


class Schedule:
    """lr = formula(counter) for an integer counter >= 0 (the epoch or the step, see ``unit``).

    ``name`` and ``params`` make the repr, e.g. ``exponential(lr0=0.1, base=0.95)``; ``formula`` is
    the function of the counter.
    """

    def __init__(self, name: str, formula: Callable[[int], float], unit: Unit = "epoch",
                 **params):
        self.name, self.formula, self.unit, self.params = name, formula, _unit(name, unit), params

    def __call__(self, counter: int) -> float:
        if not isinstance(counter, numbers.Integral) or isinstance(counter, bool):
            raise TypeError(f"{self!r}: the {self.unit} must be an integer, got "
                            f"{type(counter).__name__}")
        if counter < 0:
            raise ValueError(f"{self!r}: the {self.unit} must be >= 0, got {counter}")
        if counter >= 2 ** 63:  # (beyond, the formulas' floats overflow)
            raise ValueError(f"{self!r}: the {self.unit} must be < 2**63, got {counter}")
        return float(self.formula(int(counter)))

    def __repr__(self):
        args = [f"{k}={v!r}" for k, v in self.params.items()]
        if self.unit != "epoch":
            args.append(f"unit={self.unit!r}")
        return f"{self.name}({', '.join(args)})"


# --- argument checks -----------------------------------------------------------------------------

def _unit(fn, unit):
    if unit not in UNITS:
        raise ValueError(f"{fn}: unit must be one of {', '.join(UNITS)}, got {unit!r}")
    return unit


def _number(fn, name, value, low, high=math.inf, low_open=False, high_open=True):
    """A finite real number in the interval (low, high) with the given ends open or closed."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(value).__name__}")
    x = float(value)
    above = low < x if low_open else low <= x
    below = x < high if high_open else x <= high
    if not (above and below and math.isfinite(x)):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{fn}: {name} must be a finite number in {interval}, got {value!r}")
    return x


def _lr0(fn, lr0):
    return _number(fn, "lr0", lr0, 0.0, low_open=True)


def _count(fn, name, value):
    """An integer >= 1 (an interval or a step size, in epochs or steps)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{fn}: {name} must be >= 1, got {value!r}")
    return int(value)


# --- factories -----------------------------------------------------------------------------------

def constant(lr0: float, *, unit: Unit = "epoch") -> Schedule:
    """lr = lr0 at every epoch."""
    lr0 = _lr0("constant", lr0)
    return Schedule("constant", lambda _: lr0, unit, lr0=lr0)


def inverse_time(lr0: float, decay_rate: float, interval: int = 1, *,
                 unit: Unit = "epoch") -> Schedule:
    """Inverse-time decay: lr = lr0 / (1 + decay_rate * floor(epoch / interval)).

    With ``interval=1`` (the default) this is lr0 / (1 + decay_rate * epoch); a larger interval
    gives the fixed-interval form, which lowers lr once every ``interval`` epochs.
    decay_rate >= 0, interval an integer >= 1.
    """
    fn = "inverse_time"
    lr0, decay_rate = _lr0(fn, lr0), _number(fn, "decay_rate", decay_rate, 0.0)
    interval = _count(fn, "interval", interval)
    params = dict(lr0=lr0, decay_rate=decay_rate)
    if interval != 1:
        params["interval"] = interval
    return Schedule(fn, lambda e: lr0 / (1.0 + decay_rate * (e // interval)), unit, **params)


def exponential(lr0: float, base: float = 0.95, *, unit: Unit = "epoch") -> Schedule:
    """Exponential decay: lr = lr0 * base^epoch, 0 < base <= 1 (the course uses 0.95)."""
    fn = "exponential"
    lr0, base = _lr0(fn, lr0), _number(fn, "base", base, 0.0, 1.0, low_open=True, high_open=False)
    return Schedule(fn, lambda e: lr0 * base ** e, unit, lr0=lr0, base=base)


def inverse_sqrt(lr0: float, k: float = 1.0, *, unit: Unit = "epoch") -> Schedule:
    """lr = lr0 * k / sqrt(max(epoch, 1)), k > 0: epoch 0 gets the rate of epoch 1 (lr0 * k).

    With ``unit="step"`` this is lr0 * k / sqrt(t), t the step count (t = 0 counts as 1).
    """
    fn = "inverse_sqrt"
    lr0, k = _lr0(fn, lr0), _number(fn, "k", k, 0.0, low_open=True)
    return Schedule(fn, lambda e: lr0 * k / math.sqrt(max(e, 1)), unit, lr0=lr0, k=k)


def staircase(lr0: float, factor: float, step_size: int, *, unit: Unit = "epoch") -> Schedule:
    """Step decay: lr = lr0 * factor^floor(epoch / step_size), 0 < factor <= 1, step_size an
    integer >= 1 (e.g. halve lr every 10 epochs: factor=0.5, step_size=10)."""
    fn = "staircase"
    lr0 = _lr0(fn, lr0)
    factor = _number(fn, "factor", factor, 0.0, 1.0, low_open=True, high_open=False)
    step_size = _count(fn, "step_size", step_size)
    return Schedule(fn, lambda e: lr0 * factor ** (e // step_size), unit, lr0=lr0, factor=factor,
                    step_size=step_size)


def piecewise_constant(boundaries: Sequence[int], values: Sequence[float], *,
                       unit: Unit = "epoch") -> Schedule:
    """Staircase with explicit boundaries: lr = values[i] for boundaries[i-1] <= epoch <
    boundaries[i], i.e. values[0] before boundaries[0] and values[-1] from boundaries[-1] on.

    boundaries: strictly increasing integers >= 1; values: one more than boundaries, each > 0.
    E.g. piecewise_constant([10, 20], [0.1, 0.01, 0.001]).
    """
    fn = "piecewise_constant"
    if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
        raise TypeError(f"{fn}: boundaries and values must be lists, got "
                        f"{type(boundaries).__name__} and {type(values).__name__}")
    boundaries = [_count(fn, f"boundaries[{i}]", b) for i, b in enumerate(boundaries)]
    values = [_number(fn, f"values[{i}]", v, 0.0, low_open=True) for i, v in enumerate(values)]
    if any(b1 >= b2 for b1, b2 in zip(boundaries, boundaries[1:])):
        raise ValueError(f"{fn}: boundaries must be strictly increasing, got {boundaries}")
    if len(values) != len(boundaries) + 1:
        raise ValueError(f"{fn}: values must have one more entry than boundaries (one rate per "
                         f"interval): got {len(values)} values for {len(boundaries)} boundaries")

    def formula(e):
        return values[sum(e >= b for b in boundaries)]

    return Schedule(fn, formula, unit, boundaries=boundaries, values=values)
