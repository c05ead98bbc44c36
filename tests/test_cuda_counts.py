"""What one CUDA training step asks of the driver (``fastnn.bench.counting``, ``python -m fastnn
bench --cuda --count``), counted in Numba's CUDA simulator: the counts must not grow back.

The ceilings are today's counts for the benchmark MLP's layers (20-8-8-10 here: the simulator
runs every GPU thread in Python) at batch 8, with the column sums' row blocks holding the whole
batch or 3 rows (as a batch of 4096 spreads over 16 blocks: no count may grow with the batch);
lower them as overhead work removes more. A
step of ``fit`` also copies the batch's row indices to the device (one copy; none in
``train_on_batch`` on device arrays).
"""
import numpy as np
import pytest
from numba import cuda

from fastnn.bench import counting
from fastnn.cli import main

#: kind -> the most one training step may make
CEILINGS = {"kernel launches": 21, "device allocations": 0, "host-to-device copies": 0,
            "device-to-host copies": 1, "device-to-device copies": 4, "synchronizations": 1}


@pytest.mark.parametrize("rows_per_block", [256, 3])
def test_one_training_step_stays_within_the_ceilings(rows_per_block, monkeypatch):
    from fastnn import config

    monkeypatch.setattr(config, "CUDA_REDUCE_ROWS_PER_BLOCK", rows_per_block)
    counts = counting.count_step(batch=8, widths=(20, 8, 8, 10))
    over = {kind: (counts[kind], ceiling) for kind, ceiling in CEILINGS.items()
            if counts[kind] > ceiling}
    assert not over, f"a training step now makes more of these (count, ceiling): {over}"
    assert counts["kernel launches"] > 0  # (the counters see the step at all)


@cuda.jit
def _add_one(a):
    i = cuda.grid(1)
    if i < a.size:
        a[i] += 1


def test_the_counters_count_each_kind_once():
    with counting.counting() as counts:
        d = cuda.to_device(np.zeros(4))      # an allocation and a copy in
        e = cuda.device_array_like(d)        # an allocation
        e.copy_to_device(d)                  # a copy on the device
        _add_one[1, 4](d)                    # a launch
        host = d.copy_to_host()              # a copy out, which waits for the GPU
    assert dict(counts) == {"kernel launches": 1, "device allocations": 2,
                            "host-to-device copies": 1, "device-to-host copies": 1,
                            "device-to-device copies": 1, "synchronizations": 1}
    assert host.tolist() == [1.0] * 4
    assert cuda.to_device is not None and not hasattr(cuda.to_device, "__wrapped__")  # undone


def test_bench_count_prints_the_counts(capsys):
    main(["bench", "--cuda", "--count"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("fastnn bench --cuda --count: one training step of the 20-8-8-10")
    assert [line.split()[-1].isdigit() for line in lines[1:]] == [True] * len(counting.KINDS)


def test_bench_count_needs_cuda():
    with pytest.raises(SystemExit, match="^fastnn bench: --count counts the CUDA training step"):
        main(["bench", "--count"])


def test_kernel_scope_checks_nan_once_at_its_end():
    """Inside the CUDA backend's ``kernel_scope`` a call on device arrays does not wait to check
    NaN/inf; leaving the scope does, once. Nested scopes check at the outermost end; an update
    that must undo its writes (an optimizer's) still checks at once; host arrays are checked
    before they are copied back."""
    import fastnn.kernels.cuda as kc
    from fastnn.errors import NonFiniteError

    bad = cuda.to_device(np.array([[1.0, np.nan]], np.float32))
    good = cuda.to_device(np.ones((1, 2), np.float32))
    with pytest.raises(NonFiniteError, match="NaN or inf in a kernel of this training step"):
        with kc.kernel_scope:
            with kc.kernel_scope:
                kc.activation_forward(bad, "relu")  # no error here
            kc.activation_forward(good, "relu")
    with kc.kernel_scope, counting.counting() as counts:  # (usable again)
        kc.activation_forward(good, "relu")
    assert counts["synchronizations"] == 0
    p, g = cuda.to_device(np.ones(2, np.float32)), cuda.to_device(np.array([1, np.nan], np.float32))
    backup = cuda.device_array(2, np.float32)
    with kc.kernel_scope:
        with kc.checks_now(), pytest.raises(NonFiniteError):  # (checked at once, p put back)
            kc.sgd_update(p, g, 0.1, state_out=(), backup=backup)
        assert p.copy_to_host().tolist() == [1.0, 1.0]
    with pytest.raises(NonFiniteError), kc.kernel_scope:  # deferred: p is the caller's to undo
        kc.sgd_update(p, g, 0.1, state_out=(), backup=backup)
    np.testing.assert_array_equal(backup.copy_to_host(), [1.0, 1.0])
    with pytest.raises(NonFiniteError), kc.kernel_scope:
        kc.activation_forward(np.array([[np.inf]], np.float32), "relu")  # a host array


def test_numbers_inside_kernel_scope_are_read_once_at_its_end(rng):
    """The loss, the correct count and a sum of squares computed inside ``kernel_scope`` on
    device arrays are ``Pending`` numbers: nothing waits for the GPU until the scope ends, which
    reads them all in one copy; they equal the numbers the same calls return outside."""
    import fastnn.kernels.cuda as kc
    from fastnn.kernels import reference as ref

    Z = rng.standard_normal((6, 4)).astype(np.float32)
    y = rng.integers(0, 4, 6)
    Zd, yd = cuda.to_device(Z), cuda.to_device(y)
    with counting.counting() as counts:
        with kc.kernel_scope:
            loss, _ = kc.softmax_cross_entropy(Zd, yd)
            n_correct = kc.count_correct(Zd, yd)
            total = 0.5 * kc.sum_squares(Zd) + loss  # (sums and multiples stay pending)
            assert counts["synchronizations"] == 0
    assert counts["synchronizations"] == counts["device-to-host copies"] == 1
    want_loss, _ = ref.softmax_cross_entropy(Z, y)
    assert float(loss) == pytest.approx(want_loss, rel=1e-6)
    assert int(n_correct) == ref.count_correct(Z, y) == kc.count_correct(Zd, yd)
    assert float(total) == pytest.approx(0.5 * float(np.sum(Z.astype(np.float64) ** 2))
                                         + want_loss, rel=1e-6)
    with counting.counting() as counts:
        float(loss), int(n_correct), f"{loss / 2:.3f}"  # (read already)
    assert counts["synchronizations"] == 0
    assert f"{loss / 2:.6f}" == f"{want_loss / 2:.6f}"


def test_labels_out_of_range_on_the_device_are_found_by_the_kernels(rng):
    """Class labels on the device are not copied to the host to check their range: the kernels
    count the ones outside [0, C) (and never read past a row) and the call raises ValueError."""
    import fastnn.kernels.cuda as kc

    Zd = cuda.to_device(rng.standard_normal((4, 3)).astype(np.float32))
    for labels in ([0, 3, 1, 2], [0, -1, 1, 2]):
        yd = cuda.to_device(np.array(labels))
        with pytest.raises(ValueError, match=r"y holds class labels outside \[0, C\)"):
            kc.softmax_cross_entropy(Zd, yd)
        with pytest.raises(ValueError, match="outside"), kc.kernel_scope:
            kc.count_correct(Zd, yd)


def _snapshot(model, optimizer):
    """Everything a training step changes, copied to the host."""
    flat, states = model.get_weights()
    moments = {k: v[0] for k, v in optimizer.state_dict()["state"].items()}
    return flat, states, moments, optimizer.t


def _assert_same(before, after):
    np.testing.assert_array_equal(before[0], after[0])
    for b, a in zip(before[1], after[1]):
        for key in b:
            np.testing.assert_array_equal(b[key], a[key])
    for key in before[2]:
        np.testing.assert_array_equal(before[2][key], after[2][key])
    assert before[3] == after[3]


@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
@pytest.mark.parametrize("fault", ["label", "nan", "overflow"])
def test_a_failed_cuda_training_step_changes_nothing(rng, fault):
    """The CUDA training step checks everything once, after the optimizer's update: when that
    check fails (a label out of range on the device, NaN in the data) the update is undone and
    the running statistics put back: weights, moments, t and running statistics as before. So
    does ``loss_and_gradients`` (its forward pass updates them before the check)."""
    from fastnn import optim
    from fastnn.errors import NonFiniteError, TrainingDivergedError
    from fastnn.nn import BatchNorm, Dense, ReLU, Sequential

    model = Sequential([Dense(5, use_bias=False), BatchNorm(), ReLU(), Dense(3)],
                       backend="cuda").build(4, seed=0)
    adam = optim.Adam(0.01, backend="cuda")
    X = rng.standard_normal((6, 4)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    model.train_on_batch(cuda.to_device(X), cuda.to_device(y), adam)
    before = _snapshot(model, adam)
    if fault == "label":
        y[2] = 7
        with pytest.raises(ValueError, match=r"label 7 is outside \[0, 3\)"):
            model.train_on_batch(cuda.to_device(X), cuda.to_device(y), adam)
    elif fault == "nan":
        X[1, 2] = np.nan
        with pytest.raises((ValueError, TrainingDivergedError), match="NaN"):
            model.train_on_batch(cuda.to_device(X), cuda.to_device(y), adam)
    else:  # weights so large that the forward pass overflows after BatchNorm's statistics
        model.flat_params.copy_to_device(before[0] * np.float32(1e30))
        with pytest.raises(NonFiniteError):
            model.loss_and_gradients(X, y)
        model.flat_params.copy_to_device(before[0])
    _assert_same(before, _snapshot(model, adam))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # (the simulator)
def test_an_optimizer_step_whose_deferred_check_fails_is_undone(rng):
    """``step_unchecked`` inside the CUDA ``kernel_scope`` leaves its check to the scope's end;
    ``undo_last_step`` then puts p, the moments and t back (an overflow of the update itself)."""
    import fastnn.kernels.cuda as kc
    from fastnn import optim
    from fastnn.errors import NonFiniteError

    p = cuda.to_device(np.array([1.0, 2.0], np.float32))
    sgd = optim.Momentum(1e38, backend="cuda")
    sgd.step_unchecked(p, cuda.to_device(np.array([0.5, 0.5], np.float32)))
    before = p.copy_to_host(), sgd.state_dict()["state"]["v"][0].copy(), sgd.t
    with pytest.raises(NonFiniteError), kc.kernel_scope:
        sgd.step_unchecked(p, cuda.to_device(np.array([1e3, 1.0], np.float32)))  # overflows
    sgd.undo_last_step(p)
    np.testing.assert_array_equal(p.copy_to_host(), before[0])
    np.testing.assert_array_equal(sgd.state_dict()["state"]["v"][0], before[1])
    assert sgd.t == before[2]
