"""Search spaces of fastnn.tune: sampling scales, seeds, bad ranges, grids, zooms, grid vs
random."""

import numpy as np
import pytest

pytest.importorskip("optuna")

from fastnn.tune import (  # noqa: E402
    Choice,
    IntRange,
    LogUniform,
    OneMinusLogUniform,
    SearchSpace,
    Uniform,
    grid_vs_random,
)
from fastnn.tune.plots import plot_grid_vs_random  # noqa: E402


def draws(dist, n=2000, seed=1):
    """n values of the Optuna parameter of ``dist``, drawn by the search's RandomSampler."""
    space = SearchSpace({"p": dist})
    key = space.keys()["p"]
    return np.array([params[key] for params in space.sample(n, seed)])


def test_log_uniform_gives_each_decade_the_same_share():
    lr = draws(LogUniform(1e-4, 1.0))
    assert lr.min() >= 1e-4 and lr.max() <= 1.0
    shares = np.histogram(np.log10(lr), bins=[-4, -3, -2, -1, 0])[0] / lr.size
    # binomial standard deviation sqrt(0.25 * 0.75 / 2000) = 0.0097: four of them
    np.testing.assert_allclose(shares, 0.25, atol=0.04)


def test_one_minus_log_uniform_draws_one_minus_beta_per_decade():
    dist = OneMinusLogUniform(0.9, 0.999)
    space = SearchSpace({"beta": dist})
    assert space.keys() == {"beta": "1-beta"}
    one_minus = draws(dist)
    assert one_minus.min() >= 1e-3 - 1e-15 and one_minus.max() <= 1e-1 + 1e-15
    shares = np.histogram(np.log10(one_minus), bins=[-3, -2, -1])[0] / one_minus.size
    np.testing.assert_allclose(shares, 0.5, atol=0.04)  # beta in [0.9, 0.99) and [0.99, 0.999]
    beta = space.values({"1-beta": 0.01})["beta"]
    assert beta == pytest.approx(0.99)


def test_uniform_int_range_and_choice():
    x = draws(Uniform(-1.0, 3.0))
    assert x.min() >= -1 and x.max() <= 3 and abs(x.mean() - 1.0) < 0.1
    hidden = draws(IntRange(50, 100))
    assert set(hidden.tolist()) == set(range(50, 101))  # every integer, both ends included
    options = draws(Choice(["adam", "momentum", "rmsprop"]), n=300)
    assert set(options.tolist()) == {"adam", "momentum", "rmsprop"}
    layers = draws(IntRange(1, 1000, log=True))
    assert 0.2 < np.mean(layers < 32) < 0.8  # log scale: about half below sqrt(1000)


def test_same_seed_same_trials():
    space = SearchSpace({"lr": LogUniform(1e-4, 1), "beta": OneMinusLogUniform(0.9, 0.999),
                         "hidden": IntRange(50, 100), "opt": Choice(["adam", "gd"])})
    assert space.sample(10, seed=3) == space.sample(10, seed=3)
    assert space.sample(10, seed=3) != space.sample(10, seed=4)
    assert space.sample(10, 3, "grid") == space.sample(10, 3, "grid")


@pytest.mark.parametrize("make, argument", [
    (lambda: Uniform(1.0, 1.0), "empty"),
    (lambda: Uniform(2.0, 1.0), "inverted"),
    (lambda: LogUniform(0.0, 1.0), "low must be > 0"),
    (lambda: LogUniform(-1e-3, 1.0), "low must be > 0"),
    (lambda: OneMinusLogUniform(0.9, 1.0), "inside \\(0, 1\\)"),
    (lambda: OneMinusLogUniform(0.0, 0.9), "inside \\(0, 1\\)"),
    (lambda: OneMinusLogUniform(0.99, 0.9), "inverted"),
    (lambda: IntRange(100, 50), "empty"),
    (lambda: IntRange(0, 5, log=True), "low must be >= 1"),
    (lambda: IntRange(1.5, 5), "low must be an integer"),
    (lambda: Uniform(float("nan"), 1.0), "low must be a finite"),
    (lambda: Choice([]), "options must be a non-empty list"),
    (lambda: Choice(["a", "a"]), "distinct"),
    (lambda: SearchSpace({"learning rate": Uniform(0, 1)}), "identifiers"),
])
def test_bad_ranges_raise_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


def test_bad_range_message_names_class_argument_and_values():
    with pytest.raises(ValueError) as info:
        LogUniform(0.0, 1.0)
    message = str(info.value)
    assert message.startswith("LogUniform: low must be > 0") and "low=0.0" in message
    with pytest.raises(TypeError, match="'lr' must be a fastnn.tune distribution"):
        SearchSpace({"lr": (1e-4, 1)})


def test_grid_spreads_points_evenly_in_each_scale():
    space = SearchSpace({"lr": LogUniform(1e-4, 1.0), "x": Uniform(0.0, 1.0),
                         "beta": OneMinusLogUniform(0.9, 0.999)})
    grid = space.grid(30)  # 3 x 3 x 3 = 27 <= 30 < 4 x 3 x 3
    assert [len(v) for v in grid.values()] == [3, 3, 3]
    np.testing.assert_allclose(np.diff(np.log10(grid["lr"])), 4 / 3)
    np.testing.assert_allclose(np.diff(grid["x"]), 1 / 3)
    np.testing.assert_allclose(np.diff(np.log10(grid["1-beta"])), 2 / 3)
    assert len(space.sample(30, 0, "grid")) == 27
    assert SearchSpace({"n": IntRange(1, 3), "o": Choice(["a", "b"])}).grid(6) == {
        "n": [1, 2, 3], "o": ["a", "b"]}
    with pytest.raises(ValueError, match="n_trials must be at least that"):
        SearchSpace({"o": Choice(["a", "b", "c"])}).grid(2)


def test_random_tries_more_distinct_values_than_grid_for_the_same_budget(tmp_path):
    space = SearchSpace({"lr": LogUniform(1e-4, 1.0), "l2": LogUniform(1e-4, 1.0)})
    comparison = grid_vs_random(space, 25, seed=0)
    assert len(comparison["grid"]) == len(comparison["random"]) == 25
    assert comparison["distinct"] == {"lr": (5, 25), "l2": (5, 25)}
    path = tmp_path / "grid_vs_random.png"
    plot_grid_vs_random(space, comparison, path, "lr", "l2")
    assert path.stat().st_size > 10_000


def test_zoom_narrows_each_range_in_its_own_scale():
    space = SearchSpace({"lr": LogUniform(1e-4, 1.0), "beta": OneMinusLogUniform(0.9, 0.999),
                         "x": Uniform(0.0, 10.0), "hidden": IntRange(50, 100),
                         "opt": Choice(["adam", "gd"])})
    best = [{"lr": 1e-2, "1-beta": 1e-2, "x": 5.0, "hidden": 70, "opt": "gd"},
            {"lr": 1e-3, "1-beta": 2e-3, "x": 6.0, "hidden": 80, "opt": "gd"}]
    zoomed = space.zoom(best, margin=0.1)
    # log10 lr: best in [-3, -2], widened by 0.1 * 4 decades each side
    np.testing.assert_allclose(np.log10(zoomed["lr"].bounds()), [-3.4, -1.6])
    np.testing.assert_allclose(np.log10(zoomed["beta"].bounds()), [-2.699 - 0.2, -2 + 0.2],
                               atol=1e-3)
    assert zoomed["x"].bounds() == pytest.approx((4.0, 7.0))
    assert (zoomed["hidden"].low, zoomed["hidden"].high) == (65, 85)
    assert zoomed["opt"] == space["opt"]  # choices are kept whole
    # at the edge the zoom stays inside the range
    edge = space.zoom([{"lr": 1.0, "1-beta": 1e-3, "x": 0.0, "hidden": 100, "opt": "adam"}])
    assert edge["lr"].bounds()[1] == 1.0 and edge["x"].bounds()[0] == 0.0
    assert 0.9 <= edge["beta"].low < edge["beta"].high <= 0.999 + 1e-12
    assert SearchSpace.from_dict(zoomed.to_dict()) == zoomed
    with pytest.raises(ValueError, match="margin"):
        space.zoom(best, margin=0)
