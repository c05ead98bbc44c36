"""Learning-rate schedules and exponentially weighted averages (fastnn.optim)."""
import math

import numpy as np
import pytest

from fastnn import optim
from fastnn.optim import schedules as S

EPOCHS = [0, 1, 2, 3, 7, 10, 25, 1000]


# --- schedules -----------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule, formula", [
    (S.constant(0.3), lambda e: 0.3),
    (S.inverse_time(0.2, 1.0), lambda e: 0.2 / (1 + 1.0 * e)),
    (S.inverse_time(0.2, 0.5, interval=10), lambda e: 0.2 / (1 + 0.5 * math.floor(e / 10))),
    (S.exponential(0.1), lambda e: 0.1 * 0.95**e),
    (S.exponential(0.1, base=0.5), lambda e: 0.1 * 0.5**e),
    (S.inverse_sqrt(0.1, k=2.0), lambda e: 0.1 * 2.0 / math.sqrt(max(e, 1))),
    (S.staircase(0.1, 0.5, 10), lambda e: 0.1 * 0.5 ** math.floor(e / 10)),
    (S.piecewise_constant([3, 10], [1.0, 0.1, 0.01]),
     lambda e: 1.0 if e < 3 else 0.1 if e < 10 else 0.01),
], ids=repr)
def test_values(schedule, formula):
    for epoch in EPOCHS:
        lr = schedule(epoch)
        assert isinstance(lr, float)
        assert lr == pytest.approx(formula(epoch), rel=1e-15)
    assert schedule.unit == "epoch"
    assert schedule(np.int64(3)) == schedule(3)


def test_hand_values():
    """A few values written out."""
    assert S.inverse_time(1.0, 1.0)(1) == 0.5
    assert S.inverse_time(0.2, 1.0, interval=2)(3) == pytest.approx(0.1)
    assert S.inverse_time(0.2, 1.0, interval=2)(4) == pytest.approx(0.2 / 3)
    assert S.exponential(1.0, 0.95)(2) == pytest.approx(0.9025)
    assert S.inverse_sqrt(0.1)(0) == S.inverse_sqrt(0.1)(1) == 0.1
    assert S.inverse_sqrt(0.1)(4) == pytest.approx(0.05)
    assert S.staircase(1.0, 0.5, 10)(9) == 1.0 and S.staircase(1.0, 0.5, 10)(10) == 0.5
    boundaries = S.piecewise_constant([2, 4], [3.0, 2.0, 1.0])
    assert [boundaries(e) for e in range(6)] == [3.0, 3.0, 2.0, 2.0, 1.0, 1.0]
    assert S.inverse_time(0.1, 0.0)(100) == 0.1  # decay_rate 0: constant


def test_step_unit_and_repr():
    per_step = S.inverse_sqrt(0.01, k=3.0, unit="step")
    assert per_step.unit == "step"
    assert per_step(100) == pytest.approx(0.01 * 3.0 / 10)
    assert per_step(0) == pytest.approx(0.03)
    assert repr(per_step) == "inverse_sqrt(lr0=0.01, k=3.0, unit='step')"
    assert repr(S.inverse_time(0.2, 1.0)) == "inverse_time(lr0=0.2, decay_rate=1.0)"
    assert repr(S.inverse_time(0.2, 1.0, 5)) == "inverse_time(lr0=0.2, decay_rate=1.0, interval=5)"
    assert repr(S.exponential(0.1)) == "exponential(lr0=0.1, base=0.95)"
    assert repr(S.constant(1)) == "constant(lr0=1.0)"
    assert "boundaries=[10], values=[0.1, 0.01]" in repr(S.piecewise_constant([10], [0.1, 0.01]))


def test_drives_an_optimizer():
    """The trainer's use: set opt.lr from the schedule at each epoch."""
    w, opt = np.zeros(1), optim.GD(lr=1.0)
    schedule = S.inverse_time(0.1, 1.0)
    for epoch in range(3):
        opt.lr = schedule(epoch)
        opt.step([w], [np.ones(1)])
    np.testing.assert_allclose(w, -(0.1 + 0.05 + 0.1 / 3), rtol=1e-15)


@pytest.mark.parametrize("factory, args, exc, match", [
    (S.constant, (0.0,), ValueError, "lr0"),
    (S.constant, (-1.0,), ValueError, "lr0"),
    (S.constant, (float("inf"),), ValueError, "lr0"),
    (S.constant, ("0.1",), TypeError, "lr0"),
    (S.inverse_time, (0.1, -0.5), ValueError, "decay_rate"),
    (S.inverse_time, (0.1, 1.0, 0), ValueError, "interval must be >= 1"),
    (S.inverse_time, (0.1, 1.0, 2.5), TypeError, "interval must be an integer"),
    (S.exponential, (0.1, 0.0), ValueError, r"base must be a finite number in \(0.0, 1.0\]"),
    (S.exponential, (0.1, 1.5), ValueError, "base"),
    (S.inverse_sqrt, (0.1, 0.0), ValueError, "k must be"),
    (S.staircase, (0.1, 0.5, 0), ValueError, "step_size"),
    (S.staircase, (0.1, 2.0, 10), ValueError, "factor"),
    (S.piecewise_constant, ([10, 5], [1.0, 0.5, 0.1]), ValueError,
     "boundaries must be strictly increasing"),
    (S.piecewise_constant, ([10], [1.0]), ValueError, "values must have one more entry"),
    (S.piecewise_constant, ([0], [1.0, 0.5]), ValueError, r"boundaries\[0\] must be >= 1"),
    (S.piecewise_constant, ([5], [1.0, -0.5]), ValueError, r"values\[1\]"),
    (S.piecewise_constant, (5, [1.0]), TypeError, "boundaries and values must be lists"),
])
def test_invalid_arguments(factory, args, exc, match):
    with pytest.raises(exc, match=f"{factory.__name__}: {match}"):
        factory(*args)


def test_invalid_unit_and_counter():
    with pytest.raises(ValueError, match="unit must be one of epoch, step"):
        S.constant(0.1, unit="batch")
    schedule = S.exponential(0.1)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        schedule(-1)
    with pytest.raises(TypeError, match="epoch must be an integer"):
        schedule(1.5)
    with pytest.raises(TypeError, match="step must be an integer"):
        S.exponential(0.1, unit="step")(True)


# --- ewa -----------------------------------------------------------------------------------------

def _hand_ewa(x, beta, bias_correction):
    v, out = 0.0, []
    for t, value in enumerate(x, start=1):
        v = beta * v + (1 - beta) * value
        out.append(v / (1 - beta**t) if bias_correction else v)
    return np.array(out)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.98])
@pytest.mark.parametrize("bias_correction", [True, False])
def test_ewa_matches_hand_loop(beta, bias_correction, rng):
    x = rng.standard_normal(200) * 3 + 10
    got = optim.ewa(x, beta, bias_correction=bias_correction)
    assert got.dtype == np.float64 and got.shape == x.shape
    np.testing.assert_allclose(got, _hand_ewa(x, beta, bias_correction), rtol=1e-13)


def test_ewa_bias_correction():
    """A constant series: corrected averages are the constant from the first; uncorrected ones
    start near 0 (1 - beta^t times the constant)."""
    x = np.full(50, 4.0)
    np.testing.assert_allclose(optim.ewa(x, 0.9), 4.0, rtol=1e-14)
    raw = optim.ewa(x, 0.9, bias_correction=False)
    np.testing.assert_allclose(raw, 4.0 * (1 - 0.9 ** np.arange(1, 51)), rtol=1e-14)
    assert raw[0] == pytest.approx(0.4)
    assert optim.ewa([1, 2, 3], 0.0).tolist() == [1.0, 2.0, 3.0]  # beta 0: the values; ints ok
    assert optim.ewa([], 0.5).shape == (0,)


@pytest.mark.parametrize("values, beta, exc, match", [
    ([1.0, 2.0], 1.0, ValueError, r"beta must be a number in \[0, 1\)"),
    ([1.0, 2.0], -0.1, ValueError, "beta"),
    ([1.0, 2.0], "0.9", TypeError, "beta must be a real number"),
    ([[1.0, 2.0]], 0.9, ValueError, "values must be 1-D"),
    ([1.0, float("nan")], 0.9, ValueError, r"values contains NaN or inf \(first at index 1\)"),
    (["a", "b"], 0.9, TypeError, "values must be real numbers"),
])
def test_ewa_invalid(values, beta, exc, match):
    with pytest.raises(exc, match=f"ewa: {match}"):
        optim.ewa(values, beta)
