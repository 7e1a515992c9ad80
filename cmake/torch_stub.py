"""Rewrites pyoptk/torch/__init__.pyi (pyoptk/torch/_stub.py) from the module just built, so that
adding an algorithm leaves no stub to regenerate by hand: a POST_BUILD step of _core.

    python cmake/torch_stub.py <built _core> <source root>

It writes only when the text changed, and skips (saying so) where the build's Python cannot import
the package: an isolated wheel build has no numpy or torch, and ships the committed stub, which
tests/test_registry.py keeps current.
"""
import importlib.util
import pathlib
import sys


def main(core_path: str, root: str) -> None:
    if any(importlib.util.find_spec(m) is None for m in ("numpy", "ml_dtypes", "torch")):
        print("pyoptk: pyoptk/torch/__init__.pyi left as it is (no numpy, ml_dtypes or torch to import)")
        return
    sys.path.insert(0, root)  # the checkout's pyoptk, with the _core just built
    spec = importlib.util.spec_from_file_location("pyoptk._core", core_path)
    core = importlib.util.module_from_spec(spec)
    sys.modules["pyoptk._core"] = core
    spec.loader.exec_module(core)
    from pyoptk.torch._stub import stub

    path = pathlib.Path(root) / "pyoptk" / "torch" / "__init__.pyi"
    text = stub()
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
        print(f"pyoptk: rewrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
