"""Adam in four storage layouts against its roofline, torch and DeepSpeed: pyoptk/bench/mixed_adam.py
(``python -m pyoptk.bench.mixed_adam``), run from a checkout as bench/RESULTS.md records it."""
from pyoptk.bench.mixed_adam import main

if __name__ == "__main__":
    main()
