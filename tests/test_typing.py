"""The package is typed for its users: py.typed ships, `mypy --strict` accepts user code that
touches every public entry point (tests/typing/user_example.py), and every public class,
function and method has a docstring (inherited ones included, as help() shows them)."""
import inspect
import os
import pathlib
import shutil
import site
import subprocess
import sys

import pytest

import pyoptk

EXAMPLE = pathlib.Path(__file__).parent / "typing" / "user_example.py"
PUBLIC_MODULES = ["pyoptk", "pyoptk.functional", "pyoptk.lr_scheduler", "pyoptk.schedules", "pyoptk.swa_utils",
                  "pyoptk.clip", "pyoptk.cuda", "pyoptk.torch_checkpoint"]


def test_py_typed_ships_next_to_the_package():
    assert (pathlib.Path(pyoptk.__file__).parent / "py.typed").is_file()


def _mypy(path: pathlib.Path, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    package_root = str(pathlib.Path(pyoptk.__file__).parent.parent)
    if package_root not in site.getsitepackages() + [site.getusersitepackages()]:
        env["MYPYPATH"] = package_root  # an editable install: point mypy at the checkout
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def test_mypy_strict_accepts_user_code(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install '.[test]'")
    shutil.copy(EXAMPLE, tmp_path / "example.py")
    done = _mypy(tmp_path / "example.py", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_sees_the_torch_twins_signatures(tmp_path):
    # pyoptk.torch's classes are made from the registry at import; its stub spells out each
    # __init__ (torch's arguments, then pyoptk's), so a wrong argument and a wrong name are errors.
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install '.[test]'")
    pytest.importorskip("torch")
    user = tmp_path / "torch_user.py"
    user.write_text("import torch\nimport pyoptk.torch as pt\n"
                    "model = torch.nn.Linear(3, 2)\n"
                    "opt = pt.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), state_dtype='float32')\n"
                    "sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3)\n"
                    "sf = pt.ScheduleFreeAdamW(model.parameters())\nsf.train()\nopt.step()\n"
                    "bad = pt.Adam(model.parameters(), lr='x')\nnope = pt.Adamm\n")
    done = _mypy(user, tmp_path)
    errors = [line for line in done.stdout.splitlines() if "error:" in line]
    assert done.returncode == 1 and len(errors) == 2, done.stdout
    assert '"lr" to "Adam"' in errors[0] and '"Adamm"' in errors[1], errors


def test_mypy_strict_rejects_a_wrong_call(tmp_path):
    # The check has teeth: a string lr and a norm taken for a string are type errors.
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install '.[test]'")
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy as np\nimport pyoptk\n"
                   "opt = pyoptk.SGD([np.zeros(3)], lr='0.1')\n"
                   "n: str = pyoptk.clip_grad_norm_([np.zeros(3)], max_norm=1.0)\n")
    done = _mypy(bad, tmp_path)
    assert done.returncode == 1 and done.stdout.count("error:") == 2, done.stdout


def _public(module_name):
    module = __import__(module_name, fromlist=["_"])
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
            yield f"{module_name}.{name}", obj


def test_every_public_class_function_and_method_has_a_docstring():
    missing = []
    for qualname, obj in (item for m in PUBLIC_MODULES for item in _public(m)):
        if not (inspect.getdoc(obj) or "").strip():
            missing.append(qualname)
        if inspect.isclass(obj):
            for name, member in inspect.getmembers(obj):
                if name.startswith("_") and name != "__init__" or not callable(member):
                    continue
                if getattr(member, "__module__", "").startswith("pyoptk") and not (inspect.getdoc(member) or "").strip():
                    missing.append(f"{qualname}.{name}")
    assert not missing, f"no docstring: {missing}"
