"""Plain-NumPy references, one module per family, keyed by algorithm in ``MODULE``:

- sgd_adam: SGD, Adam, AdamW, in the param's dtype (``STEPS[name](p, g, state, **hyper)``);
- torch_optim: the other element-wise torch.optim algorithms, in float64 (``STEPS[name](p, g, state, h)``);
- beyond_torch: Lion, LAMB, LARS, Adan, ADOPT, AdEMAMix, schedule-free, from the papers
  (``run(name, kw, p0, grads)``).

The multi-pass algorithms (SparseAdam, Adafactor, Muon, LBFGS) are checked against torch itself
(tests/test_multipass_algorithms.py).
"""
from . import beyond_torch, sgd_adam, torch_optim

MODULE = {**{n: sgd_adam for n in sgd_adam.STEPS}, **{n: torch_optim for n in torch_optim.STEPS},
          **{n: beyond_torch for n in beyond_torch.NAMES}}
