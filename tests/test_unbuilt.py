"""Importing an unbuilt source tree (python run from the repository root, no editable install)
says what to do instead of a circular-import message."""
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pyoptk

SOURCE = pathlib.Path(__file__).resolve().parents[1] / "pyoptk"


def test_importing_the_unbuilt_source_tree_says_what_to_do(tmp_path):
    # A copy of the checkout's Python package without any compiled module, as a fresh clone has it.
    shutil.copytree(SOURCE, tmp_path / "pyoptk", ignore=shutil.ignore_patterns("_core.*.so", "_core.*.pyd", "__pycache__"))
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'pyoptk'\n")
    done = subprocess.run([sys.executable, "-c", "import pyoptk"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert "circular import" not in done.stderr and "partially initialized" not in done.stderr
    assert "unbuilt source tree" in done.stderr and "pip install --no-build-isolation -e ." in done.stderr
    assert "cd elsewhere" in done.stderr and "_core" in done.stderr


def test_a_broken_compiled_module_is_named_with_the_loader_error(tmp_path):
    shutil.copytree(SOURCE, tmp_path / "pyoptk", ignore=shutil.ignore_patterns("_core.*", "__pycache__"))
    (tmp_path / "pyoptk" / f"_core{sysconfig.get_config_var('EXT_SUFFIX')}").write_bytes(b"not a shared library")
    done = subprocess.run([sys.executable, "-c", "import pyoptk"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "failed to load" in done.stderr and "--force-reinstall" in done.stderr


def test_the_installed_package_imports():
    assert pyoptk._core.isa() == pyoptk.isa()
