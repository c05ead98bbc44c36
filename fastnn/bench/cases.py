"""The benchmark workloads, each defined once: ``Case`` and one function per workload.

A workload function returns a ``Case``: a maker of seeded float32 host data and a builder per
library (cheap: no data is made until a closure is). ``case.closure(impl)`` places fresh data
for an implementation (``fastnn.bench.peers``) and returns a closure that does the work once and
returns its results (in fastnn's layout). fastnn's closures call the backend's kernels with
preallocated outputs (``out=``), as a layer does; PyTorch's use its functions, autograd and
optimizers; CuPy and JAX run one array formula of the workload written for any NumPy-like
module (``_array_api``): CuPy eagerly, JAX under ``jax.jit``.
"""
import functools
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from fastnn.bench import peers

F32 = np.float32
#: Batch norm's running-average weight and variance epsilon.
DECAY, EPS = 0.9, 1e-5
#: Optimizer hyperparameters (lr 1e-6 keeps the parameters nearly still over many calls) and
#: Adam's step count (its cost does not depend on it).
LR, BETA, BETA1, BETA2, OPT_EPS, T = 1e-6, 0.9, 0.9, 0.999, 1e-8, 10
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
SOFTMAX_KINDS = ("softmax", "log_softmax", "hardmax")


@dataclass(frozen=True)
class Recipe:
    """How a case was made: its workload function and arguments. ``make()`` makes it again,
    in another process too (``fastnn.bench.apart``: a recipe pickles, a case's closures do not)."""
    function: Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def make(self):
        return self.function(*self.args, **self.kwargs)


def workload(function):
    """Decorate a module-level workload function (returning a ``Case``) so that its cases carry
    their ``Recipe``."""
    @functools.wraps(function)
    def make(*args, **kwargs):
        case = function(*args, **kwargs)
        case.recipe = Recipe(make, args, kwargs)
        return case
    return make


@dataclass(eq=False)
class Case:
    """One workload at one shape. ``data()``: new host arrays by name (seeded: the same each
    time). ``builders``: library name ("fastnn", "torch", "cupy", "jax") ->
    ``build(module, arrays)``, which returns the closure (``arrays``: ``peers.place``'s
    namespace). The work of one call is ``flops`` floating-point operations or ``nbytes`` bytes
    of memory traffic (float32). ``recipe``: how to make it again (set by ``workload``)."""
    name: str
    shape: tuple
    data: Callable[[], dict]
    builders: dict
    flops: float = 0.0
    nbytes: float = 0.0
    recipe: Optional[Recipe] = None

    @property
    def label(self):
        """The name and the shape, e.g. "softmax 64x10"."""
        return f"{self.name} {'x'.join(map(str, self.shape))}"

    def closure(self, impl, dtype=None):
        """The work as a closure for implementation ``impl`` (the data in ``dtype`` when given);
        NotImplementedError when this case has no version for its library or the library is
        missing here."""
        key = peers.IMPLEMENTATIONS[impl].key
        if key not in self.builders:
            raise NotImplementedError(f"{self.name} has no {key} version")
        return self.builders[key](peers.library(impl), peers.place(impl, self.data(), dtype))

    def implementations(self, candidates):
        """Those of the implementation names ``candidates`` that this case runs here."""
        return [impl for impl in candidates if self.has_version(impl) and peers.usable(impl)]

    def has_version(self, impl):
        """Whether this case has a builder for implementation ``impl`` (installed or not)."""
        return peers.IMPLEMENTATIONS[impl].key in self.builders


def _arrays(a):
    """``peers.place``'s namespace as {name: array}."""
    return {name: array for name, array in vars(a).items() if name != "device"}


def _array_api(formula):
    """The "cupy" and "jax" builders of ``formula(xp, arrays) -> (results, updates)``: the
    workload for a NumPy-like module ``xp`` on the arrays ({name: array}), returning new state
    arrays by name in ``updates`` (they replace the old ones after each call)."""
    def cupy(cp, a):
        arrays = _arrays(a)

        def run():
            results, updates = formula(cp, arrays)
            arrays.update(updates)
            return results
        return run

    def jax(jax, a):
        arrays = _arrays(a)
        step = jax.jit(lambda arrays: formula(jax.numpy, arrays))

        def run():
            results, updates = step(arrays)
            arrays.update(updates)
            return jax.block_until_ready(results)
        return run
    return {"cupy": cupy, "jax": jax}


def _torch_autograd(torch, forward, inputs, dY, backward):
    """PyTorch's closure of ``forward()``: under no_grad, or with ``backward`` also the
    gradients of the leaf tensors ``inputs`` from ``dY`` by autograd: (output, *gradients)."""
    for t in inputs:
        t.requires_grad_(backward)

    def run():
        if not backward:
            with torch.no_grad():
                return forward()
        for t in inputs:
            t.grad = None
        out = forward()
        out.backward(dY)
        return (out, *(t.grad for t in inputs))
    return run


def _rng(seed):
    return np.random.default_rng(seed)


# --- dense ---------------------------------------------------------------------------------------

def _dense_formula(xp, a, backward):
    A = xp.maximum(a["X"] @ a["W"] + a["b"], 0)
    if not backward:
        return A, {}
    dZ = a["dA"] * (A > 0)
    return (A, dZ @ a["W"].T, a["X"].T @ dZ, dZ.sum(0)), {}


@workload
def dense(m, n_in, n_out, backward=True, seed=0):
    """Dense layer with ReLU: A = relu(X @ W + b); with ``backward`` also dZ = dA * (A > 0),
    dX = dZ @ W.T, dW = X.T @ dZ, db = sum(dZ) over rows. X: (m, n_in), W: (n_in, n_out)
    He-scaled, b: (n_out,), dA: (m, n_out). Results: A, or (A, dX, dW, db)."""
    def data():
        g = _rng(seed)
        return dict(X=g.standard_normal((m, n_in), dtype=F32),
                    W=g.standard_normal((n_in, n_out), dtype=F32) * F32(np.sqrt(2 / n_in)),
                    b=g.standard_normal(n_out, dtype=F32) * F32(0.1),
                    dA=g.standard_normal((m, n_out), dtype=F32))

    def fastnn(k, a):
        A = k.empty((m, n_out), a.X.dtype)
        grads = tuple(k.empty(s, a.X.dtype) for s in ((m, n_in), (n_in, n_out), (n_out,)))

        def run():
            k.dense_forward(a.X, a.W, a.b, "relu", out=A)
            return (A, *k.dense_backward(a.dA, a.X, a.W, A, "relu", out=grads)) if backward else A
        return run

    def torch(torch, a):
        return _torch_autograd(torch, lambda: torch.relu(torch.addmm(a.b, a.X, a.W)),
                               (a.X, a.W, a.b), a.dA, backward)

    kind = "fwd+bwd" if backward else "fwd"
    return Case(f"dense relu {kind}", (m, n_in, n_out), data,
                dict(fastnn=fastnn, torch=torch,
                     **_array_api(lambda xp, a: _dense_formula(xp, a, backward))),
                flops=(3 if backward else 1) * 2.0 * m * n_in * n_out)


# --- batch norm ----------------------------------------------------------------------------------

def _batchnorm_formula(xp, a, backward):
    X, m = a["X"], a["X"].shape[0]
    mean, var = X.mean(0), X.var(0)
    invstd = 1 / xp.sqrt(var + EPS)
    xhat = (X - mean) * invstd
    Y = xhat * a["gamma"] + a["beta"]
    stats = dict(running_mean=DECAY * a["running_mean"] + (1 - DECAY) * mean,
                 running_var=DECAY * a["running_var"] + (1 - DECAY) * var * (m / (m - 1)))
    if not backward:
        return Y, stats
    dY = a["dY"]
    dbeta, dgamma = dY.sum(0), (dY * xhat).sum(0)
    dX = (a["gamma"] * invstd / m) * (m * dY - dbeta - xhat * dgamma)
    return (Y, dX, dgamma, dbeta), stats


@workload
def batchnorm(m, n, backward=True, seed=0):
    """Batch normalization in training: per column, the batch mean and biased variance var,
    Y = gamma * (X - mean) / sqrt(var + eps) + beta, and the running statistics updated in place
    (r = decay * r + (1 - decay) * batch value; the unbiased variance); with ``backward`` also
    xhat = (X - mean) * invstd, dbeta = sum(dY), dgamma = sum(dY * xhat),
    dX = (gamma * invstd / m) * (m * dY - dbeta - xhat * dgamma). X: (m, n) with mean 1 and
    std 2; gamma, beta, running_mean, running_var: (n,); dY: (m, n). Results: Y, or
    (Y, dX, dgamma, dbeta)."""
    def data():
        g = _rng(seed)
        return dict(X=g.standard_normal((m, n), dtype=F32) * F32(2) + F32(1),
                    gamma=F32(1) + g.standard_normal(n, dtype=F32) * F32(0.1),
                    beta=g.standard_normal(n, dtype=F32) * F32(0.1),
                    running_mean=np.zeros(n, F32), running_var=np.ones(n, F32),
                    dY=g.standard_normal((m, n), dtype=F32))

    def fastnn(k, a):
        Y = k.empty((m, n), a.X.dtype)
        grads = (k.empty((m, n), a.X.dtype), k.empty(n, a.X.dtype), k.empty(n, a.X.dtype))

        def run():
            _, cache = k.batchnorm_forward(a.X, a.gamma, a.beta, a.running_mean, a.running_var,
                                           True, DECAY, EPS, out=Y)
            return (Y, *k.batchnorm_backward(a.dY, cache, out=grads)) if backward else Y
        return run

    def torch(torch, a):
        return _torch_autograd(torch, lambda: torch.nn.functional.batch_norm(
            a.X, a.running_mean, a.running_var, a.gamma, a.beta, training=True,
            momentum=1 - DECAY, eps=EPS), (a.X, a.gamma, a.beta), a.dY, backward)

    # forward: reads X twice, writes Y; backward: reads X and dY twice, writes dX
    return Case(f"batchnorm {'fwd+bwd' if backward else 'fwd'}", (m, n), data,
                dict(fastnn=fastnn, torch=torch,
                     **_array_api(lambda xp, a: _batchnorm_formula(xp, a, backward))),
                nbytes=(8.0 if backward else 3.0) * m * n * 4)


# --- softmax family ------------------------------------------------------------------------------

def _logits(m, c, seed):
    g = _rng(seed)
    return dict(Z=g.standard_normal((m, c), dtype=F32) * F32(3), y=g.integers(0, c, m))


def _softmax_formula(xp, Z, kind):
    if kind == "hardmax":
        return (Z.argmax(1)[:, None] == xp.arange(Z.shape[1])).astype(Z.dtype)
    shifted = Z - Z.max(1, keepdims=True)
    if kind == "log_softmax":
        return shifted - xp.log(xp.exp(shifted).sum(1, keepdims=True))
    e = xp.exp(shifted)
    return e / e.sum(1, keepdims=True)


@workload
def softmax(m, c, kind="softmax", seed=0):
    """A row-wise forward kernel on logits Z: (m, c) with std 3 -> (m, c): "softmax",
    exp(Z - max) / sum(exp(Z - max)); "log_softmax", Z - max - log(sum(exp(Z - max)));
    "hardmax", the one-hot of each row's argmax (the first on ties)."""

    def fastnn(k, a):
        P = k.empty((m, c), a.Z.dtype)
        return lambda: getattr(k, kind)(a.Z, out=P)

    def torch(torch, a):
        if kind == "hardmax":
            return lambda: torch.nn.functional.one_hot(a.Z.argmax(1), c).to(a.Z.dtype)
        return lambda: getattr(torch, kind)(a.Z, 1)

    return Case(kind, (m, c), lambda: {"Z": _logits(m, c, seed)["Z"]},
                dict(fastnn=fastnn, torch=torch,
                     **_array_api(lambda xp, a: (_softmax_formula(xp, a["Z"], kind), {}))),
                nbytes=2.0 * m * c * 4)


def _cross_entropy_formula(xp, a):
    Z, m = a["Z"], a["Z"].shape[0]
    logp = _softmax_formula(xp, Z, "log_softmax")
    Y = a["y"][:, None] == xp.arange(Z.shape[1])
    return (-(logp * Y).sum() / m, (xp.exp(logp) - Y) / m), {}


@workload
def cross_entropy(m, c, seed=0):
    """Softmax cross-entropy with class labels, forward and backward: loss =
    -(1/m) sum_i log softmax(Z)_{i, y_i} and dZ = (softmax(Z) - onehot(y)) / m. Z: (m, c) with
    std 3, y: (m,) int64. Results: (loss, dZ)."""
    def fastnn(k, a):
        dZ = k.empty((m, c), a.Z.dtype)
        return lambda: k.softmax_cross_entropy(a.Z, a.y, out=dZ)

    def torch(torch, a):
        a.Z.requires_grad_()

        def run():
            a.Z.grad = None
            loss = torch.nn.functional.cross_entropy(a.Z, a.y)
            loss.backward()
            return loss, a.Z.grad
        return run

    # reads Z, writes dZ
    return Case("softmax-CE fwd+bwd", (m, c), lambda: _logits(m, c, seed),
                dict(fastnn=fastnn, torch=torch, **_array_api(_cross_entropy_formula)),
                nbytes=2.0 * m * c * 4)


# --- elementwise losses --------------------------------------------------------------------------

ELEMENTWISE_LOSSES = ("sigmoid_cross_entropy", "mean_squared_error")


def _elementwise_loss_formula(xp, a, kind):
    Z, Y, n = a["Z"], a["Y"], a["Z"].size
    if kind == "sigmoid_cross_entropy":
        loss = (xp.maximum(Z, 0) - Z * Y + xp.log1p(xp.exp(-xp.abs(Z)))).sum() / n
        return (loss, (1 / (1 + xp.exp(-Z)) - Y) / n), {}
    return (((Z - Y) ** 2).sum() / n, 2 * (Z - Y) / n), {}


@workload
def elementwise_loss(m, n, kind="sigmoid_cross_entropy", seed=0):
    """A loss over every value, forward and backward, mean over the N = m n values: "sigmoid_
    cross_entropy", max(z, 0) - z y + log(1 + exp(-|z|)) with dZ = (sigmoid(Z) - Y) / N (Y 0/1
    labels); "mean_squared_error", (z - y)^2 with dZ = 2 (Z - Y) / N (Y standard normal).
    Z: (m, n) with std 3. Results: (loss, dZ)."""
    def data():
        g = _rng(seed)
        Z = g.standard_normal((m, n), dtype=F32) * F32(3)
        Y = (g.integers(0, 2, (m, n)).astype(F32) if kind == "sigmoid_cross_entropy"
             else g.standard_normal((m, n), dtype=F32))
        return dict(Z=Z, Y=Y)

    def fastnn(k, a):
        dZ = k.empty((m, n), a.Z.dtype)
        return lambda: getattr(k, kind)(a.Z, a.Y, out=dZ)

    def torch(torch, a):
        loss_fn = (torch.nn.functional.binary_cross_entropy_with_logits
                   if kind == "sigmoid_cross_entropy" else torch.nn.functional.mse_loss)
        a.Z.requires_grad_()

        def run():
            a.Z.grad = None
            loss = loss_fn(a.Z, a.Y)
            loss.backward()
            return loss, a.Z.grad
        return run

    name = {"sigmoid_cross_entropy": "sigmoid-CE", "mean_squared_error": "MSE"}[kind]
    # reads Z and Y, writes dZ
    return Case(f"{name} fwd+bwd", (m, n), data,
                dict(fastnn=fastnn, torch=torch,
                     **_array_api(lambda xp, a: _elementwise_loss_formula(xp, a, kind))),
                nbytes=3.0 * m * n * 4)


# --- optimizer updates ---------------------------------------------------------------------------

def _optimizer_formula(xp, a, rule):
    p, g, m, v = a["p"], a["g"], a["m"], a["v"]
    if rule == "sgd":
        p = p - LR * g
    elif rule == "momentum":
        m = BETA * m + (1 - BETA) * g
        p = p - LR * m
    elif rule == "rmsprop":
        v = BETA2 * v + (1 - BETA2) * g * g
        p = p - LR * g / (xp.sqrt(v) + OPT_EPS)
    else:
        m = BETA1 * m + (1 - BETA1) * g
        v = BETA2 * v + (1 - BETA2) * g * g
        p = p - LR * (m / (1 - BETA1 ** T)) / (xp.sqrt(v / (1 - BETA2 ** T)) + OPT_EPS)
    return p, {"p": p, "m": m, "v": v}


@workload
def optimizer(n, rule="adam", seed=0):
    """One update of a flat float32 buffer of n parameters p from the gradient g, in place:
    "sgd" p -= lr * g; "momentum" (the EWA form) m = beta * m + (1 - beta) * g, p -= lr * m;
    "rmsprop" v = beta * v + (1 - beta) * g^2, p -= lr * g / (sqrt(v) + eps); "adam" m and v
    as above (beta1, beta2), p -= lr * mhat / (sqrt(vhat) + eps) with the bias corrections at
    step t = 10. p, g: std 1; m, v: zeros. Result: p. PyTorch's optimizers keep their own step
    count and start their momentum buffer from g (so they match only in cost)."""
    def data():
        g = _rng(seed)
        return dict(p=g.standard_normal(n, dtype=F32), g=g.standard_normal(n, dtype=F32),
                    m=np.zeros(n, F32), v=np.zeros(n, F32))

    def fastnn(k, a):
        update = {"sgd": lambda: k.sgd_update(a.p, a.g, LR),
                  "momentum": lambda: k.momentum_update(a.p, a.g, a.m, LR, BETA),
                  "rmsprop": lambda: k.rmsprop_update(a.p, a.g, a.v, LR, BETA2, OPT_EPS),
                  "adam": lambda: k.adam_update(a.p, a.g, a.m, a.v, T, LR, BETA1, BETA2,
                                                OPT_EPS)}[rule]

        def run():
            update()
            return a.p
        return run

    def torch(torch, a):
        p = torch.nn.Parameter(a.p)
        p.grad = a.g
        opt = {"sgd": lambda: torch.optim.SGD([p], lr=LR),
               "momentum": lambda: torch.optim.SGD([p], lr=LR, momentum=BETA, dampening=BETA),
               "rmsprop": lambda: torch.optim.RMSprop([p], lr=LR, alpha=BETA2, eps=OPT_EPS),
               "adam": lambda: torch.optim.Adam([p], lr=LR, betas=(BETA1, BETA2), eps=OPT_EPS,
                                                fused=p.is_cuda or None)}[rule]()

        def run():
            opt.step()
            return p
        return run

    # p, g and the state read; p and the state written
    state = {"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}[rule]
    return Case(f"{rule} update", (n,), data,
                dict(fastnn=fastnn, torch=torch,
                     **_array_api(lambda xp, a: _optimizer_formula(xp, a, rule))),
                nbytes=(3.0 + 2 * state) * n * 4)


# --- dropout -------------------------------------------------------------------------------------

@workload
def dropout(m, n, rate=0.5, seed=0):
    """Inverted dropout forward: mask ~ Bernoulli(1 - rate), Y = X * mask / (1 - rate).
    X: (m, n). Results: Y, and the mask (fastnn, CuPy, JAX). Each library draws with its own
    generator (the masks differ)."""
    keep = 1 - rate

    def fastnn(k, a):
        out = (k.empty((m, n), a.X.dtype), k.empty((m, n), a.X.dtype))
        return lambda: k.dropout_forward(a.X, rate, seed, out=out)

    def torch(torch, a):
        return lambda: torch.nn.functional.dropout(a.X, rate, training=True)

    def cupy(cp, a):
        draw = cp.random.default_rng(seed).random

        def run():
            mask = (draw((m, n), dtype=F32) < keep).astype(a.X.dtype)
            return a.X * mask / keep, mask
        return run

    def jax(jax, a):
        key = jax.random.key(seed)

        @jax.jit
        def step(X, key):
            mask = jax.random.bernoulli(key, keep, X.shape).astype(X.dtype)
            return X * mask / keep, mask
        return lambda: jax.block_until_ready(step(a.X, key))

    # reads X, writes Y and the mask
    return Case("dropout fwd", (m, n), lambda: {"X": _rng(seed).standard_normal((m, n), dtype=F32)},
                dict(fastnn=fastnn, torch=torch, cupy=cupy, jax=jax),
                nbytes=3.0 * m * n * 4)
