"""The house rules on imports, checked on the source (README, "Development notes"):

- a private module (``_name``) is imported only from inside the package that holds it;
- the library never imports the jobs (``fastnn.cli``) nor the benchmark harness (``fastnn.bench``).
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.joinpath("fastnn").rglob("*.py"),
                  *ROOT.joinpath("benchmarks").rglob("*.py")])
#: Packages that only the apps (the jobs, the harness, the asv suite) may import.
APPS = ("fastnn.cli", "fastnn.bench")


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path):
    """(line, absolute module name) for each fastnn module ``path`` imports, with each imported
    name of a ``from`` import also given as a candidate submodule."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _private_owner(name):
    """The package holding the first private module or name in ``name``, or None:
    "fastnn.kernels.cpu._blas" -> "fastnn.kernels.cpu", "fastnn.tune.search._count" ->
    "fastnn.tune" (the modules of a package may share their private names)."""
    parts = name.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            holder = parts[:i]
            if ROOT.joinpath(*holder).with_suffix(".py").is_file():  # a module: its package
                holder = holder[:-1]
            return ".".join(holder)
    return None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_private_modules_stay_inside_their_package(path):
    here = _module_name(path)
    wrong = [f"line {line}: {name}" for line, name in _imported(path)
             if name.startswith("fastnn.") and (owner := _private_owner(name)) is not None
             and not (here == owner or here.startswith(owner + "."))]
    assert not wrong, f"{path.relative_to(ROOT)} imports private modules of other packages: {wrong}"


@pytest.mark.parametrize("path", [p for p in SOURCES if p.parts[-2] != "benchmarks"
                                  and not any(_module_name(p).startswith(a) for a in APPS)
                                  and p.name != "__main__.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_does_not_import_the_apps(path):
    wrong = [f"line {line}: {name}" for line, name in _imported(path)
             if any(name == app or name.startswith(app + ".") for app in APPS)]
    assert not wrong, f"{path.relative_to(ROOT)} imports an app: {wrong}"


def test_the_checks_see_a_private_import():
    """The rules above would catch today's kinds of mistakes (the test cannot pass vacuously)."""
    assert _private_owner("fastnn.kernels.cpu._blas") == "fastnn.kernels.cpu"
    assert _private_owner("fastnn.kernels._host_arrays.to_host") == "fastnn.kernels"
    assert _private_owner("fastnn.tune.search._count") == "fastnn.tune"
    assert _private_owner("fastnn.kernels.base.to_host") is None
    assert len(SOURCES) > 50
