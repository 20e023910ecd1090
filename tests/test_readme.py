from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run() -> None:
    """Every ```python block of the README runs as written, so the examples cannot rot."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README.md has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_readme_shows_the_two_setup_commands() -> None:
    text = README.read_text()
    assert "make demo" in text
    assert "make test" in text
