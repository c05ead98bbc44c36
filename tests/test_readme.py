"""The README's examples run as written and print what they promise."""
import contextlib
import io
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_block(heading):
    """The first ```python block under the README heading ``heading``."""
    text = README.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_own_tasks_examples_learn_each_task():
    pytest.importorskip("sklearn")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(python_block("## Your own tasks"), "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert float(lines[0].split()[-1]) > 0.93  # breast cancer test accuracy
    diabetes = eval(lines[1].split(" ", 1)[1])  # {'loss': ..., 'r2': ..., 'mae': ...}
    assert diabetes["r2"] > 0.3 and set(diabetes) == {"loss", "r2", "mae"}  # (linear: 0.36)
    assert float(lines[2].split()[-1]) > 0.8  # multi-label accuracy over every value
