"""Search spaces: hyperparameter distributions, their sampling scales, grids and zooms, over Optuna.

Each distribution says which values a hyperparameter takes and in which scale they are drawn
uniformly; the scale is what lets a random search spend its trials well (a learning rate in
[1e-4, 1] drawn uniformly would put 90% of the trials in [0.1, 1]):

=============================  ==============================================  ===================
distribution                   value                                           Optuna parameter
=============================  ==============================================  ===================
``Uniform(low, high)``         x ~ U[low, high]                                name, linear
``LogUniform(low, high)``      10^r, r ~ U[log10 low, log10 high]              name, log
``OneMinusLogUniform(lo, hi)`` 1 - 10^r, r ~ U[log10(1 - hi), log10(1 - lo)]   "1-name" = 1 - x, log
``IntRange(low, high)``        an integer in [low, high] (log=True: log scale)  name
``Choice(options)``            one of ``options``                              name, categorical
=============================  ==============================================  ===================

``OneMinusLogUniform`` is for averaging coefficients: beta in [0.9, 0.999] means averaging over
1 / (1 - beta) = 10 to 1000 values, so it is 1 - beta that is drawn log-uniformly, in [1e-3, 1e-1]
(r in [-3, -1]). Optuna stores that parameter as "1-beta" (the value 1 - beta); the objective gets
beta.

A ``SearchSpace`` maps hyperparameter names to distributions. Its samples (``sample``) are made by
Optuna's ``RandomSampler`` or ``GridSampler`` and are lists of Optuna parameters ({"lr": 0.01,
"1-beta": 0.02}); ``values`` turns them into hyperparameters ({"lr": 0.01, "beta": 0.98}). Same
seed, same samples.

``digits_space`` is the search space of ``fastnn tune``: ``MLPObjective``'s lr, beta, hidden units,
L2 lambda (and layers) on the handwritten digits, with the distribution of each range in
``DIGITS_RANGES``.
"""
import math
import numbers

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

__all__ = ["Choice", "DIGITS_RANGES", "Distribution", "IntRange", "LogUniform",
           "OneMinusLogUniform", "SearchSpace", "SpaceError", "Uniform", "derive_seed",
           "digits_space"]


class SpaceError(ValueError):
    """A search space that allows a value its objective cannot take (checked before the first
    trial); ``name`` is the hyperparameter."""

    def __init__(self, name, message):
        super().__init__(message)
        self.name = name


def derive_seed(seed, *keys):
    """An integer seed in [0, 2^32) for the stream (seed, *keys), from NumPy's SeedSequence: each
    round of a search, or each epoch of a babysat training, gets its own independent stream."""
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


def _number(cls, name, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{cls}: {name} must be a finite real number, got {value!r}")
    return float(value)


def _integer(cls, name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{cls}: {name} must be an integer, got {value!r}")
    return int(value)


def _check_order(cls, low, high):
    if not low < high:
        problem = "empty" if low == high else "inverted"
        raise ValueError(f"{cls}: the range [low, high] is {problem}: low must be < high, got "
                         f"low={low!r}, high={high!r}")


class Distribution:
    """Base class: how one hyperparameter is drawn, as one Optuna parameter.

    ``key(name)`` is the Optuna parameter's name, ``to_optuna()`` its Optuna distribution, and
    ``value(x)`` the hyperparameter for the Optuna parameter's value x.
    """

    def key(self, name):
        return name

    def value(self, x):
        return x

    def to_optuna(self):
        raise NotImplementedError

    def suggest(self, trial, name):
        """The hyperparameter drawn (or fixed) for ``trial``, an ``optuna.Trial``."""
        raise NotImplementedError

    def grid(self, k):
        """At most ``k`` Optuna parameter values spread evenly in the sampling scale (a Choice:
        all its options)."""
        raise NotImplementedError

    def grid_size(self, k):
        return len(self.grid(k))

    def extremes(self):
        """The values a requirement on the hyperparameter is checked at: a range's two ends (any
        value between lies in an interval that holds both), a Choice's options."""
        raise NotImplementedError

    def zoom(self, xs, margin):
        """The distribution narrowed to the Optuna parameter values ``xs`` (the best trials'),
        widened by ``margin`` times the current width on each side, inside the current range."""
        return self

    def _args(self):
        raise NotImplementedError

    def to_dict(self):
        return {"type": type(self).__name__, **self._args()}

    def __eq__(self, other):
        return type(self) is type(other) and self._args() == other._args()

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{v!r}' for v in self._args().values())})"


class _Interval(Distribution):
    """A numeric range, drawn uniformly in the scale of its Optuna parameter x in [a, b]
    (``bounds()``): log10 x for log ranges, x otherwise."""
    log = False

    def bounds(self):
        return self.low, self.high

    @classmethod
    def from_bounds(cls, a, b):
        """The distribution whose Optuna parameter ranges over [a, b]."""
        return cls(a, b)

    def _scale(self, x):
        return np.log10(x) if self.log else np.asarray(x, dtype=np.float64)

    def _unscale(self, u):
        return 10.0 ** u if self.log else u

    def _args(self):
        return {"low": self.low, "high": self.high}

    def extremes(self):
        return [self.low, self.high]

    def to_optuna(self):
        return FloatDistribution(*self.bounds(), log=self.log)

    def suggest(self, trial, name):
        return self.value(trial.suggest_float(self.key(name), *self.bounds(), log=self.log))

    def grid(self, k):
        """The centres of k equal cells of [a, b] in the sampling scale (k = 1: the middle)."""
        a, b = self.bounds()
        ua, ub = self._scale(a), self._scale(b)
        centres = self._unscale(ua + (np.arange(k) + 0.5) * (ub - ua) / k)
        return [float(x) for x in np.clip(centres, a, b)]

    def _zoomed(self, xs, margin):
        """(lo, hi): the interval of ``xs`` in the sampling scale, widened by ``margin`` times the
        width of [a, b] on each side, clipped to [a, b], back in the Optuna parameter's units."""
        a, b = self.bounds()
        ua, ub = float(self._scale(a)), float(self._scale(b))
        u = self._scale(np.asarray(xs, dtype=np.float64))
        pad = margin * (ub - ua)
        lo, hi = max(ua, float(u.min()) - pad), min(ub, float(u.max()) + pad)
        return tuple(np.clip([self._unscale(lo), self._unscale(hi)], a, b).tolist())

    def zoom(self, xs, margin):
        return self.from_bounds(*self._zoomed(xs, margin))


class Uniform(_Interval):
    """x ~ U[low, high], low < high."""

    def __init__(self, low, high):
        cls = type(self).__name__
        self.low, self.high = _number(cls, "low", low), _number(cls, "high", high)
        _check_order(cls, self.low, self.high)


class LogUniform(Uniform):
    """value = 10^r, r ~ U[log10 low, log10 high], 0 < low < high: each decade gets the same
    share of the samples (e.g. a learning rate in [1e-4, 1])."""
    log = True

    def __init__(self, low, high):
        super().__init__(low, high)
        if self.low <= 0:
            raise ValueError(f"{type(self).__name__}: low must be > 0 (the range is drawn in log10 "
                             f"space, and log10 of 0 or less is undefined), got low={low!r}")


class OneMinusLogUniform(_Interval):
    """beta = 1 - 10^r, r ~ U[log10(1 - high), log10(1 - low)], 0 < low < high < 1: averaging
    coefficients (e.g. beta in [0.9, 0.999], r in [-3, -1]). The Optuna parameter is "1-<name>",
    the value 1 - beta."""
    log = True

    def __init__(self, low, high):
        cls = type(self).__name__
        self.low, self.high = _number(cls, "low", low), _number(cls, "high", high)
        if not 0.0 < self.low < 1.0 or not 0.0 < self.high < 1.0:
            raise ValueError(f"{cls}: low and high must be inside (0, 1) (1 - beta is drawn in "
                             f"log10 space), got low={low!r}, high={high!r}")
        _check_order(cls, self.low, self.high)

    def key(self, name):
        return f"1-{name}"

    def value(self, x):
        return 1.0 - x

    def bounds(self):
        return 1.0 - self.high, 1.0 - self.low

    @classmethod
    def from_bounds(cls, a, b):
        return cls(1.0 - b, 1.0 - a)


class IntRange(_Interval):
    """An integer in [low, high], low <= high, drawn uniformly (log=True: uniformly in log10 of the
    value, low >= 1), e.g. hidden units in [50, 100] or 2 to 4 layers."""

    def __init__(self, low, high, log=False):
        cls = type(self).__name__
        self.low, self.high = _integer(cls, "low", low), _integer(cls, "high", high)
        self.log = bool(log)
        if self.low > self.high:
            raise ValueError(f"{cls}: the range [low, high] is empty: low must be <= high, got "
                             f"low={low!r}, high={high!r}")
        if self.log and self.low < 1:
            raise ValueError(f"{cls}: with log=True, low must be >= 1 (log10 of 0 or less is "
                             f"undefined), got low={low!r}")

    def _args(self):
        return {"low": self.low, "high": self.high, "log": self.log}

    def to_optuna(self):
        return IntDistribution(self.low, self.high, log=self.log)

    def suggest(self, trial, name):
        return trial.suggest_int(name, self.low, self.high, log=self.log)

    def grid(self, k):
        """k integers from low to high (k = 1: the middle), evenly spaced in the sampling scale,
        fewer where they round to the same integer."""
        ua, ub = self._scale(self.low), self._scale(self.high)
        u = np.linspace(ua, ub, k) if k > 1 else [(ua + ub) / 2]
        return sorted({int(round(x)) for x in self._unscale(np.asarray(u))})

    def zoom(self, xs, margin):
        lo, hi = self._zoomed(xs, margin)
        return IntRange(math.floor(lo + 1e-9), math.ceil(hi - 1e-9), self.log)


class Choice(Distribution):
    """One of ``options`` (a non-empty list of distinct None, bool, int, float or str), each with
    the same probability. Coarse-to-fine rounds keep every option."""

    def __init__(self, options):
        cls = type(self).__name__
        if not isinstance(options, (list, tuple)) or not options:
            raise ValueError(f"{cls}: options must be a non-empty list, got {options!r}")
        for option in options:
            if option is not None and not isinstance(option, (bool, int, float, str)):
                raise ValueError(f"{cls}: options must be None, bool, int, float or str, got "
                                 f"{option!r} ({type(option).__name__})")
        if len(set(options)) != len(options):
            raise ValueError(f"{cls}: options must be distinct, got {list(options)!r}")
        self.options = list(options)

    def _args(self):
        return {"options": self.options}

    def extremes(self):
        return list(self.options)

    def to_optuna(self):
        return CategoricalDistribution(self.options)

    def suggest(self, trial, name):
        return trial.suggest_categorical(name, self.options)

    def grid(self, k):
        return list(self.options)


DISTRIBUTIONS = {cls.__name__: cls for cls in (Uniform, LogUniform, OneMinusLogUniform, IntRange,
                                               Choice)}


class SearchSpace:
    """Hyperparameter names mapped to distributions, e.g.
    ``SearchSpace({"lr": LogUniform(1e-4, 1), "beta": OneMinusLogUniform(0.9, 0.999),
    "hidden": IntRange(50, 100)})``."""

    def __init__(self, distributions):
        if isinstance(distributions, SearchSpace):
            distributions = distributions.distributions
        if not isinstance(distributions, dict) or not distributions:
            raise ValueError(f"SearchSpace: expected a non-empty dict of name: distribution, got "
                             f"{distributions!r}")
        for name, dist in distributions.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"SearchSpace: parameter names must be Python identifiers (they "
                                 f"are passed to the objective as keywords), got {name!r}")
            if not isinstance(dist, Distribution):
                raise TypeError(f"SearchSpace: {name!r} must be a fastnn.tune distribution "
                                f"(Uniform, LogUniform, OneMinusLogUniform, IntRange, Choice), "
                                f"got {dist!r}")
        self.distributions = dict(distributions)

    @property
    def names(self):
        return list(self.distributions)

    def __getitem__(self, name):
        return self.distributions[name]

    def __eq__(self, other):
        return isinstance(other, SearchSpace) and self.distributions == other.distributions

    def __repr__(self):
        return f"SearchSpace({self.distributions!r})"

    def keys(self):
        """{hyperparameter name: Optuna parameter name}."""
        return {name: dist.key(name) for name, dist in self.distributions.items()}

    def to_optuna(self):
        """{Optuna parameter name: Optuna distribution}."""
        return {dist.key(name): dist.to_optuna() for name, dist in self.distributions.items()}

    def values(self, params):
        """Hyperparameters {name: value} from Optuna parameters {key: x}."""
        return {name: dist.value(params[dist.key(name)])
                for name, dist in self.distributions.items()}

    def suggest(self, trial):
        """Hyperparameters {name: value} drawn (or fixed) for ``trial``, an ``optuna.Trial``."""
        return {name: dist.suggest(trial, name) for name, dist in self.distributions.items()}

    def check(self, requirements, who):
        """Raise ``SpaceError`` naming the first hyperparameter for which the space allows a value
        that fails its requirement. requirements: {name: (text, predicate)}, e.g. {"hidden":
        ("an integer >= 1", lambda v: v >= 1)}; names without one are not checked; who: the
        objective's name, for the message. Requirements must hold on intervals (they are checked
        at the ends of each range)."""
        for name, dist in self.distributions.items():
            if name not in requirements:
                continue
            text, ok = requirements[name]
            for value in dist.extremes():
                try:
                    good = ok(value)
                except (TypeError, ValueError):
                    good = False
                if not good:
                    raise SpaceError(name, f"{who}: {name} must be {text}, but the search space "
                                           f"allows {name} = {value!r} ({dist!r})")

    # --- sampling ---------------------------------------------------------------------------

    def grid(self, n_trials):
        """{Optuna parameter: values} of a grid of at most ``n_trials`` points: every option of a
        Choice, and k points along each range (spread evenly in its sampling scale), the k raised
        by one in turn, the first parameters first, while the grid still fits."""
        counts = dict.fromkeys(self.distributions, 1)
        if self._grid_points(counts) > n_trials:
            raise ValueError(f"SearchSpace.grid: the smallest grid (one point per range, every "
                             f"option) has {self._grid_points(counts)} points; n_trials must be "
                             f"at least that, got {n_trials}")
        grown = True
        while grown:
            grown = False
            for name, dist in self.distributions.items():
                more = {**counts, name: counts[name] + 1}
                if (dist.grid_size(more[name]) > dist.grid_size(counts[name])
                        and self._grid_points(more) <= n_trials):
                    counts, grown = more, True
        return {dist.key(name): dist.grid(counts[name])
                for name, dist in self.distributions.items()}

    def _grid_points(self, counts):
        return math.prod(dist.grid_size(counts[name]) for name, dist in self.distributions.items())

    def sample(self, n_trials, seed=0, sampler="random"):
        """The first ``n_trials`` trials' Optuna parameters, a list of {key: x}, drawn by Optuna's
        RandomSampler(seed) ("random"), or the points of ``grid(n_trials)`` in the order of
        Optuna's GridSampler(seed) ("grid": at most n_trials points)."""
        if sampler == "random":
            optuna_sampler, n = optuna.samplers.RandomSampler(seed=seed), n_trials
        elif sampler == "grid":
            grid = self.grid(n_trials)
            optuna_sampler = optuna.samplers.GridSampler(grid, seed=seed)
            n = math.prod(len(v) for v in grid.values())
        else:
            raise ValueError(f"SearchSpace.sample: sampler must be 'random' or 'grid', got "
                             f"{sampler!r}")
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line per call
        try:
            study = optuna.create_study(sampler=optuna_sampler)
        finally:
            optuna.logging.set_verbosity(verbosity)
        distributions = self.to_optuna()
        return [study.ask(distributions).params for _ in range(n)]

    def zoom(self, params, margin=0.1):
        """Coarse to fine: the space narrowed to the Optuna parameters ``params`` (a list of
        {key: x}, the best trials), each range to the smallest interval holding their values in
        its own sampling scale (log10 for log ranges, log10(1 - beta) for betas), widened by
        ``margin`` times its current width on each side and kept inside the current range."""
        if not params:
            raise ValueError("SearchSpace.zoom: params must hold at least one trial's parameters")
        if not (isinstance(margin, numbers.Real) and 0 < margin < math.inf):
            raise ValueError(f"SearchSpace.zoom: margin must be a number > 0, got {margin!r}")
        return SearchSpace({name: dist.zoom([p[dist.key(name)] for p in params], margin)
                            for name, dist in self.distributions.items()})

    # --- saving ----------------------------------------------------------------------------------

    def to_dict(self):
        """Plain JSON data: {name: {"type": class name, arguments...}}."""
        return {name: dist.to_dict() for name, dist in self.distributions.items()}

    @classmethod
    def from_dict(cls, data):
        return cls({name: DISTRIBUTIONS[d["type"]](**{k: v for k, v in d.items() if k != "type"})
                    for name, d in data.items()})


#: The distribution of each range of ``digits_space`` (each takes low, high).
DIGITS_RANGES = {"lr": LogUniform, "beta": OneMinusLogUniform, "hidden": IntRange, "l2": LogUniform,
                 "layers": IntRange}


def digits_space(lr=(1e-4, 1.0), beta=(0.9, 0.999), hidden=(50, 100), l2=(1e-4, 1.0),
                 layers=None):
    """lr log-uniform, beta (Adam's beta1) with 1 - beta log-uniform, hidden units an integer
    range, the L2 lambda log-uniform; layers an integer range if given (else one hidden layer).
    Each range is (low, high)."""
    ranges = {"lr": lr, "beta": beta, "hidden": hidden, "l2": l2, "layers": layers}
    return SearchSpace({name: DIGITS_RANGES[name](*bounds) for name, bounds in ranges.items()
                        if bounds is not None})
