"""Builds the embedding examples the tests run (the C++ C-API program, the Cython example) once
per session, against the installed package's header, in a temporary directory."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyoptk

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, cwd, env=None):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def python_env():
    """The environment for a program that embeds this interpreter: it must find this venv's packages."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def build_cmake(source: Path, workdir: Path, target: str) -> Path:
    """Configures and builds a CMake project against the installed pyoptk header and this
    interpreter; returns the path of its executable `target`."""
    build = workdir / (source.name + "-build")
    cmake = shutil.which("cmake")
    if cmake is None:
        raise RuntimeError(f"cmake is needed to build {source} (pip install cmake ninja)")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    run([cmake, "-S", source, "-B", build, *gen, "-DCMAKE_BUILD_TYPE=Release",
         f"-DPYOPTK_INCLUDE={pyoptk.get_include()}", f"-DPython_EXECUTABLE={sys.executable}"], cwd=workdir)
    run([cmake, "--build", build], cwd=workdir)
    return build / target


def build_capi_program(workdir: Path) -> Path:
    return build_cmake(ROOT / "tests" / "capi", workdir, "capi_test")


def build_cython(source: Path, workdir: Path) -> Path:
    """Copies a folder with a Cython setup.py and builds it in place; returns the copy."""
    dest = workdir / source.name
    shutil.copytree(source, dest)
    run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=dest)
    return dest
