"""Optimizers over any list of NumPy arrays: GD, Momentum, RMSprop and Adam.

Each class holds its hyperparameters as plain attributes (``opt.lr = 0.01`` between steps takes
effect: schedules and tuners set it) and its state (one set of arrays per parameter, created as
zeros on the first step, and the step count ``t``). ``step(params, grads)`` updates the parameters
in place with the kernels of ``fastnn.kernels`` (``backend=`` picks their backend). The fastest use
is one flat buffer holding every parameter of a model: one kernel call per step.
"""
import numbers

import numpy as np

from fastnn import backend as _backend
from fastnn.kernels import _optim_api as api
from fastnn.kernels import _validate as check
from fastnn.errors import NonFiniteError

__all__ = ["OPTIMIZERS", "Adam", "GD", "Momentum", "Optimizer", "RMSprop", "get"]


class Optimizer:
    """Base class: the list handling, the state and its saving; subclasses give the update.

    A subclass sets ``hyperparameters`` (names of attributes, each with a checker from
    ``fastnn.kernels._optim_api``), ``state_names`` (the state arrays kept per parameter) and
    ``_update(kernels, p, g, state, t, check_finite)``, one call of a backend's update kernel
    (the inputs are checked before).
    """
    #: {attribute name: checker(fn, name, value) -> value}
    hyperparameters = {"lr": api.positive}
    #: Names of the state arrays kept for each parameter (zeros of its shape and dtype at first).
    state_names = ()

    def __init__(self, *, backend=None, **hyperparameters):
        fn = type(self).__name__
        for name, value in hyperparameters.items():
            setattr(self, name, self.hyperparameters[name](fn, name, value))
        self.backend = backend
        #: Steps taken so far (Adam's bias correction uses t + 1 in the next step).
        self.t = 0
        self._state = None  # one {name: array} per parameter, from the first step
        self._spec = None  # one (shape, dtype) per parameter, from the first step

    def __repr__(self):
        values = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyperparameters)
        return f"{type(self).__name__}({values})"

    def _update(self, kernels, p, g, state, t, check_finite):
        raise NotImplementedError

    # --- stepping --------------------------------------------------------------------------------

    def check_hyperparameters(self, fn=None):
        """Raise TypeError/ValueError if a hyperparameter (e.g. an ``lr`` set by a schedule) is
        out of its range."""
        fn = fn or f"{type(self).__name__}.step"
        for name, checker in self.hyperparameters.items():
            checker(fn, name, getattr(self, name))

    def _check_step(self, params, grads):
        """Check everything before any parameter moves; returns the gradients, C-contiguous."""
        fn = f"{type(self).__name__}.step"
        self.check_hyperparameters(fn)
        for name, seq in (("params", params), ("grads", grads)):
            if not isinstance(seq, (list, tuple)):
                raise TypeError(f"{fn}: {name} must be a list or tuple of NumPy arrays, got "
                                f"{type(seq).__name__}")
        if len(params) != len(grads):
            raise ValueError(f"{fn}: got {len(params)} params and {len(grads)} grads; give one "
                             "gradient per parameter")
        if self._spec is not None:
            if len(params) != len(self._spec):
                raise ValueError(f"{fn}: got {len(params)} params, but the state was made for "
                                 f"{len(self._spec)}; pass the same list at every step (or use "
                                 "a new optimizer)")
            for i, (p, (shape, dtype)) in enumerate(zip(params, self._spec)):
                if isinstance(p, np.ndarray) and (p.shape, p.dtype) != (shape, dtype):
                    raise ValueError(f"{fn}: params[{i}] has shape {p.shape} and dtype {p.dtype}, "
                                     f"but the state was made for shape {shape} and dtype {dtype}; "
                                     "pass the same list at every step (or use a new optimizer)")
        contiguous = []
        for i, (p, g) in enumerate(zip(params, grads)):
            try:
                contiguous.append(api.arrays(fn, p, g))
            except (TypeError, ValueError) as error:
                raise type(error)(f"{error} (params[{i}], grads[{i}])") from None
        if len(grads) > 1:  # all or nothing: no parameter moves when a later gradient is bad
            for i, g in enumerate(contiguous):
                if not np.isfinite(g).all():
                    raise ValueError(f"{fn}: grads[{i}] contains NaN or inf; nothing was updated")
        return contiguous

    def step(self, params, grads):
        """Update every ``params[i]`` in place from ``grads[i]``. Returns None.

        params, grads: lists or tuples of the same length; params[i] and grads[i] NumPy arrays of
        one shape (any) and dtype (float32 or float64), params[i] writable and C-contiguous. The
        state is made on the first step (zeros like each parameter) and kept per position: later
        steps must pass parameters of the same number, shapes and dtypes. Bad input, or NaN/inf
        in a gradient, raises before any parameter or state changes. (NaN/inf in a parameter or
        its state, which only an earlier failure can put there, is found by the kernel of that
        parameter; the parameters before it in the list are then already updated.)
        """
        grads = self._check_step(params, grads)
        self._make_state(params)
        kernels, t = _backend.get(self.backend), self.t + 1
        for i, (p, g) in enumerate(zip(params, grads)):
            try:
                self._update(kernels, p, g, self._state[i], t, True)
            except NonFiniteError:  # NaN/inf in params[i] or its state: name the array
                check.nonfinite_result(f"{type(self).__name__}.step, params[{i}]", g=g, p=p,
                                       **self._state[i])
        self.t = t

    def step_unchecked(self, p, g):
        """One step on a single parameter array p with gradient g (``params=[p], grads=[g]``)
        without ``step``'s checks of the arrays and its NaN/inf pass: for a caller whose p and
        g are C-contiguous, of one shape and dtype, and finite (``Sequential.fit``, whose
        gradients come from kernels that count NaN/inf in their results), and who has called
        ``check_hyperparameters`` (``Sequential`` does, before the step's forward pass)."""
        self._make_state([p])
        self._update(_backend.get(self.backend), p, g, self._state[0], self.t + 1, False)
        self.t += 1

    def _make_state(self, params):
        """The state arrays (zeros like each parameter) at the first step."""
        if self._spec is None:
            zeros = _backend.get(self.backend).zeros  # (device memory for "cuda")
            self._state = [{k: zeros(p.shape, p.dtype) for k in self.state_names} for p in params]
            self._spec = [(p.shape, p.dtype) for p in params]

    # --- saving ----------------------------------------------------------------------------------

    def state_dict(self):
        """A dict of plain values and NumPy arrays (copies): "optimizer" (the class name), the
        hyperparameters, "t" (steps taken) and "state": {state name: [one array per parameter]}
        (empty lists before the first step)."""
        d = {"optimizer": type(self).__name__}
        d.update((k, float(getattr(self, k))) for k in self.hyperparameters)
        d["t"] = self.t
        to_host = _backend.get(self.backend).to_host
        d["state"] = {k: [np.array(to_host(s[k])) for s in self._state or ()]
                      for k in self.state_names}
        return d

    def load_state_dict(self, d):
        """Restore hyperparameters, step count and state from ``state_dict()`` (copies the arrays).
        Later steps then reproduce those of the saved optimizer bit for bit."""
        fn = f"{type(self).__name__}.load_state_dict"
        if not isinstance(d, dict):
            raise TypeError(f"{fn}: expected a dict from state_dict(), got {type(d).__name__}")
        expected = {"optimizer", "t", "state", *self.hyperparameters}
        if set(d) != expected:
            missing, extra = sorted(expected - set(d)), sorted(set(d) - expected)
            raise ValueError(f"{fn}: keys must be {sorted(expected)}; missing {missing}, "
                             f"unexpected {extra}")
        if d["optimizer"] != type(self).__name__:
            raise ValueError(f"{fn}: the state is of a {d['optimizer']!r} optimizer, not "
                             f"{type(self).__name__!r}")
        hyper = {k: self.hyperparameters[k](fn, k, d[k]) for k in self.hyperparameters}
        t = d["t"]
        if not isinstance(t, numbers.Integral) or isinstance(t, bool) or t < 0:
            raise ValueError(f"{fn}: t must be an integer >= 0, got {t!r}")
        state = self._load_state(fn, d["state"])
        if state is None and self.state_names and t > 0:
            raise ValueError(f"{fn}: t = {t} steps but no state arrays")
        for k, value in hyper.items():
            setattr(self, k, value)
        self.t, self._state = int(t), state
        self._spec = None if state is None else [(s[self.state_names[0]].shape,
                                                  s[self.state_names[0]].dtype) for s in state]

    def _load_state(self, fn, saved):
        """[{name: array copy}] per parameter from {name: [arrays]}, checked; None if empty."""
        if not isinstance(saved, dict) or set(saved) != set(self.state_names):
            raise ValueError(f"{fn}: state must be a dict with keys {list(self.state_names)}, got "
                             f"{saved!r:.80}")
        lists = [saved[k] for k in self.state_names]
        if any(not isinstance(v, (list, tuple)) for v in lists):
            raise TypeError(f"{fn}: each state entry must be a list of arrays")
        if len({len(v) for v in lists}) > 1:
            raise ValueError(f"{fn}: the state lists have different lengths "
                             f"{[len(v) for v in lists]}")
        if not lists or not lists[0]:
            return None
        state = []
        for i, arrays in enumerate(zip(*lists)):
            first = arrays[0]
            for k, a in zip(self.state_names, arrays):
                if (not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64)
                        or (a.shape, a.dtype) != (first.shape, first.dtype)):
                    raise ValueError(f"{fn}: state {k!r}[{i}] must be a float32/float64 array of "
                                     f"the shape and dtype of the other state of parameter {i}")
                if not np.isfinite(a).all():
                    raise ValueError(f"{fn}: state {k!r}[{i}] contains NaN or inf")
            to_backend = _backend.get(self.backend).to_backend
            state.append({k: to_backend(np.array(a, order="C"))
                          for k, a in zip(self.state_names, arrays)})
        return state


class GD(Optimizer):
    """Gradient descent: p <- p - lr * g.

    The same as torch.optim.SGD(lr=lr) (no momentum, no weight decay).
    """

    def __init__(self, lr, *, backend=None):
        super().__init__(lr=lr, backend=backend)

    def _update(self, kernels, p, g, state, t, check_finite):
        kernels.sgd_update(p, g, self.lr, check_finite)


class Momentum(Optimizer):
    """Gradient descent with momentum, in the course's exponentially weighted average form:
    v <- beta * v + (1 - beta) * g;  p <- p - lr * v  (v = 0 at first, no bias correction).

    Differs from PyTorch: torch.optim.SGD(momentum=mu) keeps v <- mu * v + g (v = g on the first
    step), which is this v / (1 - beta): at the same lr its steps are 1 / (1 - beta) times larger,
    and torch.optim.SGD(lr * (1 - beta), momentum=beta) makes the steps of Momentum(lr, beta).
    (torch's dampening=beta gives this v from the second step on: its first step sets v = g.)
    """
    hyperparameters = {"lr": api.positive, "beta": api.fraction}
    state_names = ("v",)

    def __init__(self, lr, beta=0.9, *, backend=None):
        super().__init__(lr=lr, beta=beta, backend=backend)

    def _update(self, kernels, p, g, state, t, check_finite):
        kernels.momentum_update(p, g, state["v"], self.lr, self.beta, check_finite)


class RMSprop(Optimizer):
    """RMSprop: s <- beta * s + (1 - beta) * g^2;  p <- p - lr * g / (sqrt(s) + eps).

    torch.optim.RMSprop(lr, alpha=beta, eps=eps) (centered=False, momentum=0) is the same update,
    eps outside the sqrt too, but its defaults differ: alpha=0.99, lr=0.01; ours beta=0.999 (the
    course's), eps=1e-8 in both.
    """
    hyperparameters = {"lr": api.positive, "beta": api.fraction, "eps": api.positive}
    state_names = ("s",)

    def __init__(self, lr, beta=0.999, eps=1e-8, *, backend=None):
        super().__init__(lr=lr, beta=beta, eps=eps, backend=backend)

    def _update(self, kernels, p, g, state, t, check_finite):
        kernels.rmsprop_update(p, g, state["s"], self.lr, self.beta, self.eps, check_finite)


class Adam(Optimizer):
    """Adam, at step t = 1, 2, ...:
    m <- beta1 * m + (1 - beta1) * g;  v <- beta2 * v + (1 - beta2) * g^2;
    mhat = m / (1 - beta1^t);  vhat = v / (1 - beta2^t);  p <- p - lr * mhat / (sqrt(vhat) + eps).

    The same as torch.optim.Adam(lr, betas=(beta1, beta2), eps) with its defaults (eps outside the
    sqrt, no weight decay, amsgrad=False).
    """
    hyperparameters = {"lr": api.positive, "beta1": api.fraction, "beta2": api.fraction,
                       "eps": api.positive}
    state_names = ("m", "v")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, *, backend=None):
        super().__init__(lr=lr, beta1=beta1, beta2=beta2, eps=eps, backend=backend)

    def _update(self, kernels, p, g, state, t, check_finite):
        kernels.adam_update(p, g, state["m"], state["v"], t, self.lr, self.beta1, self.beta2,
                            self.eps, check_finite)


#: The optimizer classes by name, for ``get`` and the command line ("sgd" is "gd").
OPTIMIZERS = {"gd": GD, "sgd": GD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam}


def get(optimizer, fn="optimizer"):
    """An optimizer from an optimizer object (returned as it is) or a name in ``OPTIMIZERS`` (a
    new one with lr=1e-3 and the class defaults), as Keras' ``optimizers.get``; ``fn`` names the
    caller in the error for anything else."""
    if isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"{fn}: unknown optimizer {optimizer!r}; expected one of "
                             f"{', '.join(OPTIMIZERS)} or an optimizer object")
        return OPTIMIZERS[optimizer.lower()](lr=1e-3)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{fn}: optimizer must be a fastnn.optim optimizer or its name, got "
                        f"{type(optimizer).__name__}")
    return optimizer
