"""The GPU benchmark table (``fastnn.bench_cuda``): its fastnn cases run (in the CUDA simulator,
at tiny shapes and without CuPy or PyTorch CUDA), and ``run()`` refuses to time the simulator."""
import numpy as np
import pytest

from fastnn import bench_cuda
from test_cuda_kernels import pytestmark  # noqa: F401  (the same warning filters)
from test_cuda_kernels import small_blocks  # noqa: F401  (autouse fixture: applies here too)

TINY = [(bench_cuda.dense_case, (3, 4, 5)), (bench_cuda.batchnorm_case, (6, 5)),
        (bench_cuda.cross_entropy_case, (4, 3)), (bench_cuda.softmax_case, (4, 3)),
        (bench_cuda.adam_case, (30,)), (bench_cuda.dropout_case, (3, 7))]


@pytest.mark.parametrize("make, shape", TINY, ids=[make.__name__ for make, _ in TINY])
def test_fastnn_cases_run(make, shape):
    case = make(*shape, {})
    assert case.shape == shape and case.others == {}
    assert (case.flops > 0) != (case.nbytes > 0)
    case.fastnn()
    case.fastnn()  # again, into the same preallocated outputs


def test_training_step_case_runs_a_model_on_the_device():
    case = bench_cuda.training_step_case(4, {}, widths=(3, 4, 2))
    assert case.shape == (4, 3, 4, 2) and case.others == {}
    assert case.flops == 3 * 2.0 * 4 * (3 * 4 + 4 * 2)
    case.fastnn()
    case.fastnn()
    assert bench_cuda.TRAINING_STEP_BATCHES == (64, 4096)


def test_run_refuses_the_simulator():
    from fastnn.kernels.cuda import is_simulator

    if not is_simulator():
        pytest.skip("a real GPU: run() would time it")
    lines = []
    with pytest.raises(RuntimeError, match="simulator is not a GPU"):
        bench_cuda.run(quick=True, out=lines.append)
    assert lines == []


def test_median_seconds_counts_calls():
    calls = []
    seconds = bench_cuda.median_seconds(lambda: calls.append(1), {}, budget=0.0)
    assert len(calls) == 4 and seconds >= 0 and np.isfinite(seconds)


def test_run_prints_the_table(monkeypatch):
    """run()'s table with tiny cases and stubbed measurements (the simulator has nothing to
    time): one line per case, throughput against the limits (a training step included)."""
    def seconds(fn, libs):
        fn()
        return 1e-3

    monkeypatch.setattr(bench_cuda, "require_real_gpu", lambda: None)
    monkeypatch.setattr(bench_cuda, "libraries", lambda: {})
    monkeypatch.setattr(bench_cuda, "device_name", lambda: "Simulated GPU")
    monkeypatch.setattr(bench_cuda, "median_seconds", seconds)
    monkeypatch.setattr(bench_cuda, "copy_bandwidth", lambda libs: 100.0)
    monkeypatch.setattr(bench_cuda, "sgemm_gflops", lambda libs: None)
    monkeypatch.setattr(bench_cuda, "cases", lambda libs, quick: [
        bench_cuda.dense_case(3, 4, 5, libs), bench_cuda.softmax_case(4, 3, libs),
        bench_cuda.training_step_case(4, libs, widths=(3, 4, 2))])
    lines = []
    rows = bench_cuda.run(out=lines.append)
    assert [r["kernel"] for r in rows] == ["dense relu fwd+bwd", "softmax", "MLP train step"]
    assert rows[0]["fastnn"] == 1e-3
    text = "\n".join(lines)
    assert lines[0].startswith("fastnn bench_cuda on Simulated GPU")
    assert "device-to-device copy 100 GB/s" in text and "sgemm 4096^3 (TF32 off) n/a" in text
    assert "3x4x5" in text and "GFLOP/s (  - )" in text
    assert "GB/s    (  0%)" in text  # 4 x 3 softmax: 96 bytes in 1 ms
    assert lines[-1].startswith("MLP train step") and "4x3x4x2" in lines[-1]

