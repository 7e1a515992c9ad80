"""bitsandbytes 8-bit optimizer checkpoints (AdamW8bit, Adam8bit, Lion8bit...) as pyoptk ones.

bitsandbytes keeps each param's state under ``"__bnb_optimizer_quant_state__"``: ``state1`` /
``state2`` (uint8 codes in the param's shape, or float32 below ``min_8bit_size``), ``absmax1`` /
``absmax2`` (one float32 per block) and ``qmap1`` / ``qmap2`` (its signed and unsigned dynamic
maps, which are pyoptk's 8-bit maps). They become the op's states in kernel order (Adam:
exp_avg, exp_avg_sq; Lion: exp_avg) with their ``_absmax`` and ``_qmap``, the step count kept;
pyoptk's loader then keeps the codes as they are where its map and block size agree, and re-codes
them (dequantize, quantize) where they do not.
"""
from __future__ import annotations

from typing import Any

from .._quant import MAX_BLOCK, MIN_BLOCK, QMAP, SCALES

BNB_KEY = "__bnb_optimizer_quant_state__"
# bitsandbytes' group keys that are pyoptk hyper-parameters of the same meaning.
_SHARED_HYPER = ("lr", "betas", "eps", "weight_decay")


def is_bitsandbytes(state_dict: Any) -> bool:
    state = state_dict.get("state") if isinstance(state_dict, dict) else None
    return isinstance(state, dict) and any(isinstance(s, dict) and BNB_KEY in s for s in state.values())


def _block_size(numel: int, blocks: int) -> int:
    """The power-of-two block that gives ``blocks`` blocks of ``numel`` elements."""
    block = MIN_BLOCK
    while block < MAX_BLOCK and -(-numel // block) > blocks:
        block *= 2
    if -(-numel // block) != blocks:
        raise ValueError(f"a bitsandbytes state of {numel} elements has {blocks} block scales: no block size in "
                         f"[{MIN_BLOCK}, {MAX_BLOCK}] gives that many")
    return block


def from_bitsandbytes(state_dict: dict[str, Any], groups: list[dict[str, Any]], core_class: Any) -> dict[str, Any]:
    """The pyoptk state dict of a bitsandbytes one, for a ``core_class`` optimizer with these
    param groups (its step count kept where the class keeps one: Lion does not)."""
    names = [name for name, bits in core_class.kernel.states if bits == 0]  # state1, state2 in kernel order
    block = None
    state = {}
    for key, saved in state_dict["state"].items():
        inner = saved.get(BNB_KEY, {})
        out = {"step": saved.get("step", inner.get("step", 0))} if core_class.has_step else {}
        for i, name in enumerate(names, 1):
            if f"state{i}" not in inner:
                continue
            codes = inner[f"state{i}"]
            if f"absmax{i}" not in inner:  # below bitsandbytes' min_8bit_size: float32
                out[name] = codes
                continue
            scales = inner[f"absmax{i}"].reshape(-1)
            found = _block_size(codes.numel(), scales.numel())
            if block is not None and found != block:
                raise ValueError(f"bitsandbytes state dict mixes block sizes {block} and {found}")
            block = found
            out.update({name: codes.reshape(-1), name + SCALES: scales, name + QMAP: inner[f"qmap{i}"]})
        state[key] = out
    ours = []
    for saved, current in zip(state_dict["param_groups"], groups):
        group = {k: v for k, v in current.items() if k not in ("params", "param_names")}
        group.update({k: saved[k] for k in _SHARED_HYPER if k in saved and k in group})
        group["params"] = saved["params"]
        ours.append(group)
    out = {"state": state, "param_groups": ours}
    if block is not None:
        out["precision"] = {"block_size": block}
    return out
