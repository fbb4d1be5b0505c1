"""Run the README's ```python blocks, in order, in one namespace (later blocks may use earlier names)."""

from __future__ import annotations

import doctest
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks():
    if not README.exists():
        return []
    return BLOCK.findall(README.read_text(encoding="utf-8"))


@pytest.mark.skipif(not README.exists(), reason="README.md not written yet")
def test_readme_python_blocks_run():
    blocks = _blocks()
    assert blocks, "README.md has no ```python blocks"
    namespace: dict = {"__name__": "__readme__"}
    for index, source in enumerate(blocks):
        name = f"README.md[python block {index}]"
        if source.lstrip().startswith(">>>"):  # doctest-style block: run it and check the printed output
            test = doctest.DocTestParser().get_doctest(source, namespace, name, str(README), 0)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            runner.run(test, clear_globs=False)
            namespace.update(test.globs)  # DocTest works on a copy; later blocks use these names
            assert runner.failures == 0, f"{name} failed (see the captured output above)"
        else:
            exec(compile(source, name, "exec"), namespace)  # noqa: S102 - that is the point of this test
