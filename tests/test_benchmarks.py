"""pytest-benchmark timings of each cpu kernel beside its NumPy reference, at one moderate shape
(the cases of ``fastnn.bench``).

Skipped in normal runs (pyproject's addopts has ``--benchmark-disable --benchmark-skip``). Run:

    python -m pytest tests/test_benchmarks.py --benchmark-enable --benchmark-only -p no:randomly

``--benchmark-only`` overrides ``--benchmark-skip`` and ``--benchmark-enable`` overrides
``--benchmark-disable``. Each case has its own ``benchmark.group``, so the "numpy" and "cpu" rows
sit side by side. The tests check results (both backends against the reference in float64),
never speed. Each closure is called once before timing, so compilation is not timed.
"""
import pytest
from test_bench import assert_matches_reference

from fastnn.bench import cases

#: (No optimizer: its result depends on how many times the benchmark calls it.)
CASES = [cases.dense(256, 512, 512), cases.batchnorm(4096, 256), cases.cross_entropy(4096, 100),
         cases.softmax(4096, 100)] + [cases.elementwise_loss(4096, 100, kind)
                                      for kind in cases.ELEMENTWISE_LOSSES]


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_the_reference(benchmark, case, backend):
    run = case.closure(backend)
    run()
    benchmark.group = f"{case.name} {'x'.join(map(str, case.shape))}"
    assert_matches_reference(case, benchmark(run))
