"""What a user writes: every public entry point, typed as a user would."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

import pyoptk
import pyoptk.functional as F
from pyoptk.lr_scheduler import CosineAnnealingLR, LambdaLR, ReduceLROnPlateau, SequentialLR, LRScheduler
from pyoptk.schedules import ScheduleLR, warmup_cosine_decay
from pyoptk.swa_utils import SWALR, AveragedParams

Array = npt.NDArray[np.float32]


def grads_of(params: Sequence[Array]) -> list[Array | None]:
    return [np.ones_like(p) for p in params[:-1]] + [None]


def closure() -> tuple[float, list[Array | None]]:
    return 1.0, grads_of(params)


w: Array = np.zeros((16, 8), np.float32)
b: Array = np.zeros(8, np.float32)
params: list[Array] = [w, b]

adamw: pyoptk.Optimizer = pyoptk.AdamW(params, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.01)
sgd = pyoptk.SGD([{"params": [w]}, {"params": [b], "lr": 0.1}], lr=0.01, momentum=0.9, nesterov=True)
sgd.add_param_group({"params": [np.zeros(3, np.float32)]})
adamw.step(grads_of(params))
loss = adamw.step(closure=closure)
adamw.param_groups[0]["lr"] = 5e-4
state = adamw.state_dict()
adamw.load_state_dict(state)

sched: LRScheduler = CosineAnnealingLR(adamw, T_max=10, eta_min=1e-5)
warm = LambdaLR(sgd, lr_lambda=lambda step: min(1.0, (step + 1) / 5))
chain = SequentialLR(adamw, [LambdaLR(adamw, lambda s: 1.0), CosineAnnealingLR(adamw, T_max=5)], milestones=[3])
plateau = ReduceLROnPlateau(adamw, mode="min", factor=0.5, patience=2)
custom = ScheduleLR(adamw, warmup_cosine_decay(peak_value=1e-3, warmup_steps=5, total_steps=100))
for _ in range(3):
    sched.step()
    plateau.step(0.5)
lrs: list[float] = sched.get_last_lr()

ema = AveragedParams(params, mode="ema", decay=0.999)
ema.update()
with ema.swapped():
    pass
swa = SWALR(adamw, swa_lr=1e-4)

norm: float = pyoptk.clip_grad_norm_([np.ones(4, np.float32)], max_norm=1.0)
total: float = pyoptk.get_total_norm([np.ones(4, np.float32)])
pyoptk.clip_grad_value_([np.ones(4, np.float32)], clip_value=0.5)

steps: list[int] = [0]
F.adam([w], [np.ones_like(w)], [np.zeros_like(w)], [np.zeros_like(w)], [], steps, amsgrad=False, beta1=0.9,
       beta2=0.999, lr=1e-3, weight_decay=0.0, eps=1e-8, maximize=False)

pyoptk.set_num_threads(2)
threads: int = pyoptk.get_num_threads()
isa: str = pyoptk.isa()
isas: list[str] = pyoptk.available_isas()
ok: bool = pyoptk.cuda.is_available()
loaded = pyoptk.from_torch_state_dict({"state": {}, "param_groups": []})
