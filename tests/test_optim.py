"""Optimizer update kernels (CPU against the NumPy reference, both against the equations and
torch.optim) and the optimizer classes of fastnn.optim (lists of arrays, state, saving, errors)."""
import numpy as np
import pytest
from helpers import over_backends, over_dtypes

from fastnn import config
from fastnn import kernels as K
from fastnn.optim import GD, Adam, Momentum, RMSprop

#: kernel name -> (state array names, hyperparameters after the state (t first for Adam))
KERNELS = {
    "sgd_update": ((), dict(lr=0.1)),
    "momentum_update": (("v",), dict(lr=0.1, beta=0.9)),
    "rmsprop_update": (("s",), dict(lr=0.01, beta=0.999, eps=1e-8)),
    "adam_update": (("m", "v"), dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)),
}
over_kernels = pytest.mark.parametrize("kernel", list(KERNELS))
#: (1,), 1-D, 2-D, 3-D, and a flat buffer above the CPU's parallel threshold.
SHAPES = [(1,), (37,), (13, 7), (2, 3, 5), (3 * config.OPTIM_PARALLEL_MIN_ELEMENTS + 5,)]


@pytest.fixture
def optim_parallel(monkeypatch):
    """Force the optimizer kernels' parallel path whatever the size (their threshold set to 0)."""
    monkeypatch.setattr(config, "OPTIM_PARALLEL_MIN_ELEMENTS", 0)


def close(actual, desired, dtype):
    """Within a few ulp of the values' size: float64 ~1e-15 relative, float32 ~5e-7."""
    eps = np.finfo(dtype).eps
    scale = max(1.0, float(np.abs(desired).max()))
    assert actual.dtype == np.dtype(dtype)
    np.testing.assert_allclose(actual, desired, rtol=4 * eps, atol=4 * eps * scale)


def make(kernel, shape, dtype, rng):
    """p, and the state arrays of ``kernel`` at a nonzero starting point (s, v >= 0)."""
    p = rng.standard_normal(shape).astype(dtype)
    states = [(rng.standard_normal(shape) if name == "m" else rng.uniform(0, 1, shape))
              .astype(dtype) for name in KERNELS[kernel][0]]
    return p, states


def call(kernel, p, g, states, backend, t=1, **hyper):
    args = dict(KERNELS[kernel][1], **hyper)
    if kernel == "adam_update":
        args = dict(t=t, **args)
    return getattr(K, kernel)(p, g, *states, *args.values(), backend=backend)


def run_steps(kernel, backend, p, states, grads):
    p, states = p.copy(), [s.copy() for s in states]
    for t, g in enumerate(grads, start=1):
        assert call(kernel, p, g, states, backend, t=t) is None
    return p, states


# --- cpu against the reference -------------------------------------------------------------------

def assert_cpu_matches_reference(kernel, shape, dtype, rng, n_steps):
    """``n_steps`` consecutive steps with fresh gradients, from a nonzero state, on both
    backends: the parameters and every state array agree."""
    p, states = make(kernel, shape, dtype, rng)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(n_steps)]
    p_ref, s_ref = run_steps(kernel, "numpy", p, states, grads)
    p_cpu, s_cpu = run_steps(kernel, "cpu", p, states, grads)
    close(p_cpu, p_ref, dtype)
    for a, b in zip(s_cpu, s_ref):
        close(a, b, dtype)


@over_kernels
@over_dtypes
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_cpu_matches_reference(kernel, dtype, shape, rng):
    """Four consecutive steps with fresh gradients, from a nonzero state."""
    assert_cpu_matches_reference(kernel, shape, dtype, rng, n_steps=4)


@over_kernels
@over_dtypes
def test_parallel_path_matches_reference(kernel, dtype, rng, optim_parallel):
    """Small arrays through the parallel driver (threshold 0): one block for a 1-element array,
    one per thread (as far as there are elements) for the others."""
    for shape in [(1,), (3,), (5, 7)]:
        assert_cpu_matches_reference(kernel, shape, dtype, rng, n_steps=2)


@over_backends
@over_dtypes
def test_equations(backend, dtype, rng):
    """One step of each kernel against its equation written out here."""
    shape = (4, 3)
    g = rng.standard_normal(shape).astype(dtype)
    p0 = rng.standard_normal(shape).astype(dtype)
    s0 = rng.uniform(0.1, 1, shape).astype(dtype)
    lr, beta, eps = 0.05, 0.8, 1e-8
    f = np.float64

    p = p0.copy()
    K.sgd_update(p, g, lr, backend=backend)
    close(p, p0 - lr * g.astype(f), dtype)

    p, v = p0.copy(), s0.copy()
    K.momentum_update(p, g, v, lr, beta, backend=backend)
    v_want = beta * s0.astype(f) + (1 - beta) * g
    close(v, v_want, dtype)
    close(p, p0 - lr * v_want, dtype)

    p, s = p0.copy(), s0.copy()
    K.rmsprop_update(p, g, s, lr, beta, eps, backend=backend)
    s_want = beta * s0.astype(f) + (1 - beta) * g.astype(f) ** 2
    close(s, s_want, dtype)
    close(p, p0 - lr * g / (np.sqrt(s_want) + eps), dtype)


@over_backends
@over_dtypes
def test_adam_bias_correction_first_step(backend, dtype, rng):
    """At t = 1 from m = v = 0: mhat = g, vhat = g^2, so p <- p - lr * g / (|g| + eps)."""
    shape = (50,)
    g = rng.standard_normal(shape).astype(dtype)
    p0 = rng.standard_normal(shape).astype(dtype)
    p, m, v = p0.copy(), np.zeros(shape, dtype), np.zeros(shape, dtype)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    K.adam_update(p, g, m, v, 1, lr, b1, b2, eps, backend=backend)
    gf = g.astype(np.float64)
    close(m, (1 - b1) * gf, dtype)
    close(v, (1 - b2) * gf * gf, dtype)
    close(p, p0 - lr * gf / (np.abs(gf) + eps), dtype)
    # t = 2 with the hand formula for the corrections
    g2 = rng.standard_normal(shape)
    m2 = b1 * m.astype(np.float64) + (1 - b1) * g2
    v2 = b2 * v.astype(np.float64) + (1 - b2) * g2 * g2
    p_want = p.astype(np.float64) - lr * (m2 / (1 - b1**2)) / (np.sqrt(v2 / (1 - b2**2)) + eps)
    K.adam_update(p, g2.astype(dtype), m, v, 2, lr, b1, b2, eps, backend=backend)
    np.testing.assert_allclose(p, p_want, rtol=1e-5 if dtype == np.float32 else 1e-13)


# --- against torch.optim -------------------------------------------------------------------------

def _torch_steps(torch_opt_factory, p0, grads):
    torch = pytest.importorskip("torch")
    p = torch.tensor(p0, requires_grad=True)
    opt = torch_opt_factory(torch, [p])
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    return p.detach().numpy()


def _ours(opt, p0, grads):
    p = p0.copy()
    for g in grads:
        opt.step([p], [g])
    return p


@over_backends
def test_against_torch(backend, rng):
    """Where the semantics coincide, five float64 steps agree with torch.optim to rounding."""
    pytest.importorskip("torch")
    shape = (6, 4)
    p0 = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) for _ in range(5)]
    lr, beta, eps = 0.01, 0.9, 1e-8

    cases = {
        "GD": (GD(lr, backend=backend), lambda T, ps: T.optim.SGD(ps, lr=lr)),
        "Adam": (Adam(lr, 0.8, 0.99, eps, backend=backend),
                 lambda T, ps: T.optim.Adam(ps, lr=lr, betas=(0.8, 0.99), eps=eps)),
        "RMSprop": (RMSprop(lr, beta, eps, backend=backend),
                    lambda T, ps: T.optim.RMSprop(ps, lr=lr, alpha=beta, eps=eps,
                                                  centered=False, momentum=0)),
    }
    # torch's SGD momentum with dampening = beta is v <- beta v + (1 - beta) g, except that its
    # first step sets v = g undamped: start ours from v = g_1, whose first update also gives g_1.
    momentum = Momentum(lr, beta, backend=backend)
    momentum.load_state_dict({"optimizer": "Momentum", "lr": lr, "beta": beta, "t": 0,
                              "state": {"v": [grads[0].copy()]}})
    cases["Momentum"] = (momentum, lambda T, ps: T.optim.SGD(ps, lr=lr, momentum=beta,
                                                             dampening=beta))
    for name, (ours, theirs) in cases.items():
        np.testing.assert_allclose(_ours(ours, p0, grads), _torch_steps(theirs, p0, grads),
                                   rtol=1e-13, atol=1e-14, err_msg=name)


def test_momentum_is_torch_undamped_momentum_at_scaled_lr(rng):
    """torch's buffer b <- mu b + g (b_1 = g_1) is ours / (1 - beta): Momentum(lr, beta) makes
    the steps of torch.optim.SGD(lr * (1 - beta), momentum=beta); at the same lr torch's steps
    are 1 / (1 - beta) times larger."""
    pytest.importorskip("torch")
    shape = (5,)
    p0 = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) for _ in range(6)]
    lr, beta = 0.01, 0.9
    ours = _ours(Momentum(lr, beta), p0, grads)
    theirs = _torch_steps(lambda T, ps: T.optim.SGD(ps, lr=lr * (1 - beta), momentum=beta),
                          p0, grads)
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-14)
    same_lr = _torch_steps(lambda T, ps: T.optim.SGD(ps, lr=lr, momentum=beta), p0, grads)
    np.testing.assert_allclose(same_lr - p0, (ours - p0) / (1 - beta), rtol=1e-12)


# --- bad input -----------------------------------------------------------------------------------

def _good(kernel, dtype=np.float64, shape=(4, 3)):
    rng = np.random.default_rng(0)
    p, states = make(kernel, shape, dtype, rng)
    return p, rng.standard_normal(shape).astype(dtype), states


@over_kernels
@over_backends
def test_bad_arrays(kernel, backend):
    p, g, states = _good(kernel)

    def expect(exc, match, p=p, g=g, states=states, **hyper):
        before = [a.copy() for a in (p, *states)]
        with pytest.raises(exc, match=match) as info:
            call(kernel, p, g, states, backend, **hyper)
        assert kernel in str(info.value)
        for a, b in zip((p, *states), before):
            np.testing.assert_array_equal(a, b)

    expect(ValueError, r"g must have shape \(4, 3\)", g=g[:, :2].copy())
    expect(TypeError, "mixed dtypes", g=g.astype(np.float32))
    expect(TypeError, "g must have dtype float32 or float64, got int64", g=g.astype(np.int64))
    expect(TypeError, "p must have dtype", p=p.astype(np.int32))
    expect(TypeError, "g must be a NumPy array, got list", g=g.tolist())
    read_only = p.copy()
    read_only.flags.writeable = False
    expect(TypeError, "p must be a writable array", p=read_only)
    expect(TypeError, "p must be C-contiguous because it is updated in place",
           p=np.asfortranarray(p))
    if states:
        name = KERNELS[kernel][0][0]
        bad = [s.copy() for s in states]
        bad[0] = bad[0].reshape(3, 4)
        expect(ValueError, rf"{name} must have shape \(4, 3\)", states=bad)
        bad[0] = np.asfortranarray(states[0])
        expect(TypeError, f"{name} must be C-contiguous", states=bad)
        expect(ValueError, "share memory", states=[p] + list(states[1:]))
    expect(ValueError, "lr must be a finite number > 0, got 0", lr=0)
    expect(ValueError, "lr must be a finite number > 0", lr=-0.1)
    expect(ValueError, "lr must be a finite number > 0", lr=float("inf"))
    expect(ValueError, "lr must be a finite number > 0", lr=float("nan"))
    expect(TypeError, "lr must be a real number", lr="0.1")
    for beta in [b for b in ("beta", "beta1", "beta2") if b in KERNELS[kernel][1]]:
        expect(ValueError, rf"{beta} must be a number in \[0, 1\), got 1.0", **{beta: 1.0})
        expect(ValueError, rf"{beta} must be a number in \[0, 1\)", **{beta: -0.1})
    if "eps" in KERNELS[kernel][1]:
        expect(ValueError, "eps must be a finite number > 0", eps=0.0)
    if kernel == "adam_update":
        expect(ValueError, "t must be >= 1", t=0)
        expect(TypeError, "t must be an integer", t=1.0)
    with pytest.raises(ValueError, match=f"{kernel}: unknown backend 'tpu'"):
        call(kernel, p, g, states, "tpu")


@over_kernels
@over_backends
@over_dtypes
@pytest.mark.parametrize("size", [7, 3 * config.OPTIM_PARALLEL_MIN_ELEMENTS + 1],
                         ids=["serial", "parallel"])
def test_nonfinite_leaves_everything_unchanged(kernel, backend, dtype, size):
    """NaN/inf in g, p or a state raises ValueError naming it; nothing is written."""
    p, g, states = _good(kernel, dtype, (size,))
    where = size - 1  # the last block of the parallel path
    for name, bad_value in [("g", np.nan), ("g", -np.inf), ("p", np.inf),
                            *((s, np.nan) for s in KERNELS[kernel][0])]:
        arrays = {"p": p.copy(), "g": g.copy(),
                  **{s: a.copy() for s, a in zip(KERNELS[kernel][0], states)}}
        arrays[name][where] = bad_value
        before = {k: a.tobytes() for k, a in arrays.items()}
        st = [arrays[s] for s in KERNELS[kernel][0]]
        with pytest.raises(ValueError, match=rf"{kernel}: {name} contains NaN or inf \(first at "
                                             rf"index \({where},\)\)"):
            call(kernel, arrays["p"], arrays["g"], st, backend, t=3)
        for k, a in arrays.items():
            assert a.tobytes() == before[k], f"{k} changed"


@over_backends
def test_any_shape_and_noncontiguous_g(backend, rng):
    """0-d and 3-D arrays; g may be a non-contiguous view (it is copied), p is a view of a flat
    buffer and updates that buffer."""
    p = np.zeros(())
    K.sgd_update(p, np.array(2.0), 0.5, backend=backend)
    assert p == -1.0
    flat = np.zeros(24)
    p = flat[:12].reshape(2, 3, 2)
    g_big = rng.standard_normal((2, 3, 4))
    K.sgd_update(p, g_big[:, :, ::2], 1.0, backend=backend)
    np.testing.assert_array_equal(flat[:12], -g_big[:, :, ::2].reshape(-1))
    np.testing.assert_array_equal(flat[12:], 0)


# --- optimizer classes ---------------------------------------------------------------------------

def _params(rng, dtype=np.float32):
    return [rng.standard_normal(s).astype(dtype) for s in [(5, 3), (3,), (2, 2, 2)]]


def _grads(rng, params):
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


OPTIMIZERS = {
    "GD": lambda b: GD(0.1, backend=b),
    "Momentum": lambda b: Momentum(0.1, 0.8, backend=b),
    "RMSprop": lambda b: RMSprop(0.01, 0.9, 1e-7, backend=b),
    "Adam": lambda b: Adam(0.01, backend=b),
}
over_optimizers = pytest.mark.parametrize("name", list(OPTIMIZERS))


@over_optimizers
@over_backends
def test_class_matches_kernels(name, backend, rng):
    """step() over a list equals the kernel on each array, with t = 1, 2, 3 for Adam."""
    opt = OPTIMIZERS[name](backend)
    params = _params(rng, np.float64)
    ref = [p.copy() for p in params]
    kernel = {"GD": "sgd_update", "Momentum": "momentum_update", "RMSprop": "rmsprop_update",
              "Adam": "adam_update"}[name]
    hyper = {k: getattr(opt, k) for k in opt.hyperparameters}
    states = [[np.zeros_like(p) for _ in opt.state_names] for p in params]
    for t in range(1, 4):
        grads = _grads(rng, params)
        opt.step(params, tuple(grads))
        for p, g, st in zip(ref, grads, states):
            call(kernel, p, g, st, "numpy", t=t, **hyper)
        assert opt.t == t
    for a, b in zip(params, ref):
        close(a, b, np.float64)


@over_optimizers
def test_state_dict_round_trip(name, rng):
    """3 steps, save, 2 more; a fresh optimizer loaded with the save and copies of the params
    makes the same 2 steps bit for bit."""
    opt = OPTIMIZERS[name]("cpu")
    params = _params(rng)
    for _ in range(3):
        opt.step(params, _grads(rng, params))
    saved = opt.state_dict()
    assert saved["optimizer"] == name and saved["t"] == 3
    assert all(isinstance(v, (str, int, float, dict)) for v in saved.values())
    copies = [p.copy() for p in params]
    later = [_grads(rng, params) for _ in range(2)]
    for grads in later:
        opt.step(params, grads)
    fresh = OPTIMIZERS[name]("cpu")
    fresh.lr = 123.0  # overwritten by the load
    fresh.load_state_dict(saved)
    assert fresh.lr == opt.lr
    for grads in later:
        fresh.step(copies, grads)
    for a, b in zip(params, copies):
        np.testing.assert_array_equal(a, b)
    assert fresh.t == opt.t == 5
    after = fresh.state_dict()
    for k in fresh.state_names:
        for a, b in zip(after["state"][k], opt.state_dict()["state"][k]):
            np.testing.assert_array_equal(a, b)


@over_optimizers
def test_state_dict_is_a_copy_and_validated(name, rng):
    opt = OPTIMIZERS[name](None)
    empty = opt.state_dict()
    assert empty["t"] == 0 and all(v == [] for v in empty["state"].values())
    params = _params(rng, np.float64)
    opt.step(params, _grads(rng, params))
    saved = opt.state_dict()
    for arrays in saved["state"].values():
        for a in arrays:
            a[...] = 7.0  # must not reach the optimizer
    assert all((s != 7.0).any() for arrays in opt.state_dict()["state"].values() for s in arrays)
    fresh = OPTIMIZERS[name](None)
    with pytest.raises(ValueError, match="missing"):
        fresh.load_state_dict({k: v for k, v in saved.items() if k != "t"})
    with pytest.raises(ValueError, match="not"):
        fresh.load_state_dict(dict(saved, optimizer="Other"))
    with pytest.raises(ValueError, match="lr must be"):
        fresh.load_state_dict(dict(saved, lr=-1.0))
    with pytest.raises(ValueError, match="t must be"):
        fresh.load_state_dict(dict(saved, t=-1))
    # A list's length or an array's shape can only be checked against another state array of
    # the same parameter (Adam's m against v); with one state array per parameter, the next
    # step checks them against the params.
    several = len(fresh.state_names) > 1
    for k in fresh.state_names:
        arrays = saved["state"][k]
        cases = [([arrays[0].astype(np.int64), *arrays[1:]], "float32/float64"),
                 ("m", "list of arrays")]
        if several:
            cases += [(arrays[:1], "different lengths"), ([arrays[0][:1], *arrays[1:]], "shape")]
        for bad, match in cases:
            with pytest.raises((TypeError, ValueError), match=match):
                fresh.load_state_dict(dict(saved, state=dict(saved["state"], **{k: bad})))
    assert fresh.t == 0 and fresh.state_dict()["state"] == empty["state"]  # nothing changed
    fresh.load_state_dict(saved)
    if fresh.state_names:  # the loaded state fixes the number and shapes of the params
        with pytest.raises(ValueError, match="got 2 params, but the state was made for 3"):
            fresh.step(params[:2], _grads(rng, params[:2]))


@over_optimizers
def test_class_bad_input(name, rng):
    opt = OPTIMIZERS[name](None)
    params = _params(rng)
    grads = _grads(rng, params)
    with pytest.raises(TypeError, match="list or tuple"):
        opt.step(params[0], grads[0])
    with pytest.raises(ValueError, match="3 params and 2 grads"):
        opt.step(params, grads[:2])
    with pytest.raises(ValueError, match=r"shape \(3,\).*params\[1\], grads\[1\]"):
        opt.step(params, [grads[0], grads[1][:2], grads[2]])
    with pytest.raises(TypeError, match="mixed dtypes"):
        opt.step(params, [grads[0], grads[1].astype(np.float64), grads[2]])
    assert opt.t == 0
    opt.step(params, grads)
    with pytest.raises(ValueError, match="got 2 params, but the state was made for 3"):
        opt.step(params[:2], grads[:2])
    with pytest.raises(ValueError, match=r"params\[2\] has shape \(8,\)"):
        opt.step(params[:2] + [params[2].reshape(8)], grads[:2] + [grads[2].reshape(8)])
    # NaN in the last gradient: no parameter moves (all or nothing), t unchanged
    before = [p.copy() for p in params]
    state_before = opt.state_dict()
    bad = [g.copy() for g in grads]
    bad[2][0, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"grads\[2\] contains NaN or inf"):
        opt.step(params, bad)
    for a, b in zip(params, before):
        np.testing.assert_array_equal(a, b)
    for k, arrays in opt.state_dict()["state"].items():
        for a, b in zip(arrays, state_before["state"][k]):
            np.testing.assert_array_equal(a, b)
    assert opt.t == 1
    # hyperparameters set to bad values are rejected at the next step
    opt.lr = 0.0
    with pytest.raises(ValueError, match=f"{name}.step: lr must be a finite number > 0"):
        opt.step(params, grads)


@pytest.mark.parametrize("make_opt, kwargs", [
    (GD, dict(lr=0)), (GD, dict(lr=-1)), (Momentum, dict(lr=0.1, beta=1.0)),
    (RMSprop, dict(lr=0.1, eps=0.0)), (RMSprop, dict(lr=0.1, beta=-0.5)),
    (Adam, dict(beta1=1.0)), (Adam, dict(beta2=1.5)), (Adam, dict(lr=float("nan")))])
def test_constructor_validates(make_opt, kwargs):
    with pytest.raises(ValueError, match=make_opt.__name__):
        make_opt(**kwargs)


def test_single_parameter_nonfinite_names_the_array():
    opt = Adam(0.1)
    p, g = np.ones(3), np.array([1.0, np.nan, 1.0])
    with pytest.raises(ValueError, match=r"Adam.step, params\[0\]: g contains NaN"):
        opt.step([p], [g])
    np.testing.assert_array_equal(p, 1.0)
    assert opt.t == 0


@over_backends
def test_changing_lr_between_steps(backend):
    w, opt = np.zeros(2), GD(0.1, backend=backend)
    opt.step([w], [np.ones(2)])
    opt.lr = 0.01
    opt.step([w], [np.ones(2)])
    np.testing.assert_allclose(w, -0.11, rtol=1e-15)
    p, adam = np.zeros(2), Adam(0.1, backend=backend)
    adam.step([p], [np.ones(2)])  # first Adam step moves by lr (sign of g)
    adam.lr = 0.001
    adam.step([p], [np.ones(2)])  # constant g: every step moves by lr
    np.testing.assert_allclose(p, -0.101, rtol=1e-6)


def test_repr():
    assert repr(Adam()) == "Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08)"
    assert repr(Momentum(0.5)) == "Momentum(lr=0.5, beta=0.9)"


# --- the demo: a framework for minimizing any function -------------------------------------------

@over_backends
def test_gd_minimizes_quadratic(backend):
    """J(w) = w^2 - 10w + 25, dJ/dw = 2w - 10, from w = 0 at lr 0.01: w_k = 5 - 5 * 0.98^k."""
    w, opt = np.zeros(1), GD(lr=0.01, backend=backend)
    opt.step([w], [2 * w - 10])
    assert w[0] == pytest.approx(0.1, rel=1e-15)
    for _ in range(1000):
        opt.step([w], [2 * w - 10])
    assert w[0] == pytest.approx(5 - 5 * 0.98**1001, rel=1e-14)
    assert round(w[0], 5) == 5.0 and w[0] > 4.99999


@over_backends
def test_adam_minimizes_quadratic(backend):
    w, opt = np.zeros(1), Adam(lr=0.1, backend=backend)
    for _ in range(3000):
        opt.step([w], [2 * w - 10])
    assert abs(w[0] - 5) < 1e-3


def test_get_makes_optimizers_by_name_and_passes_objects_through():
    from fastnn import optim

    assert type(optim.get("Adam")) is Adam and optim.get("sgd").lr == 1e-3
    mine = Momentum(0.5)
    assert optim.get(mine) is mine
    with pytest.raises(ValueError, match="fit: unknown optimizer 'adagrad'; expected one of gd"):
        optim.get("adagrad", "fit")
    with pytest.raises(TypeError, match="optimizer must be a fastnn.optim optimizer"):
        optim.get(object())
