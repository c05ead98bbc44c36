"""A model on the "cuda" backend (Numba's CUDA simulator, small launch sizes): ``fastnn.nn``
runs on the CUDA kernels and array functions with everything kept on the device."""
import numpy as np
import pytest
from test_cuda_kernels import (
    pytestmark,  # noqa: F401  (the same warning filters)
    small_blocks,  # noqa: F401  (autouse fixture: applies here too)
)


def test_a_model_trains_alike_on_the_cuda_and_cpu_backends(rng):
    """Sequential on backend "cuda" (device-resident parameters, workspaces and optimizer state):
    two Adam steps with L2 give the cpu backend's losses, accuracies and weights."""
    from fastnn import optim
    from fastnn.nn import BatchNorm, Dense, ReLU, Sequential

    X = rng.standard_normal((12, 5)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    results = {}
    for backend in ("cpu", "cuda"):
        model = Sequential([Dense(6, use_bias=False), BatchNorm(), ReLU(), Dense(3)],
                           backend=backend).build(5, seed=1)
        adam = optim.Adam(0.05, backend=backend)
        steps = [model.train_on_batch(X, y, adam, l2=1e-2) for _ in range(2)]
        results[backend] = steps, model.get_weights()
    (cpu_steps, (cpu_flat, cpu_state)), (gpu_steps, (gpu_flat, gpu_state)) = results.values()
    np.testing.assert_allclose(gpu_steps, cpu_steps, rtol=1e-5)
    np.testing.assert_allclose(gpu_flat, cpu_flat, rtol=1e-4, atol=1e-6)
    for cpu_layer, gpu_layer in zip(cpu_state, gpu_state):
        for key in cpu_layer:
            np.testing.assert_allclose(gpu_layer[key], cpu_layer[key], rtol=1e-4, atol=1e-6)


def test_fit_on_cuda_keeps_the_data_on_the_device_and_matches_cpu(rng, tmp_path):
    """fit with shuffled mini-batches (gathered on the device), validation data and a step
    schedule; predict, evaluate, save and load onto "cuda" agree with the cpu backend."""
    import fastnn
    from fastnn import optim
    from fastnn.nn import BatchNorm, Dense, ReLU, Sequential

    X = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    runs = {}
    for backend in ("cpu", "cuda"):
        model = Sequential([Dense(5, use_bias=False), BatchNorm(), ReLU(), Dense(3)],
                           backend=backend)
        history = model.fit(X, y, epochs=2, batch_size=4, optimizer=optim.Adam(0.05),
                            schedule=optim.inverse_time(0.05, 0.5), validation_data=(X, y),
                            seed=3, verbose=False)
        model.save(tmp_path / f"{backend}.npz")
        loaded = fastnn.load(tmp_path / f"{backend}.npz", backend=backend)
        runs[backend] = (history.history, model.predict_proba(X), model.evaluate(X, y),
                         loaded.predict_proba(X), loaded.optimizer.t)
    cpu, gpu = runs["cpu"], runs["cuda"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        np.testing.assert_allclose(gpu[0][key], cpu[0][key], rtol=1e-4, err_msg=key)
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gpu[2], cpu[2], rtol=1e-4)
    np.testing.assert_allclose(gpu[3], gpu[1], rtol=1e-6)
    assert gpu[4] == cpu[4] == 6


@pytest.mark.parametrize("loss, outputs", [("sigmoid_cross_entropy", 1),
                                           ("sigmoid_cross_entropy", 2),
                                           ("mean_squared_error", 1)])
def test_binary_multilabel_and_regression_models_match_cpu(rng, loss, outputs):
    """A model with a Normalization layer and each loss beyond softmax cross-entropy: fit
    (statistics learned on the device's data, validation metrics), predict, predict_proba and
    evaluate agree with the cpu backend."""
    from fastnn import optim
    from fastnn.nn import Dense, Normalization, ReLU, Sequential

    X = rng.standard_normal((10, 3)).astype(np.float32) * 4 + 2
    y = (rng.random((10, outputs)) < 0.5).astype(np.float32)
    if loss == "mean_squared_error":
        y = X[:, :1] - X[:, 1:2]
    runs = {}
    for backend in ("cpu", "cuda"):
        model = Sequential([Normalization(), Dense(4), ReLU(), Dense(outputs)], loss=loss,
                           backend=backend)
        history = model.fit(X, y, epochs=2, batch_size=5, optimizer=optim.Adam(0.05),
                            validation_data=(X, y), verbose=False)
        proba = model.predict_proba(X) if loss != "mean_squared_error" else None
        runs[backend] = (history.history, model.predict(X), proba,
                         model.evaluate(X, y, return_dict=True))
    cpu, gpu = runs["cpu"], runs["cuda"]
    assert set(gpu[0]) == set(cpu[0])
    for key in cpu[0]:
        np.testing.assert_allclose(gpu[0][key], cpu[0][key], rtol=1e-4, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-4, atol=1e-6)
    if cpu[2] is not None:
        np.testing.assert_allclose(gpu[2], cpu[2], rtol=1e-4, atol=1e-6)
    assert gpu[3] == pytest.approx(cpu[3], rel=1e-4, abs=1e-6)
