"""``python -m pyoptk.bench``: the same as ``pyoptk-bench``."""
from . import main

main()
