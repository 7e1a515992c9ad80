"""Plain-NumPy block quantizer, written from the README's definition ("Quantized state"), and the
quantized step as that definition states it: dequantize, the float32 step, quantize.

Per block of ``block`` elements (the last may be shorter): absmax = max |x| (NaN if any x is);
v = x / absmax in float32 (0 where absmax is 0); code = the number of midpoints
(m[j] + m[j+1]) / 2, exact in float64, strictly below v (so the nearest entry, ties to the lower
one; NaN codes as 0). Dequantized: m[code] * absmax in float32. 4-bit codes: two per byte,
element 2i in the low nibble, a last odd element's high nibble 0.
"""
from __future__ import annotations

import numpy as np

F32 = np.float32


def _rows(x: np.ndarray, block: int) -> np.ndarray:
    """x as blocks (rows), the last padded with zeros (which change no absmax)."""
    rows = np.zeros((-(-x.size // block), block), x.dtype)
    rows.reshape(-1)[:x.size] = x
    return rows


def quantize(x: np.ndarray, qmap: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, F32).reshape(-1)
    qmap = np.asarray(qmap, F32)
    mids = (qmap[:-1].astype(np.float64) + qmap[1:].astype(np.float64)) / 2
    rows = _rows(x, block)
    a = np.abs(rows)
    scales = np.where(np.isnan(a).any(axis=1), F32(np.nan), np.where(np.isnan(a), F32(0), a).max(axis=1, initial=0)).astype(F32)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(scales[:, None] == 0, F32(0), rows / scales[:, None]).astype(F32)
    codes = np.searchsorted(mids, v.astype(np.float64), side="left")  # #{mid < v}
    codes[np.isnan(v)] = 0
    codes = codes.reshape(-1)[:x.size]
    if qmap.size == 256:
        return codes.astype(np.uint8), scales
    padded = np.zeros(codes.size + codes.size % 2, np.int64)
    padded[:codes.size] = codes
    return (padded[0::2] | (padded[1::2] << 4)).astype(np.uint8), scales


def dequantize(codes: np.ndarray, scales: np.ndarray, qmap: np.ndarray, block: int, n: int) -> np.ndarray:
    qmap = np.asarray(qmap, F32)
    codes = np.asarray(codes).reshape(-1).astype(np.int64)
    if qmap.size == 16:
        codes = np.stack([codes & 15, codes >> 4], axis=1).reshape(-1)
    rows = _rows(codes[:n], block)
    return (qmap[rows] * np.asarray(scales, F32)[:, None]).astype(F32).reshape(-1)[:n]


def nearest_codes_ok(v: np.ndarray, codes: np.ndarray, qmap: np.ndarray) -> bool:
    """Every finite v's code is at an entry no farther than any other (float64 distances)."""
    v = np.asarray(v, np.float64)
    dist = np.abs(v[:, None] - np.asarray(qmap, np.float64)[None, :])
    ok = np.isfinite(v)
    return bool(np.all(dist[ok, codes[ok]] <= dist[ok].min(axis=1)))


def mix64(x):
    """splitmix64's finaliser on uint64 values (wrapping arithmetic)."""
    x = np.asarray(x, np.uint64)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def quantize_stochastic(x: np.ndarray, qmap: np.ndarray, block: int, key: int, first: int = 0):
    """stochastic_codes: v between entries lo and lo + 1 codes as lo + 1 with probability
    (v - m[lo]) / (m[lo+1] - m[lo]) in float32, drawn from the 24 bits
    mix64(mix64(key ^ (e >> 32)) ^ e) >> 40 of element e (first + its index); v below the map codes
    as 0, above as the last entry, NaN as 0."""
    x = np.asarray(x, F32).reshape(-1)
    qmap = np.asarray(qmap, F32)
    nearest_codes, scales = quantize(x, qmap, block)
    if qmap.size == 16:
        nearest_codes = np.stack([nearest_codes & 15, nearest_codes >> 4], 1).reshape(-1)[:x.size]
    c = nearest_codes.astype(np.int64)
    absmax = np.repeat(scales, block)[:x.size]
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(absmax == 0, F32(0), x / absmax).astype(F32)
    lo = np.where(qmap[c] > v, c - 1, c)
    e = np.arange(first, first + x.size, dtype=np.uint64)
    block_key = mix64(np.uint64(key) ^ (e >> np.uint64(32)))
    random24 = (mix64(block_key ^ e) >> np.uint64(40)).astype(np.float32) * F32(2.0 ** -24)
    inside = (lo >= 0) & (lo < qmap.size - 1)
    safe = np.clip(lo, 0, qmap.size - 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        up = ((v - qmap[safe]) / (qmap[safe + 1] - qmap[safe])).astype(F32)
    codes = np.where(inside, np.where(random24 < up, safe + 1, safe), np.maximum(lo, 0))
    codes[np.isnan(v)] = 0
    if qmap.size == 256:
        return codes.astype(np.uint8), scales
    padded = np.zeros(codes.size + codes.size % 2, np.int64)
    padded[:codes.size] = codes
    return (padded[0::2] | (padded[1::2] << 4)).astype(np.uint8), scales
