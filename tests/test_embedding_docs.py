"""README's Embedding section: its Python block runs, and its C and Cython blocks are verbatim
excerpts of the examples the tests build; the C example builds with CMake and runs."""
import re
import subprocess

from embed_build import ROOT, build_cmake, python_env

SECTION = ROOT.joinpath("README.md").read_text().split("## Embedding")[1].split("\n## ")[0]


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", SECTION, re.S)


def test_the_python_block_runs():
    (code,) = blocks("python")
    exec(compile(code, "README.md (Embedding)", "exec"), {})


def test_the_c_and_cython_blocks_are_the_examples_code():
    (c,) = blocks("c")
    (cython,) = blocks("cython")
    assert c in ROOT.joinpath("examples", "c_embed", "adam_step.c").read_text()
    assert cython in ROOT.joinpath("examples", "cython_embed", "embed_train.pyx").read_text()


def test_the_c_example_builds_and_converges(tmp_path):
    program = build_cmake(ROOT / "examples" / "c_embed", tmp_path, "adam_step")
    out = subprocess.run([str(program)], env=python_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    w0 = float(re.search(r"w\[0\] = ([-\d.]+) after 200 steps", out.stdout).group(1))
    assert abs(w0 - 3.0) < 0.05, out.stdout
