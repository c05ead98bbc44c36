"""``python -m fastnn bench --search`` (``fastnn.bench.cluster``): the quickest benchmark of a
distributed search, with a real PostgreSQL server and Dask cluster, returns and prints every
number it promises (their values are not checked: speed is never asserted); the options that do
not apply to ``--search`` end the command with one line."""
import importlib.util
import math

import pytest
from helpers import cli_fails

from fastnn.bench.services import postgres_binaries

MISSING = [name for name in ("optuna", "distributed", "sklearn", "psycopg")
           if importlib.util.find_spec(name) is None]


@pytest.mark.slow
@pytest.mark.skipif(postgres_binaries() is None,
                    reason="PostgreSQL is not installed (.ci/run installs it)")
@pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)}")
def test_quickest_benchmark_returns_and_prints_every_measurement():
    from fastnn.bench.cluster import CPU_PARTS, run_search_throughput

    lines = []
    result = run_search_throughput(workers=(1,), trials=2, epochs=2, repeats=1, round_trips=3,
                                   overhead_trials=2, transfers=2, out=lines.append)
    assert result["machine"]["cpus"] >= 1
    assert result["storage"].startswith("PostgreSQL ")
    assert result["search"] == {"trials": 2, "epochs": 2, "repeats": 1,
                                "train_rows": result["search"]["train_rows"]}
    (row,) = result["rows"]
    assert row["workers"] == 1 and row["speedup"] == 1.0 and len(row["walls"]) == 1
    for key in ("wall", "trials_per_minute", "cluster_start", "warm_up", "trial", "objective",
                "upload", "train", "per_worker"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    for key in ("storage", "outside", "busy"):
        assert math.isfinite(row[key]), key
    assert row["trials_per_minute"] == pytest.approx(60 * 2 / row["wall"])
    assert row["per_worker"] == pytest.approx(row["trial"] + row["outside"])
    assert row["trial"] == pytest.approx(row["train"] + row["upload"] + row["storage"])
    for part in ("workers", "driver"):
        statements, transactions = row["sql"][part]
        assert statements >= transactions > 0, part  # every trial writes to the database
    if row["cpu"] is not None:  # (from /proc: Linux)
        assert set(row["cpu"]) == set(CPU_PARTS) and row["cpu"]["workers"] > 0
    overhead = result["overhead"]
    assert overhead["workers"] == 1 and overhead["model_bytes"] > 0
    for key in ("scheduling", "storage", "upload", "download", "save"):
        assert math.isfinite(overhead[key]) and overhead[key] > -1, key
    assert overhead["instant_statements"] >= overhead["instant_transactions"] > 0

    text = "\n".join(lines)
    assert "\n" not in "".join(lines)  # one line per call of out
    assert result["storage"] in lines[0] and "CPUs" in lines[0]
    assert "2 trials of MLPObjective(epochs=2)" in lines[1]
    for header in ("trials/min", "per trial in the searches, ms", "measured apart (1 worker)"):
        assert sum(header in line for line in lines) == 1, header
    for label in ("scheduling: Dask round trip", "storage: Optuna on PostgreSQL",
                  "model upload", "model download", "sum: overhead per trial",
                  "training (objective - upload)", "SQL statements / transactions: workers"):
        assert label in text, label
    assert "at 1 worker a trial takes" in lines[-1]


@pytest.mark.parametrize("option", ["--cuda", "--count", "--loaded", "--threads=1"])
def test_search_rejects_the_options_of_the_kernel_tables(option):
    name = option.split("=")[0]
    cli_fails(["bench", "--search", option], rf"^fastnn bench: {name} .*does not apply to "
                                             r"--search$")


def test_search_without_postgresql_says_what_to_install(monkeypatch):
    import fastnn.bench.services as services

    if MISSING:
        cli_fails(["bench", "--search"], r"--search needs .*pip install", status=1)
        return
    monkeypatch.setattr(services, "postgres_binaries", lambda: None)
    cli_fails(["bench", "--search", "--quick"], r"--search needs PostgreSQL.*apt-get install "
                                                r"postgresql$", status=1)


def test_search_without_its_packages_says_what_to_install(monkeypatch):
    import importlib.util as util

    find_spec = util.find_spec
    monkeypatch.setattr(util, "find_spec",
                        lambda name, *a: None if name in ("distributed", "psycopg", "psycopg2")
                        else find_spec(name, *a))
    line = cli_fails(["bench", "--search"], r"--search needs .*pip install "
                                            r"'fastnn\[tune,examples\]'$", status=1)
    assert "Dask's distributed" in line and "psycopg" in line
