"""Why ``import pyoptk`` failed to find its compiled extension, worded as what to do instead.

The usual cause: Python imported the *source tree* (running from the repository root puts
``./pyoptk`` ahead of the installed package on ``sys.path``), and a source tree has no ``_core``.
"""
from __future__ import annotations

import os

__all__ = ["missing_core_message"]


def missing_core_message(package_dir: str, error: ImportError) -> str:
    built = [f for f in os.listdir(package_dir) if f.startswith("_core.") and f.endswith((".so", ".pyd"))]
    if built:  # a module is there but does not load: say so, with the loader's reason
        return (f"pyoptk's compiled extension {built[0]!r} in {package_dir} failed to load ({error}); "
                "rebuild it for this Python: pip install --force-reinstall --no-deps .")
    checkout = os.path.isfile(os.path.join(os.path.dirname(package_dir), "pyproject.toml"))
    where = "the unbuilt source tree" if checkout else "a pyoptk package without its compiled extension"
    return (
        f"pyoptk was imported from {where} at {package_dir}, which has no compiled _core module. Either:\n"
        "  - run from outside the checkout (cd elsewhere) after `pip install .`, so the installed package is "
        "imported; or\n"
        "  - make this checkout importable with an editable install (rerun it after changing the C++):\n"
        "      pip install scikit-build-core pybind11 ninja && pip install --no-build-isolation -e .\n"
        "    (README.md, 'Working from a checkout')")
