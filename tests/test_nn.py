"""Layers, initializers and gradient checking (fastnn.nn, fastnn.gradcheck)."""
import numpy as np
import pytest
from helpers import BACKENDS, over_backends

from fastnn import gradcheck
from fastnn.nn import (
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    initializers,
)

ACTIVATIONS = ["linear", "relu", "tanh", "sigmoid"]


# --- initializers --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("zeros", 0.0), ("random", 0.01), ("he", np.sqrt(2 / 400)), ("lecun", np.sqrt(1 / 400)),
    ("glorot", np.sqrt(2 / (400 + 300)))])
def test_initializer_scales(name, expected):
    W = initializers.initialize(name, (400, 300), np.random.default_rng(0))
    assert W.shape == (400, 300) and W.dtype == np.float32
    assert abs(W.std() - expected) <= 0.02 * expected + 1e-12
    assert abs(W.mean()) < 0.05 * expected + 1e-12


def test_initializer_is_seeded_and_random_scale_is_used():
    a = initializers.initialize("he", (5, 4), np.random.default_rng(3))
    b = initializers.initialize("he", (5, 4), np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    W = initializers.initialize("random", (500, 500), np.random.default_rng(0), scale=0.5)
    assert abs(W.std() - 0.5) < 0.01


def test_unknown_initializer_and_activation_are_rejected():
    with pytest.raises(ValueError, match="unknown initializer 'xavier'"):
        Dense(3, init="xavier")
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        Dense(3, activation="gelu")
    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        Activation("softplus")
    with pytest.raises(ValueError, match="units must be a positive integer"):
        Dense(0)


def test_model_build_is_seeded_and_places_parameters_in_one_buffer():
    def make():
        return Sequential([Dense(5, use_bias=False), BatchNorm(), ReLU(), Dense(3)]).build(4, 7)
    a, b = make(), make()
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert a.count_params() == 4 * 5 + 2 * 5 + 5 * 3 + 3
    W = a.layers[0].params["W"]
    assert np.shares_memory(W, a.flat_params)
    assert "b" not in a.layers[0].params  # use_bias=False: no bias before BatchNorm
    np.testing.assert_array_equal(a.layers[1].params["gamma"], 1)
    np.testing.assert_array_equal(a.layers[3].params["b"], 0)


# --- layer behaviour -----------------------------------------------------------------------------

def test_dropout_is_inverted_and_inactive_at_prediction():
    layer = Dropout(0.25)
    X = np.ones((2000, 50), np.float32)
    Y = layer.forward(X, training=True)
    kept = Y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(Y[kept], 1 / 0.75, rtol=1e-6)
    assert abs(Y.mean() - 1.0) < 0.02  # expected activation unchanged
    np.testing.assert_array_equal(layer.backward(X), Y)  # same mask scales the gradient
    np.testing.assert_array_equal(layer.forward(X, training=False), X)
    with pytest.raises(ValueError, match="rate must be in"):
        Dropout(1.0)


def test_batchnorm_layer_updates_running_statistics_only_in_training():
    model = Sequential([BatchNorm(decay=0.5)]).build(3)
    layer = model.layers[0]
    X = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32) * 2 + 5
    layer.forward(X, training=False)
    np.testing.assert_array_equal(layer.running_mean, 0)
    layer.forward(X, training=True)
    np.testing.assert_allclose(layer.running_mean, 0.5 * X.mean(axis=0), rtol=1e-5)


@over_backends
def test_activation_layers_match_fused_dense(backend):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((7, 4))
    for layer, name in ((ReLU(), "relu"), (Tanh(), "tanh"), (Sigmoid(), "sigmoid")):
        fused = Sequential([Dense(3, activation=name)], backend=backend, dtype=np.float64)
        split = Sequential([Dense(3), layer], backend=backend, dtype=np.float64)
        fused.build(4, 0)
        split.build(4, 0)
        np.testing.assert_allclose(split.forward(X, True), fused.forward(X, True), rtol=1e-12)


# --- gradient checks -----------------------------------------------------------------------------

def _upstream(shape, seed=5):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradcheck_dense_layer(backend, activation):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6, 5))
    layer = Dense(4, activation=activation, init="lecun")
    layer.backend = backend
    result = gradcheck(layer, X, _upstream((6, 4)))
    assert result.difference < 1e-7, str(result)
    assert set(result.per_parameter) == {"layer0.Dense.W", "layer0.Dense.b", "input dX"}


@over_backends
def test_gradcheck_batchnorm_layer(backend):
    X = np.random.default_rng(3).standard_normal((8, 5)) * 3 + 1
    layer = BatchNorm()
    layer.backend = backend
    result = gradcheck(layer, X, _upstream((8, 5)))
    assert result.difference < 1e-7, str(result)


def test_gradcheck_dropout_with_fixed_mask():
    X = np.random.default_rng(4).standard_normal((10, 6))
    result = gradcheck(Dropout(0.5), X, _upstream((10, 6)))
    assert result.difference < 1e-7, str(result)


@over_backends
@pytest.mark.parametrize("l2", [0.0, 0.7])
def test_gradcheck_model_with_softmax_loss_batchnorm_dropout_and_l2(backend, l2):
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((12, 5)), rng.integers(0, 3, 12)
    model = Sequential([Dense(6, use_bias=False), BatchNorm(), Activation("tanh"), Dropout(0.3),
                        Dense(4, activation="sigmoid"), Dense(3)], backend=backend,
                       dtype=np.float64)
    result = gradcheck(model, X, y, l2=l2)
    assert result.difference < 1e-7, str(result)
    assert len(result.per_parameter) == 7  # W; gamma, beta; W, b; W, b


def test_gradcheck_catches_a_wrong_backward_and_names_it(monkeypatch):
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    model = Sequential([Dense(5, activation="tanh"), Dense(3)], dtype=np.float64)
    model.build(4)
    layer = model.layers[1]
    right = layer.backward

    def wrong_backward(dA, overwrite_dA=False):
        dX = right(dA, overwrite_dA)
        layer.grads["W"][...] *= 1.1  # a 10% error in dW of the output layer
        return dX
    monkeypatch.setattr(layer, "backward", wrong_backward)
    result = gradcheck(model, X, y)
    assert result.difference > 1e-3
    assert result.worst == "layer1.Dense.W"
    assert not result


def test_gradcheck_restores_running_statistics_and_needs_float64():
    X, y = np.random.default_rng(8).standard_normal((9, 3)), np.arange(9) % 2
    model = Sequential([BatchNorm(), Dense(2)], dtype=np.float64)
    model.build(3)
    before = model.layers[0].running_mean.copy()
    gradcheck(model, X, y)
    np.testing.assert_array_equal(model.layers[0].running_mean, before)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(Sequential([Dense(2)]), X, y)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("activation", [ReLU, Tanh, Sigmoid])
def test_activation_after_batchnorm_is_fused_with_the_same_results(backend, activation,
                                                                   monkeypatch):
    """Sequential runs BatchNorm + Activation as one fused kernel (the Activation layer itself
    is not run); a Dropout(0) in between (an identity) keeps them apart: both give the same
    loss, gradients and running stats."""
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((30, 5)), rng.integers(0, 3, 30)
    fused = Sequential([Dense(6, use_bias=False), BatchNorm(), activation(), Dense(3)],
                       backend=backend, dtype=np.float64).build(5)
    split = Sequential([Dense(6, use_bias=False), BatchNorm(), Dropout(0.0), activation(),
                        Dense(3)], backend=backend, dtype=np.float64).build(5)
    assert fused.layers[1].fused_activation == fused.layers[2].name
    assert split.layers[1].fused_activation == "linear"

    def not_run(*args, **kwargs):
        raise AssertionError("the fused Activation layer was run on its own")
    for method in ("forward", "backward"):
        monkeypatch.setattr(fused.layers[2], method, not_run)
    loss_fused, _ = fused.loss_and_gradients(X, y)
    loss_split, _ = split.loss_and_gradients(X, y)
    assert loss_fused == pytest.approx(loss_split, rel=1e-12)
    np.testing.assert_allclose(fused.flat_grads, split.flat_grads, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(fused.predict_proba(X), split.predict_proba(X), rtol=1e-12)
    assert gradcheck(fused, X, y)


def test_the_model_tells_layers_what_they_need_through_their_hooks():
    """``fuse`` at construction (a layer reused after its model is gone is fused afresh),
    ``bind`` at build (only the first layer skips dX) and ``on_epoch_begin`` with each epoch's
    generator, seeded by (seed, epoch), in ``fit``."""
    class Recorder(Dropout):
        def on_epoch_begin(self, epoch, rng):
            super().on_epoch_begin(epoch, rng)
            self.epochs.append((epoch, rng.bit_generator.state))
    recorder = Recorder(0.5)
    recorder.epochs = []
    norm, relu = BatchNorm(), ReLU()
    first = Sequential([Dense(4), norm, relu, Dense(3)])
    assert norm.fused_activation == "relu"
    del first
    model = Sequential([Dense(4, use_bias=False), norm, recorder, relu, Dense(3)]).build(5)
    assert norm.fused_activation == "linear"
    assert [layer.input_grad for layer in model.layers] == [False, True, True, True, True]
    np.testing.assert_array_equal(relu.forward(np.array([[-1.0, 2.0]]), False), [[0, 2]])
    X, y = np.random.default_rng(12).standard_normal((8, 5)), np.arange(8) % 3
    model.fit(X, y, epochs=3, batch_size=4, seed=7, verbose=False)
    assert [epoch for epoch, _ in recorder.epochs] == [0, 1, 2]
    assert recorder.epochs[2][1] == np.random.default_rng([7, 2]).bit_generator.state
