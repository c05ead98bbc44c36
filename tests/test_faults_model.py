"""Bad input and faults at the model API (issue 13): each test is a regression test for a defect
that gave a wrong value or state with no error, or the wrong kind of error. "cuda" runs in
Numba's CUDA simulator with small arrays."""
import copy
import json
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastnn
import fastnn.data
from fastnn import optim
from fastnn.data import minibatch_indices
from fastnn.nn import (
    BatchNorm,
    Dense,
    Dropout,
    EarlyStopping,
    ReLU,
    Sequential,
    TrainingDivergedError,
)

BACKENDS = ["numpy", "cpu", "cuda"]


def data(n=65, n_features=4, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_features)).astype(np.float32), np.arange(n) % n_classes


def bn_model(backend=None, dtype=np.float32, units=8):
    return Sequential([Dense(units, use_bias=False), BatchNorm(), ReLU(), Dense(3)],
                      backend=backend, dtype=dtype)


def state(model):
    """Everything a failed call must leave unchanged: parameters, running statistics and the
    optimizer's state (host copies)."""
    flat, states = model.get_weights()
    opt = model.optimizer.state_dict() if model.optimizer is not None else None
    return flat, states, opt


def assert_same_state(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    for sa, sb in zip(a[1], b[1]):
        for key in sa:
            np.testing.assert_array_equal(sa[key], sb[key])
    if a[2] is not None:
        assert a[2]["t"] == b[2]["t"]
        for name, arrays in a[2]["state"].items():
            for x, z in zip(arrays, b[2]["state"][name]):
                np.testing.assert_array_equal(x, z)


# --- 1. a one-row mini-batch with BatchNorm ------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_one_row_last_batch_is_joined_to_the_previous_one(backend):
    """65 rows at batch 64: one step of 65 rows, finite running variance, predict works."""
    n = 9 if backend == "cuda" else 65
    X, y = data(n)
    model = bn_model(backend, units=4)
    seen, step = [], model._loss_and_gradients  # (rows of each training step)
    model._loss_and_gradients = lambda X, y, l2: seen.append(X.shape[0]) or step(X, y, l2)
    model.fit(X, y, epochs=1, batch_size=n - 1, verbose=False)
    assert seen == [n]
    assert np.isfinite(model.get_weights()[1][1]["running_var"]).all()
    assert model.predict(X).shape == (n,)


def test_minibatch_indices_fold_a_single_last_row_only_when_asked():
    assert [len(r) for r in minibatch_indices(65, 64, seed=1, fold_single_row=True)] == [65]
    assert [len(r) for r in minibatch_indices(65, 64, seed=1)] == [64, 1]
    assert [len(r) for r in minibatch_indices(66, 64, seed=1, fold_single_row=True)] == [64, 2]
    assert [len(r) for r in minibatch_indices(1, 64, seed=1, fold_single_row=True)] == [1]
    rows = np.concatenate(list(minibatch_indices(129, 64, seed=3, fold_single_row=True)))
    np.testing.assert_array_equal(np.sort(rows), np.arange(129))


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_row_training_with_batchnorm_is_rejected_before_anything_changes(backend):
    X, y = data(6)
    model = bn_model(backend, units=4).build(4)
    model.train_on_batch(X, y, optim.Adam(0.01, backend=backend))
    before = state(model)
    with pytest.raises(ValueError, match="BatchNorm needs at least 2 rows"):
        model.train_on_batch(X[:1], y[:1])
    with pytest.raises(ValueError, match="BatchNorm needs at least 2 rows"):
        model.forward(X[:1], training=True)
    with pytest.raises(ValueError, match="BatchNorm needs at least 2 rows"):
        model.fit(X[:1], y[:1], epochs=1, verbose=False)
    assert_same_state(before, state(model))
    assert model.predict(X[:1]).shape == (1,)  # inference on one row is fine


def test_the_batchnorm_layer_itself_rejects_one_training_row():
    model = bn_model().build(4)
    with pytest.raises(ValueError, match="at least 2 rows"):
        model.layers[1].forward(np.ones((1, 8), np.float32), True)


# --- 3. one layer object in two places ----------------------------------------------------------

def test_a_layer_listed_twice_is_rejected():
    dense = Dense(4)
    with pytest.raises(ValueError, match="layer 2 .* is the same object as layer 0"):
        Sequential([dense, ReLU(), dense, Dense(3)])
    assert dense.model is None  # nothing claimed by the failed constructor


def test_a_layer_of_a_live_model_is_rejected_and_free_after_the_model_is_gone():
    layers = [Dense(4), ReLU(), Dense(3)]
    first = Sequential(layers)
    with pytest.raises(ValueError, match="layer 0 .* is already in another model"):
        Sequential([layers[0], Dense(3)])
    with pytest.raises(ValueError, match="already in another model"):
        fastnn.gradcheck(layers[0], np.ones((2, 3)), np.ones((2, 4)))
    del first
    assert Sequential(layers).layers[0] is layers[0]


def test_deepcopy_of_a_model_is_independent():
    X, y = data(40)
    model = bn_model()
    model.fit(X, y, epochs=1, verbose=False)
    twin = copy.deepcopy(model)
    assert all(layer.model is twin for layer in twin.layers)
    before = model.predict_proba(X)
    twin.fit(X, y, epochs=2, verbose=False)
    np.testing.assert_array_equal(model.predict_proba(X), before)
    assert not np.array_equal(twin.predict_proba(X), before)


# --- 4. set_weights and load take exact shapes, dtypes, finite values -----------------------------

@pytest.mark.parametrize("change, match", [
    (lambda w: (np.ones(1, np.float32), w[1]), r"params must have shape \(\d+,\)"),
    (lambda w: (w[0].astype(np.complex64), w[1]), "params must have shape .* dtype float32"),
    (lambda w: (w[0].astype(np.float64), w[1]), "params must have shape .* dtype float32"),
    (lambda w: (np.where(np.arange(w[0].size) == 3, np.nan, w[0]).astype(np.float32), w[1]),
     "params contains NaN"),
    (lambda w: (w[0], [w[1][0], {"running_mean": w[1][1]["running_mean"],
                                 "running_var": np.float32(1)}, {}, {}]),
     "layer1.running_var must be a NumPy array"),
    (lambda w: (w[0], [w[1][0], {"running_mean": w[1][1]["running_mean"]}, {}, {}]),
     "state of layer 1 .* must have the keys"),
    (lambda w: (w[0], [w[1][0], {"running_mean": w[1][1]["running_mean"],
                                 "running_var": -w[1][1]["running_var"]}, {}, {}]),
     "layer1.running_var must be >= 0"),
    (lambda w: (w[0], w[1][:2]), "list of 4 dicts"),
    (lambda w: w[0], "must be the pair"),
])
def test_set_weights_rejects_what_is_not_exactly_the_models(change, match):
    model = bn_model().build(4)
    weights = model.get_weights()
    with pytest.raises((TypeError, ValueError), match=match):
        model.set_weights(change(weights))
    np.testing.assert_array_equal(model.get_weights()[0], weights[0])
    np.testing.assert_array_equal(model.get_weights()[1][1]["running_var"],
                                  weights[1][1]["running_var"])


def saved(tmp_path, optimizer="adam"):
    X, y = data(40)
    model = bn_model()
    model.fit(X, y, epochs=1, optimizer=optimizer, verbose=False)
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path


def rewrite(path, target, change=None, extra=None, header=None, compression=zipfile.ZIP_STORED):
    """Copy the archive at ``path`` to ``target`` with member arrays changed
    (change: {name: array}), extra members added and the header replaced."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    if header is not None:
        arrays["header"] = np.array(json.dumps(header))
    arrays.update(change or {})
    with zipfile.ZipFile(target, "w", compression) as out:
        for name, array in {**arrays, **(extra or {})}.items():
            with out.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    return target


def header_of(path):
    with np.load(path) as archive:
        return json.loads(str(archive["header"]))


@pytest.mark.parametrize("member, value, match", [
    ("params", lambda a: a[:1], "member 'params' has shape"),
    ("params", lambda a: np.full_like(a, np.nan), "params contains NaN"),
    ("params", lambda a: a.astype(np.float64), "dtype float64, expected shape"),
    ("params", lambda a: a.astype(np.complex64), "dtype complex64"),
    ("layer1.running_var", lambda a: -a, "running_var must be >= 0"),
    ("optimizer.m.0", lambda a: a[:-1], "member 'optimizer.m.0' has shape"),
])
def test_load_rejects_members_that_do_not_fit_the_architecture(tmp_path, member, value, match):
    _, path = saved(tmp_path)
    with np.load(path) as archive:
        bad = value(archive[member])
    target = rewrite(path, tmp_path / "bad.npz", change={member: bad})
    with pytest.raises(ValueError, match=match):
        fastnn.load(target)


# --- 5. untrusted files: bounded memory, sizes checked before allocating -----------------------

def test_load_reads_only_the_members_it_needs(tmp_path):
    model, path = saved(tmp_path)
    bomb = np.zeros(50_000_000, np.uint8)  # 50 MB of zeros, deflated to about 50 kB
    target = rewrite(path, tmp_path / "extra.npz", extra={"junk": bomb},
                     compression=zipfile.ZIP_DEFLATED)
    del bomb
    assert target.stat().st_size < 1_000_000
    tracemalloc.start()
    loaded = fastnn.load(target)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000
    np.testing.assert_array_equal(loaded.flat_params, model.flat_params)


def test_load_checks_declared_sizes_before_allocating(tmp_path):
    _, path = saved(tmp_path)
    header = header_of(path)
    header["layers"][0][1]["units"] = 50_000_000  # 200 M parameters (800 MB) declared
    target = rewrite(path, tmp_path / "huge.npz", header=header)
    tracemalloc.start()
    with pytest.raises(ValueError, match="member 'params' has shape"):
        fastnn.load(target)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000


def test_load_bounds_a_member_that_declares_more_than_deflate_can_give(tmp_path):
    _, path = saved(tmp_path)
    target = tmp_path / "liar.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
    raw = bytearray(target.read_bytes())
    # declare the stored 'params' member a thousand times larger in the central directory
    with zipfile.ZipFile(target) as archive:
        info = archive.getinfo("params.npy")
    central = raw.rfind(b"PK\x01\x02", 0, raw.find(b"params.npy", raw.find(b"PK\x01\x02")) + 1)
    raw[central + 24:central + 28] = (info.file_size * 2000).to_bytes(4, "little")
    target.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="declares|damaged|truncated"):
        fastnn.load(target)


@pytest.mark.parametrize("header_change, match", [
    (lambda h: h.update(format="other"), "format 'other'"),
    (lambda h: h.update(layers=[["Pickle", {}]]), "layers must be"),
    (lambda h: h.update(layers=[["Dense", {"units": "8"}]]), "architecture is invalid"),
    (lambda h: h.update(n_features=-1), "n_features must be an integer >= 1"),
    (lambda h: h.update(dtype="complex64"), "architecture is invalid"),
    (lambda h: h["optimizer"]["values"].update(optimizer="__class__"), "optimizer entry"),
    (lambda h: h["optimizer"]["values"].update(lr=-1.0), "lr"),
    (lambda h: h["optimizer"]["state"].update(m=2), "one array each"),
])
def test_load_rejects_a_damaged_header(tmp_path, header_change, match):
    _, path = saved(tmp_path)
    header = header_of(path)
    header_change(header)
    with pytest.raises(ValueError, match=match):
        fastnn.load(rewrite(path, tmp_path / "bad.npz", header=header))


def test_load_rejects_flipped_bytes_a_npy_file_and_names_a_bad_backend_first(tmp_path):
    model, path = saved(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[raw.find(model.flat_params[:8].tobytes()) + 5] ^= 0xFF  # a parameter: the CRC sees it
    flipped = tmp_path / "flipped.npz"
    flipped.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="load: .*flipped.npz"):
        fastnn.load(flipped)
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="not a fastnn model file"):
        fastnn.load(npy)
    with pytest.raises(ValueError, match="unknown backend 'bogus'"):
        fastnn.load(path, backend="bogus")
    with pytest.raises(ValueError, match="unknown backend 'bogus'"):
        fastnn.load(tmp_path / "missing.npz", backend="bogus")
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop", "adam"])
def test_save_writes_exactly_the_path_given_and_loads_every_optimizer(tmp_path, optimizer):
    model, _ = saved(tmp_path, optimizer)
    model.save(tmp_path / "x")
    assert not (tmp_path / "x.npz").exists()
    loaded = fastnn.load(tmp_path / "x")
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.state_dict()["t"] == model.optimizer.state_dict()["t"]
    np.testing.assert_array_equal(loaded.flat_params, model.flat_params)
    with pytest.raises(IsADirectoryError):
        model.save(tmp_path)


# --- 6. divergence restores the last good step ----------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", [lambda b: optim.GD(1e39, backend=b),
                                       lambda b: optim.Adam(3e38, backend=b)])
def test_divergence_in_the_update_keeps_the_last_good_step(backend, optimizer):
    X, y = data(8)
    model = bn_model(backend, units=4).build(4)
    opt = optimizer(backend)
    model.train_on_batch(X, y, optim.GD(0.1, backend=backend))
    model.optimizer = None
    before = state(model)
    with pytest.raises(TrainingDivergedError, match="last good step"):
        model.fit(X, y, epochs=3, batch_size=4, optimizer=opt, verbose=False)
    after = state(model)
    assert np.isfinite(after[0]).all()
    if opt.t == 0:  # the first step overflowed: nothing moved
        assert_same_state(before, after)
    assert np.isfinite(np.concatenate(
        [np.ravel(a) for arrays in opt.state_dict()["state"].values() for a in arrays] or [[0]]
    )).all()
    if opt.t == 0:
        model.predict(X)  # still usable


# --- 7. one exception family --------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_in_the_forward_pass_keeps_the_last_good_step(backend):
    """Weights that overflow the first product: the step fails before the update, and the
    running statistics are put back (the "cuda" backend checks NaN/inf once, at the end of the
    forward and backward passes, in ``kernel_scope``)."""
    X, y = data(8)
    model = bn_model(backend, units=4).build(4)
    model.train_on_batch(X, y, optim.GD(0.1, backend=backend))
    flat, states = model.get_weights()
    flat[:16] = 3e38  # the first Dense's 4x4 weights: X @ W overflows float32
    model.set_weights((flat, states))
    model.optimizer = None
    before = state(model)
    opt = optim.Adam(1e-3, backend=backend)
    with pytest.raises(TrainingDivergedError, match="last good step"):
        model.train_on_batch(X, y, opt)
    assert_same_state(before, state(model))
    assert opt.t == 0
    flat[:16] = 0.5  # good weights again: the next step trains (the failed one left no state)
    model.set_weights((flat, states))
    loss, _ = model.train_on_batch(X, y, optim.GD(0.1, backend=backend))
    assert np.isfinite(loss)


def test_nan_weights_give_the_exported_nonfinite_error_in_predict_and_evaluate():
    X, y = data(10)
    model = bn_model().build(4)
    model.flat_params[0] = np.nan  # (what only a bug or a direct write can do)
    for call in (lambda: model.predict(X), lambda: model.evaluate(X, y)):
        with pytest.raises(fastnn.NonFiniteError, match="forward pass of layer 0"):
            call()
    assert issubclass(fastnn.TrainingDivergedError, fastnn.NonFiniteError)
    assert issubclass(fastnn.NonFiniteError, FloatingPointError)


# --- 10. public methods check what they take; one model in several threads ------------------------

def test_forward_and_backward_check_their_arguments():
    X, y = data(10, n_features=8)
    model = bn_model().build(8)
    with pytest.raises(ValueError, match="X has 7 features, the model was built for 8"):
        model.forward(X[:, :7])
    np.testing.assert_array_equal(model.forward(X.astype(np.float64)), model.forward(X))
    with pytest.raises(RuntimeError, match="call forward\\(X, training=True\\) first"):
        model.backward(np.zeros((10, 3)))
    model.forward(X, training=True)
    with pytest.raises(ValueError, match=r"dZ must be a real array of shape \(10, 3\)"):
        model.backward(np.zeros((9, 3)))
    with pytest.raises(TypeError, match="training must be True or False"):
        model.forward(X, training="yes")
    with pytest.raises(RuntimeError, match="no parameters yet"):
        bn_model().forward(X)


def test_predict_between_a_training_forward_and_its_backward_changes_nothing():
    X, _ = data(10, n_features=4)
    model = Sequential([Dense(6), BatchNorm(), ReLU(), Dropout(0.3), Dense(3)]).build(4)
    dZ = np.random.default_rng(1).standard_normal((10, 3)).astype(np.float32)
    model.layers[3].fixed_mask = True
    model.forward(X, training=True)
    model.backward(dZ)
    expected = model.flat_grads.copy()
    model.forward(X, training=True)
    model.predict(X[:3])
    model.backward(dZ)
    np.testing.assert_array_equal(model.flat_grads, expected)


def test_predict_in_another_thread_while_fitting_changes_nothing():
    X, y = data(200)
    runs = []
    for concurrent in (False, True):
        model = bn_model()
        stop, errors = threading.Event(), []

        def predict_loop(model=model, stop=stop, errors=errors):
            while not stop.is_set():
                try:
                    model.predict(X)
                except Exception as error:  # noqa: BLE001  (reported below)
                    errors.append(error)
                    return
        worker = threading.Thread(target=predict_loop) if concurrent else None
        if worker:
            model.build(4)
            worker.start()
        try:
            history = model.fit(X, y, epochs=3, batch_size=16, verbose=False)
        finally:
            stop.set()
            if worker:
                worker.join()
        assert not errors
        runs.append((history.history["loss"], model.get_weights()[0]))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


# --- lower harm: fit's arguments, constructors, schedules, callbacks -----------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(validation_split=0.999), ValueError, "leave at least one row"),
    (dict(validation_split=1.0), ValueError, "validation_split must be in"),
    (dict(validation_split="0.1"), TypeError, "validation_split must be a number"),
    (dict(validation_data=(np.zeros((3, 4), np.float32),)), ValueError, "must be a pair"),
    (dict(validation_data=(np.zeros((3, 5), np.float32), np.zeros(3, int))), ValueError,
     "X has 5 features, the training data 4"),
    (dict(schedule="adam"), TypeError, "schedule must be a function"),
    (dict(schedule=lambda epoch: 0.0), ValueError, "returned lr = 0.0 at epoch 0"),
    (dict(schedule=lambda epoch: float("nan")), ValueError, "returned lr = nan"),
    (dict(callbacks=[EarlyStopping()]), ValueError, "EarlyStopping monitors 'val_loss'"),
    (dict(seed=-1), ValueError, "seed must be an integer >= 0"),
    (dict(l2=float("nan")), ValueError, "l2 must be"),
])
def test_bad_fit_arguments_fail_before_anything_changes(kwargs, error, match):
    X, y = data(40)
    model = bn_model()
    with pytest.raises(error, match=match):
        model.fit(X, y, epochs=2, verbose=False, **kwargs)
    assert model.n_features is None and model.optimizer is None


def test_fit_rejects_x_without_features_and_accepts_numpy_scalars():
    model = bn_model()
    with pytest.raises(ValueError, match="X is empty"):
        model.fit(np.zeros((10, 0), np.float32), np.zeros(10, int), epochs=1, verbose=False)
    X, y = data(40)
    model.fit(X, y, epochs=np.int64(1), batch_size=np.int32(16), l2=np.float32(0.01),
              verbose=False)


def test_a_schedule_that_underflows_later_is_named():
    X, y = data(40)
    model = bn_model()
    with pytest.raises(ValueError, match=r"schedule .*<lambda>.* returned lr = 0.0 at epoch 2"):
        model.fit(X, y, epochs=4, schedule=lambda e: 0.01 if e < 2 else 0.0, verbose=False)


def test_an_optimizer_holding_another_models_state_is_rejected():
    X, y = data(40)
    adam = optim.Adam(0.01)
    bn_model().fit(X, y, epochs=1, optimizer=adam, verbose=False)
    other = bn_model(units=5)
    with pytest.raises(ValueError, match="holds state for other parameters"):
        other.fit(X, y, epochs=1, optimizer=adam, verbose=False)
    assert other.n_features is None


@pytest.mark.parametrize("make, error, match", [
    (lambda: BatchNorm(decay="0.9"), TypeError, "decay must be a number"),
    (lambda: BatchNorm(eps=float("nan")), ValueError, "eps must be in"),
    (lambda: Dropout("0.5"), TypeError, "rate must be a number"),
    (lambda: Dropout(float("nan")), ValueError, "rate must be in"),
    (lambda: Dense(4, init_scale=float("nan")), ValueError, "init_scale must be in"),
    (lambda: Dense(4, init_scale=0), ValueError, "init_scale must be in"),
    (lambda: Dense(4, use_bias="no"), TypeError, "use_bias must be True or False"),
    (lambda: EarlyStopping(patience=1.5), ValueError, "patience must be an integer"),
    (lambda: EarlyStopping(min_delta=float("nan")), ValueError, "min_delta"),
])
def test_layer_and_callback_constructors_check_types(make, error, match):
    with pytest.raises(error, match=match):
        make()


# --- found by our own pass ------------------------------------------------------------------------

def test_fit_takes_callbacks_none_and_train_on_batch_keeps_a_named_optimizer():
    X, y = data(40)
    model = bn_model()
    model.fit(X, y, epochs=1, callbacks=None, verbose=False)
    model = bn_model()
    for _ in range(3):
        model.train_on_batch(X, y, optimizer="adam")
    assert model.optimizer.t == 3
    model.train_on_batch(X, y, optimizer="gd")
    assert type(model.optimizer) is optim.GD and model.optimizer.t == 1


def test_values_beyond_the_models_dtype_are_named_as_such():
    X, _ = data(5)
    model = bn_model().build(4)
    big = X.astype(np.float64)
    big[0, 0] = 1e39
    with pytest.raises(ValueError, match="beyond the range of the model's dtype float32"):
        model.predict(big)


def test_build_again_gives_a_fresh_model_on_the_same_backend():
    X, y = data(40)
    model = bn_model()
    model.fit(X, y, epochs=2, verbose=False)
    assert model.backend == "cpu"
    model.build(4, seed=0)
    fresh = bn_model().build(4, seed=0)
    assert_same_state(state(fresh), state(model))
    assert model.optimizer is None


def test_a_built_model_stays_on_its_backend_when_the_default_changes():
    X, y = data(40)
    model = bn_model()
    model.fit(X, y, epochs=1, seed=1, verbose=False)
    reference = bn_model(backend="cpu")
    reference.fit(X, y, epochs=1, seed=1, verbose=False)
    fastnn.set_backend("numpy")
    model.fit(X, y, epochs=1, seed=2, verbose=False)
    reference.fit(X, y, epochs=1, seed=2, verbose=False)
    np.testing.assert_array_equal(model.get_weights()[0], reference.get_weights()[0])


@pytest.mark.parametrize("call, match", [
    (lambda m, X, y: fastnn.gradcheck(m, X, y, eps=0), "eps must be a number in"),
    (lambda m, X, y: fastnn.gradcheck(Dense(3), X, np.ones(3)), "upstream gradient"),
    (lambda m, X, y: fastnn.gradcheck(Dense(3), X[0], np.ones((1, 3))), "X must be a non-empty"),
])
def test_gradcheck_checks_its_arguments(call, match):
    X, y = data(6)
    model = bn_model(dtype=np.float64)
    with pytest.raises(ValueError, match=match):
        call(model, X, y)


@pytest.mark.parametrize("call, match", [
    (lambda: fastnn.data.one_hot([0, 1], n_classes=2.7), "n_classes must be an integer"),
    (lambda: fastnn.data.one_hot(np.array([], int), n_classes=-3), "n_classes must be"),
    (lambda: fastnn.data.one_hot(np.array([2**62])), "do not fit in memory"),
    (lambda: list(fastnn.data.minibatches(np.zeros((4, 2)), np.zeros(4), 2, seed=-1)),
     "seed must be an integer >= 0"),
    (lambda: list(fastnn.data.minibatches(np.zeros((4, 2)), np.zeros(4), True)),
     "batch_size must be an integer"),
])
def test_data_helpers_name_their_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_load_names_an_unsupported_compression_and_saves_numpy_scalars(tmp_path):
    model = Sequential([Dense(4, init_scale=np.float32(0.1), init="random"), Dense(3)])
    X, y = data(20)
    model.fit(X, y, epochs=1, verbose=False)
    model.save(tmp_path / "m.npz")
    raw = bytearray((tmp_path / "m.npz").read_bytes())
    at = raw.find(b"PK\x01\x02")  # the first central directory entry: its compression method
    raw[at + 10:at + 12] = (99).to_bytes(2, "little")
    (tmp_path / "odd.npz").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="load: .*odd.npz"):
        fastnn.load(tmp_path / "odd.npz")
    assert fastnn.load(tmp_path / "m.npz").layers[0].init_scale == pytest.approx(0.1)


def test_load_names_a_damaged_end_record_and_refuses_what_is_not_a_regular_file(tmp_path):
    import os
    _, path = saved(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-4] ^= 0x20  # the end-of-central-directory record (an OSError from zipfile before)
    (tmp_path / "eocd.npz").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="load: .*eocd.npz"):
        fastnn.load(tmp_path / "eocd.npz")
    os.mkfifo(tmp_path / "fifo")  # (open() of a pipe would wait for a writer forever)
    with pytest.raises(ValueError, match="not a regular file"):
        fastnn.load(tmp_path / "fifo")
    with pytest.raises(ValueError, match="not a regular file"):
        fastnn.load(tmp_path)


def test_fit_with_batchnorm_needs_batches_of_two_rows():
    X, y = data(10)
    model = bn_model()
    with pytest.raises(ValueError, match="batch_size must be >= 2 for a model with BatchNorm"):
        model.fit(X, y, epochs=1, batch_size=1, verbose=False)
    assert model.n_features is None


def test_save_removes_temporary_files_left_by_killed_writers(tmp_path):
    import os
    model, _ = saved(tmp_path)
    dead = tmp_path / ".m.npz.999999999.abcd.tmp"  # (no such process)
    live = tmp_path / f".m.npz.{os.getpid()}.abcd.tmp"  # (a writer still at work)
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    model.save(tmp_path / "m.npz")
    assert not dead.exists() and live.exists()
    assert fastnn.load(tmp_path / "m.npz").count_params() == model.count_params()


def test_an_l2_factor_beyond_the_dtype_diverges_without_a_warning():
    import warnings
    X, y = data(20)
    model = bn_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TrainingDivergedError, match="L2 factor"):
            model.fit(X, y, epochs=1, l2=1e308, verbose=False)
