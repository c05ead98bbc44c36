"""What one CUDA training step asks of the driver (``fastnn.bench.counting``, ``python -m fastnn
bench --cuda --count``), counted in Numba's CUDA simulator: the counts must not grow back.

The ceilings are today's counts for the benchmark MLP's layers (20-8-8-10 at batch 8 here: the
simulator runs every GPU thread in Python); lower them as the overhead work of issue 15 removes
more. A step of ``fit`` also copies the batch's row indices to the device (one copy; none in
``train_on_batch`` on device arrays).
"""
import numpy as np
import pytest
from numba import cuda

from fastnn.bench import counting
from fastnn.cli import main

#: kind -> the most one training step may make
CEILINGS = {"kernel launches": 30, "device allocations": 0, "host-to-device copies": 1,
            "device-to-host copies": 5, "device-to-device copies": 4, "synchronizations": 5}


def test_one_training_step_stays_within_the_ceilings():
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
    with kc.kernel_scope:
        with pytest.raises(NonFiniteError):
            kc.sgd_update(p, g, 0.1, state_out=(), backup=cuda.device_array(2, np.float32))
        assert p.copy_to_host().tolist() == [1.0, 1.0]
    with pytest.raises(NonFiniteError), kc.kernel_scope:
        kc.activation_forward(np.array([[np.inf]], np.float32), "relu")  # a host array
