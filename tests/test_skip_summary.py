"""Without torch, pytest's summary says how many tests were skipped for lack of it (conftest.py)."""
import os
import pathlib
import re
import subprocess
import sys

TESTS = pathlib.Path(__file__).parent


def _env(**values):
    """A minimal environment, plus the sanitizer run's variables when there are any (CI's ASan
    build loads only with its runtime preloaded)."""
    keep = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **values}


def test_summary_counts_the_tests_skipped_for_lack_of_torch(tmp_path):
    hidden = tmp_path / "no_torch" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(TESTS.parent),
         str(TESTS / "test_clip.py"), str(TESTS / "test_torch_checkpoint.py")],
        cwd=tmp_path, env=_env(PYTHONPATH=str(tmp_path / "no_torch"), PATH="/usr/bin:/bin"),
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next((l for l in done.stdout.splitlines() if "skipped because torch is not installed" in l), None)
    assert line is not None, done.stdout
    # test_clip.py's torch tests one by one; test_torch_checkpoint.py as a whole module; together
    # all that pytest skipped here.
    tests, modules = re.match(r"(\d+) test\(s\) and (\d+) whole module\(s\) \(tests/test_torch_checkpoint.py\)", line).groups()
    skipped = re.search(r"(\d+) skipped", done.stdout.splitlines()[-1]).group(1)
    assert int(tests) > 0 and int(modules) == 1 and int(tests) + int(modules) == int(skipped), done.stdout
    assert "pip install torch" in line
