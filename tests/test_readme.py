"""Every ```python block of README.md runs as written, each in a fresh interpreter from an empty
directory (so it sees the installed pyoptk, never the source tree, and defines every name it uses).

Convention: a block that fails with ModuleNotFoundError for an optional package (torch, ml_dtypes,
matplotlib, jax, optax) is skipped with that reason; a block whose first line is `# needs: cuda` runs only
where pyoptk.cuda.is_available(). Nothing else is skipped: any other failure fails the test."""
import pathlib
import re
import subprocess
import sys

import pytest

import pyoptk

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
OPTIONAL = ("torch", "ml_dtypes", "matplotlib", "jax", "optax")
_FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block, its indentation (inside a list item) removed."""
    blocks = []
    for m in _FENCE.finditer(text):
        indent = len(m.group(1))
        code = "".join(line[indent:] for line in m.group(2).splitlines(keepends=True))
        blocks.append((text.count("\n", 0, m.start()) + 1, code))
    return blocks


BLOCKS = python_blocks(README.read_text())


def test_the_readme_has_python_blocks_and_the_extractor_sees_indented_ones():
    assert len(BLOCKS) >= 4
    assert python_blocks("- item\n\n  ```python\n  x = 1\n  ```\n") == [(3, "x = 1\n")]


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs(line, code, tmp_path):
    if code.startswith("# needs: cuda") and not pyoptk.cuda.is_available():
        pytest.skip(f"needs a CUDA device: {pyoptk.cuda.unavailable_reason() or 'none usable'}")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", done.stderr)
        if missing and missing.group(1).split(".")[0] in OPTIONAL:
            pytest.skip(f"needs the optional package {missing.group(1)}")
        pytest.fail(f"README.md block at line {line} failed:\n{done.stderr[-3000:]}")
