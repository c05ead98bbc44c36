"""The GPU side of the benchmark harness (``fastnn.bench``): every case's "cuda" closure against
the NumPy reference and the MLP step on the device (in the CUDA simulator at tiny shapes, launch
sizes shrunk; on a real GPU as they are), and ``run_cuda()``: it refuses the simulator, and
prints its table (stubbed timings)."""
import numpy as np
import pytest
from test_bench import (
    TINY,
    check_case,
    check_dropout,
    check_training_step,
    numpy_as_cupy,  # noqa: F401  (a fixture)
)
from test_cuda_kernels import (
    pytestmark,  # noqa: F401  (the same warning filters)
    small_blocks,  # noqa: F401  (autouse fixture: applies here too)
)

from fastnn import bench
from fastnn.bench import cases, machine, mlp, peers, tables


@pytest.mark.parametrize("case", TINY, ids=lambda c: f"{c.name}-{'x'.join(map(str, c.shape))}")
def test_cuda_closures_match_the_reference(case):
    check_case(case, "cuda")


def test_cuda_dropout_keeps_or_drops_and_rescales():
    check_dropout("cuda")


def test_cuda_training_step_lowers_the_loss():
    check_training_step("cuda", batch=4, widths=(3, 4, 2), steps=3)


def test_run_cuda_refuses_the_simulator():
    from fastnn.kernels.cuda import is_simulator

    if not is_simulator():
        pytest.skip("a real GPU: run_cuda() would time it")
    lines = []
    with pytest.raises(RuntimeError, match="simulator is not a GPU"):
        bench.run_cuda(quick=True, out=lines.append)
    assert lines == []


@pytest.mark.usefixtures("numpy_as_cupy")
def test_run_cuda_prints_the_table(monkeypatch):
    """run_cuda()'s table with tiny cases (each closure called once) and stubbed times: one line
    per case, CuPy's column (NumPy stands in), "-" where a case has no CuPy version, throughput
    against the limits."""
    def one_call_each(fns, sync, pause):
        for fn in fns.values():
            fn()
        return {impl: [1e-3] * 3 for impl in fns}

    monkeypatch.setattr(tables, "require_real_gpu", lambda: None)
    monkeypatch.setattr(machine, "gpu_limits", lambda sync: machine.Limits(None, 100.0))
    monkeypatch.setattr(machine, "gpu_name", lambda: "Simulated GPU")
    monkeypatch.setattr(peers, "GPU_PEERS", ("cupy",))
    monkeypatch.setattr(tables, "interleaved", one_call_each)
    monkeypatch.setattr(tables, "table_cases", lambda quick, gpu: [
        cases.dense(3, 4, 5), cases.softmax(4, 3), mlp.mlp(4, widths=(3, 4, 2))])
    lines = []
    rows = bench.run_cuda(out=lines.append)
    assert [r["kernel"] for r in rows] == ["dense relu fwd+bwd", "softmax", "MLP train step"]
    assert rows[0] == dict(kernel="dense relu fwd+bwd", shape=(3, 4, 5), cuda=1e-3, cupy=1e-3)
    text = "\n".join(lines)
    assert lines[0].startswith("fastnn bench --cuda on Simulated GPU")
    assert "device-to-device copy 100 GB/s" in text and "sgemm 4096^3 (TF32 off) n/a" in text
    assert lines[2] == "compared with: cupy"
    assert "3x4x5" in text and "GFLOP/s (  - )" in text
    assert "GB/s    (  0%)" in text  # 4 x 3 softmax: 96 bytes in 1 ms
    assert lines[-1].split()[:6] == ["MLP", "train", "step", "4x3x4x2", "1.000", "-"]
    assert np.isfinite(rows[-1]["cuda"])
