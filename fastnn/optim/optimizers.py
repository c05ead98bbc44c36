"""Optimizers over any list of NumPy arrays: GD, Momentum, RMSprop and Adam.

Each class holds its hyperparameters as plain attributes (``opt.lr = 0.01`` between steps takes
effect: schedules and tuners set it) and its state (one set of arrays per parameter, created as
zeros on the first step, and the step count ``t``). ``step(params, grads)`` updates the parameters
in place with the kernels of ``fastnn.kernels`` (``backend=`` picks their backend). The fastest use
is one flat buffer holding every parameter of a model: one kernel call per step.

Every step is all or nothing: when an update would hold NaN or inf (a bad gradient, or an
overflow from finite values), the parameters, the state and ``t`` stay bit-for-bit as they were
and the step raises. To get there cheaply the state is double-buffered: each kernel call reads one
set of state arrays and writes the next into the other set, and writes each parameter's old values
into a backup array in the same pass (one extra write stream); the optimizer switches to the new
set only once every parameter of the step succeeded, and otherwise copies the parameters back from
their backups. (Memory: the state twice, plus one copy of the parameters.)
"""
import contextlib
import numbers
import threading
from collections.abc import Sequence
from typing import Union

import numpy as np

from fastnn import backend as _backend
from fastnn.kernels import optim as api
from fastnn.kernels import validation as check
from fastnn.kernels.base import Backend, NonFiniteError, is_device_array, to_host

__all__ = ["OPTIMIZERS", "Adam", "GD", "Momentum", "Optimizer", "RMSprop", "get"]


class Optimizer:
    """Base class: the list handling, the state and its saving; subclasses give the update.

    A subclass sets ``hyperparameters`` (names of attributes, each with a checker from
    ``fastnn.kernels.optim``), ``state_names`` (the state arrays kept per parameter) and
    ``_update(kernels, p, g, state, t, state_out, backup)``, one call of a backend's update
    kernel (the inputs are checked before) that reads ``state`` ({name: array}), writes the new
    state into ``state_out`` ({name: array}) and p's old values into ``backup`` while it updates
    p in place, and raises NonFiniteError with p put back when a value is NaN or inf.
    """
    #: {attribute name: checker(fn, name, value) -> value}
    hyperparameters = {"lr": api.positive}
    #: Names of the state arrays kept for each parameter (zeros of its shape and dtype at first).
    state_names = ()

    def __init__(self, *, backend: Backend = None, **hyperparameters: float):
        fn = type(self).__name__
        if type(self) is Optimizer:
            raise TypeError("Optimizer is the base class; use GD, Momentum, RMSprop or Adam (or a "
                            "subclass of your own)")
        for name, value in hyperparameters.items():
            setattr(self, name, self.hyperparameters[name](fn, name, value))
        self.backend = backend
        #: Steps taken so far (Adam's bias correction uses t + 1 in the next step).
        self.t = 0
        self._state = None  # one {name: array} per parameter, from the first step
        self._spare = None  # the other buffer of each state array: the next step writes it
        self._backup = None  # one array per parameter: its values before the step
        self._spec = None  # one (shape, dtype) per parameter, from the first step
        self._lock = threading.Lock()  # one step at a time (threads sharing an optimizer)

    def __getstate__(self):  # (copy.deepcopy, pickle): a lock cannot be copied
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self):
        values = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyperparameters)
        return f"{type(self).__name__}({values})"

    def _update(self, kernels, p, g, state, t, state_out, backup):
        raise NotImplementedError

    # --- stepping --------------------------------------------------------------------------------

    def check_hyperparameters(self, fn: str | None = None, dtypes=None) -> None:
        """Raise TypeError/ValueError if a hyperparameter (e.g. an ``lr`` set by a schedule) is
        out of its range, or eps would be 0 in the parameters' dtype (``dtypes``; by default
        those of the state, once made)."""
        fn = fn or f"{type(self).__name__}.step"
        for name, checker in self.hyperparameters.items():
            checker(fn, name, getattr(self, name))
        if not isinstance(self.t, numbers.Integral) or isinstance(self.t, bool) or self.t < 0:
            raise ValueError(f"{fn}: t (the steps taken) must be an integer >= 0, got {self.t!r}")
        if "eps" in self.hyperparameters:
            for dtype in {dtype for _, dtype in self._spec or ()} if dtypes is None else dtypes:
                api.in_dtype(fn, dtype, eps=self.eps)

    def _check_step(self, params, grads):
        """Check everything before any parameter moves; returns the gradients, C-contiguous."""
        fn = f"{type(self).__name__}.step"
        for name, seq in (("params", params), ("grads", grads)):
            if not isinstance(seq, (list, tuple)):
                raise TypeError(f"{fn}: {name} must be a list or tuple of NumPy arrays, got "
                                f"{type(seq).__name__}")
        if len(params) != len(grads):
            raise ValueError(f"{fn}: got {len(params)} params and {len(grads)} grads; give one "
                             "gradient per parameter")
        if not params:  # (would fix the state to no parameters, and count a step)
            raise ValueError(f"{fn}: params is empty; give at least one parameter")
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
        self.check_hyperparameters(fn, {p.dtype for p in params})
        if len(params) > 1:
            _no_overlap(fn, params, contiguous)
        return contiguous

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Update every ``params[i]`` in place from ``grads[i]``. Returns None.

        params, grads: lists or tuples of the same length; params[i] and grads[i] NumPy arrays of
        one shape (any) and dtype (float32 or float64), params[i] writable and C-contiguous. The
        state is made on the first step (zeros like each parameter) and kept per position: later
        steps must pass parameters of the same number, shapes and dtypes. All or nothing: bad
        input raises TypeError/ValueError before anything changes; NaN/inf in a gradient (or in a
        parameter or its state) raises ValueError naming it, and an update that overflows from
        finite values raises ``fastnn.NonFiniteError``, with every parameter, the state and ``t``
        as they were.
        """
        with self._lock:
            grads = self._check_step(params, grads)
            self._make_state(params)
            kernels, t = _backend.get(self.backend), self.t + 1
            checks_now = getattr(kernels, "checks_now", contextlib.nullcontext)
            for i, (p, g) in enumerate(zip(params, grads)):
                try:
                    with checks_now():  # (not deferred by a CUDA kernel_scope: undone here)
                        self._update(kernels, p, g, self._state[i], t, self._spare[i],
                                     self._backup[i])
                except NonFiniteError:
                    self._restore(kernels, params[:i])
                    self._report(f"{type(self).__name__}.step", i, len(params), p, g)
            self._state, self._spare = self._spare, self._state
            self.t = t

    def step_unchecked(self, p: np.ndarray, g: np.ndarray) -> None:
        """One step on a single parameter array p with gradient g (``params=[p], grads=[g]``)
        without ``step``'s checks of the arrays: for a caller whose p and g are C-contiguous, of
        one shape and dtype (``Sequential.fit``), and who has called ``check_hyperparameters``
        (``Sequential`` does, before the step's forward pass). All or nothing as ``step``: NaN or
        inf in what the update computes (from g, or an overflow) raises ``fastnn.NonFiniteError``
        with p, the state and ``t`` as they were. Inside the CUDA backend's ``kernel_scope`` on
        device arrays that check waits for the scope's end: when the scope then raises, the
        caller calls ``undo_last_step(p)`` (``Sequential``'s training step does)."""
        with self._lock:
            if self._spare is None:
                self._make_state([p])
            try:
                self._update(_backend.get(self.backend), p, g, self._state[0], self.t + 1,
                             self._spare[0], self._backup[0])
            except NonFiniteError:
                self._report(f"{type(self).__name__}.step_unchecked", 0, 1, p, g, checked=False)
            self._state, self._spare = self._spare, self._state
            self.t += 1

    def undo_last_step(self, p: np.ndarray) -> None:
        """Undo the last ``step_unchecked(p, g)``: p from its backup, the state and ``t`` as they
        were before it (for a step whose check a CUDA ``kernel_scope`` deferred, and failed)."""
        with self._lock:
            self._state, self._spare = self._spare, self._state
            self.t -= 1
            self._restore(_backend.get(self.backend), [p])

    def _restore(self, kernels, params):
        """Put back the values ``params`` had before this step (from their backups), in reverse
        order (so that a parameter given twice gets its first backup)."""
        for i in reversed(range(len(params))):
            p, saved = params[i], self._backup[i]
            if is_device_array(p) or not kernels.on_device:
                kernels.assign(p, saved)
            else:  # a host array updated by the device kernels (and copied back)
                p[...] = kernels.to_host(saved)

    def _report(self, fn, i, n, p, g, checked=True):
        """Raise the error of a step whose update of params[i] met NaN/inf (nothing changed):
        ValueError naming the array that holds NaN/inf (``step``), or NonFiniteError."""
        state = self._state[i]
        where = f"{fn}, params[{i}]" if n > 1 or checked else fn
        if not checked:
            bad = [name for name, a in dict(g=g, p=p, **state).items()
                   if not np.isfinite(to_host(a)).all()]
            if bad:
                raise NonFiniteError(f"{fn}: NaN or inf in {', '.join(bad)}; nothing was "
                                     "updated (parameters, state and t as before)")
        elif n > 1 and not np.isfinite(to_host(g)).all():
            raise ValueError(f"{fn}: grads[{i}] contains NaN or inf; nothing was updated")
        check.nonfinite_result(where, api.overflow_message(
            self.lr, "nothing was updated: parameters, state and t as before"),
            g=g, p=p, **state)

    def _make_state(self, params):
        """The state arrays (zeros like each parameter) at the first step, their second buffers
        and the parameters' backups (also after ``load_state_dict``)."""
        k = _backend.get(self.backend)  # (device memory for "cuda")
        if self._spec is None:
            self._state = [{name: k.zeros(p.shape, p.dtype) for name in self.state_names}
                           for p in params]
            self._spec = [(p.shape, p.dtype) for p in params]
        if self._spare is None:
            self._spare = [{name: k.empty(shape, dtype) for name in self.state_names}
                           for shape, dtype in self._spec]
            self._backup = [k.empty(shape, dtype) for shape, dtype in self._spec]

    # --- saving ----------------------------------------------------------------------------------

    def state_dict(self) -> dict:
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

    def load_state_dict(self, d: dict) -> None:
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
        self._spare = self._backup = None  # made again for the new state at the next step
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


def _no_overlap(fn, params, grads):
    """No parameter shares memory with another parameter or with the gradient of another
    position (updating one would change what a later update reads): a ValueError naming both.
    Sorted by start address, so that long lists cost O(n log n)."""
    spans = []
    for kind, arrays in (("params", params), ("grads", grads)):
        for i, a in enumerate(arrays):
            extent = check.extent(a)
            if extent is not None and extent[0] < extent[1]:
                spans.append((extent[0], extent[1], kind, i))
    spans.sort()
    open_spans = []  # spans that may still overlap the next ones
    for start, end, kind, i in spans:
        open_spans = [s for s in open_spans if s[1] > start]
        for _, _, other_kind, j in open_spans:
            if i != j and "params" in (kind, other_kind):
                first, second = sorted([(kind, i), (other_kind, j)])
                raise ValueError(f"{fn}: {first[0]}[{first[1]}] and {second[0]}[{second[1]}] "
                                 "share memory; give each parameter and gradient its own array")
        open_spans.append((start, end, kind, i))


class GD(Optimizer):
    """Gradient descent: p <- p - lr * g.

    The same as torch.optim.SGD(lr=lr) (no momentum, no weight decay).
    """

    def __init__(self, lr: float, *, backend: Backend = None):
        super().__init__(lr=lr, backend=backend)

    def _update(self, kernels, p, g, state, t, state_out, backup):
        kernels.sgd_update(p, g, self.lr, state_out=(), backup=backup)


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

    def __init__(self, lr: float, beta: float = 0.9, *, backend: Backend = None):
        super().__init__(lr=lr, beta=beta, backend=backend)

    def _update(self, kernels, p, g, state, t, state_out, backup):
        kernels.momentum_update(p, g, state["v"], self.lr, self.beta,
                                state_out=(state_out["v"],), backup=backup)


class RMSprop(Optimizer):
    """RMSprop: s <- beta * s + (1 - beta) * g^2;  p <- p - lr * g / (sqrt(s) + eps).

    torch.optim.RMSprop(lr, alpha=beta, eps=eps) (centered=False, momentum=0) is the same update,
    eps outside the sqrt too, but its defaults differ: alpha=0.99, lr=0.01; ours beta=0.999 (the
    course's), eps=1e-8 in both.
    """
    hyperparameters = {"lr": api.positive, "beta": api.fraction, "eps": api.positive}
    state_names = ("s",)

    def __init__(self, lr: float, beta: float = 0.999, eps: float = 1e-8, *,
                 backend: Backend = None):
        super().__init__(lr=lr, beta=beta, eps=eps, backend=backend)

    def _update(self, kernels, p, g, state, t, state_out, backup):
        kernels.rmsprop_update(p, g, state["s"], self.lr, self.beta, self.eps,
                               state_out=(state_out["s"],), backup=backup)


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

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, *, backend: Backend = None):
        super().__init__(lr=lr, beta1=beta1, beta2=beta2, eps=eps, backend=backend)

    def _update(self, kernels, p, g, state, t, state_out, backup):
        kernels.adam_update(p, g, state["m"], state["v"], t, self.lr, self.beta1, self.beta2,
                            self.eps, state_out=(state_out["m"], state_out["v"]), backup=backup)


#: The optimizer classes by name, for ``get`` and the command line ("sgd" is "gd").
OPTIMIZERS = {"gd": GD, "sgd": GD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam}


def get(optimizer: Union[str, Optimizer], fn: str = "optimizer") -> Optimizer:
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
