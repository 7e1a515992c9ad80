"""Block-quantized optimizer state (state_dtype="int8" / "int4", pyoptk/_quant.py, csrc/cpu/quantize.h).

The quantizer is held bit for bit to the NumPy reference written from the README's definition
(tests/reference/quantized.py), and the quantized step to that definition: dequantize the codes,
the float32 step (pyoptk's own, whose bits tests/test_step_bits.py pins), quantize, on every ISA
and thread count, for every element-wise algorithm and flag case, every param dtype.
"""
from __future__ import annotations

import copy

import ml_dtypes
import numpy as np
import pytest

import pyoptk
from pyoptk import _core
from pyoptk._quant import NO_4BIT, QMAP, QUANTIZED_STATES, SCALES, map_of, state_sign
from cases import STEP_BITS
from reference import quantized as ref

BF16, F16 = ml_dtypes.bfloat16, np.float16
MAPS = [(8, "signed"), (8, "unsigned"), (4, "signed"), (4, "unsigned")]  # map ids 0..3
SIZES = [0, 1, 7, 1023, 4097, 5003]  # empty, one, odd, block tails, past min_8bit_size
STEPS = 6


def _values(n, rng, sign):
    """Normal values over several magnitudes, with zero blocks, exact zeros and huge outliers."""
    x = (rng.standard_normal(n) * 10.0 ** rng.integers(-8, 3, n)).astype(np.float32)
    if sign == "unsigned":
        x = np.abs(x)
    x[: min(n, 300)] = 0  # a whole zero block
    x[::7] = 0
    x[5::97] *= 1e6
    return x


# ----- the quantizer ---------------------------------------------------------------------------
def test_maps_are_bitsandbytes_and_torchao_maps():
    bnb = pytest.importorskip("bitsandbytes.functional")
    np.testing.assert_array_equal(map_of(8, "signed"), bnb.create_dynamic_map(True).numpy())
    np.testing.assert_array_equal(map_of(8, "unsigned"), bnb.create_dynamic_map(False).numpy())
    ao = pytest.importorskip("torchao.optim.subclass_4bit")
    np.testing.assert_array_equal(map_of(4, "signed"), np.array(ao.get_qmap_signed(), np.float32))
    np.testing.assert_array_equal(map_of(4, "unsigned"), np.array(ao.get_qmap_unsigned(), np.float32))
    assert 0 not in map_of(4, "unsigned")  # Adam's denominator never collapses


@pytest.mark.parametrize("map_id", range(4))
@pytest.mark.parametrize("block", [32, 128, 256, 512])
def test_quantizer_matches_reference_bit_for_bit(map_id, block):
    bits, sign = MAPS[map_id]
    qmap = map_of(bits, sign)
    rng = np.random.default_rng(map_id * 1000 + block)
    for n in SIZES + [2 * block + 1]:
        x = _values(n, rng, sign)
        codes, scales = _core.quantize(x, map_id, block)
        want_codes, want_scales = ref.quantize(x, qmap, block)
        np.testing.assert_array_equal(codes, want_codes)
        np.testing.assert_array_equal(scales, want_scales)
        back = _core.dequantize(codes, scales, map_id, block, n)
        np.testing.assert_array_equal(back, ref.dequantize(codes, scales, qmap, block, n))
        # Nearest: no map entry is closer to x / absmax than the one coded.
        full = np.stack([codes & 15, codes >> 4], 1).reshape(-1)[:n] if bits == 4 else codes
        absmax = np.repeat(scales, block)[:n]
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where(absmax == 0, 0, x / absmax).astype(np.float32)
        assert ref.nearest_codes_ok(v, full.astype(np.int64), qmap)


def test_quantizer_non_finite_blocks():
    x = np.zeros(96, np.float32)
    x[3], x[40], x[70] = np.nan, np.inf, -2.0
    codes, scales = _core.quantize(x, 0, 32)
    want_codes, want_scales = ref.quantize(x, map_of(8, "signed"), 32)
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(scales, want_scales)  # NaN == NaN here
    assert np.isnan(scales[0]) and scales[1] == np.inf and scales[2] == 2.0
    assert codes[3] == 0  # NaN codes as 0


def test_ties_go_to_the_lower_entry():
    qmap = map_of(4, "unsigned")  # entry j is (j + 1) / 16: the midpoint of j and j + 1, (2j + 3) / 32, is exact
    x = np.array([1.0] + [(2 * j + 3) / 32 for j in range(15)], np.float32)
    codes, _ = _core.quantize(x, 3, 32)
    full = np.stack([codes & 15, codes >> 4], 1).reshape(-1)
    np.testing.assert_array_equal(full[1:], np.arange(15))
    assert qmap[full[1]] == 1 / 16


# ----- the quantized step -------------------------------------------------------------------------
QUANTIZABLE = [(n, kw) for n, kw in STEP_BITS if getattr(pyoptk, n).kernel.name in QUANTIZED_STATES]
NAMES = sorted({n for n, _ in QUANTIZABLE})


def _cases():
    out = []
    for name, kw in QUANTIZABLE:
        kernel = getattr(pyoptk, name).kernel.name
        for bits in (8, 4):
            if bits == 4 and kernel in NO_4BIT:
                continue
            out.append((name, kw, bits, np.float32, {}))
            out.append((name, kw, bits, BF16, {}))
            out.append((name, kw, bits, F16, dict(master_weights=True)))
    for name in ("Adam", "AdamW", "SGD", "Lion"):  # stochastic rounding of the param, with and without master
        kw = next(kw for n, kw in QUANTIZABLE if n == name)
        for precision in (dict(stochastic_rounding=True, seed=5), dict(stochastic_rounding=True, master_weights=True)):
            out.append((name, kw, 8, BF16, precision))
    out.append(("Adam", dict(lr=0.01), 8, np.float32, dict(block_size=32)))
    out.append(("Adam", dict(lr=0.01), 4, np.float32, dict(block_size=512)))
    return out


CASES = _cases()


def _case_id(case):
    name, kw, bits, dtype, precision = case
    return "-".join([name, f"int{bits}", np.dtype(dtype).name] + [f"{k}={v}" for k, v in {**kw, **precision}.items()])


def _problem(dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    grads = []
    for _ in range(STEPS):
        step = []
        for n in SIZES:
            g = rng.standard_normal(n)
            g[::5] = 0
            g[3::11] *= 100
            step.append(g.astype(dtype))
        grads.append(step)
    return params, grads


def _quantized_run(name, kw, bits, dtype, precision):
    """Every param's (param, states) after each step, under the quantized optimizer."""
    params, grads = _problem(dtype)
    opt = getattr(pyoptk, name)(params, **kw, state_dtype=f"int{bits}", min_8bit_size=0, **precision)
    trace = []
    for g in grads:
        opt.step(g)
        trace.append([(p.copy(), {k: np.copy(v) for k, v in opt.state[p].items()}) for p in params])
    return trace


def _reference_run(name, kw, bits, dtype, precision):
    """The definition: each step dequantizes the codes (reference), runs the float32-state step,
    and quantizes (reference). Initial states are 0 or a constant, which quantize exactly."""
    precision = dict(precision)
    block = precision.pop("block_size", 256 if bits == 8 else 128)
    params, grads = _problem(dtype)
    opt = getattr(pyoptk, name)(params, **kw, state_dtype="float32", **precision)
    mode = opt._group_mode(opt.param_groups[0])
    codes: dict[int, dict[str, tuple]] = {}
    trace = []
    for g in grads:
        for i, p in enumerate(params):
            for state_name, (c, s, sign) in codes.get(i, {}).items():
                opt.state[p][state_name][...] = ref.dequantize(c, s, map_of(bits, sign), block, p.size).reshape(p.shape)
        opt.step(g)
        snap = []
        for i, p in enumerate(params):
            state = {}
            for k, v in opt.state[p].items():
                sign = state_sign(opt.kernel, k, mode)
                if sign is None:
                    state[k] = np.copy(v)
                    continue
                c, s = ref.quantize(v, map_of(bits, sign), block)
                codes.setdefault(i, {})[k] = (c, s, sign)
                state.update({k: c, k + SCALES: s, k + QMAP: map_of(bits, sign)})
            snap.append((p.copy(), state))
        trace.append(snap)
    return trace


def _assert_same(got, want, where):
    for t, (g_step, w_step) in enumerate(zip(got, want)):
        for i, ((gp, gs), (wp, ws)) in enumerate(zip(g_step, w_step)):
            at = f"{where}, step {t + 1}, param {i}"
            assert gp.tobytes() == wp.tobytes(), f"{at}: param bits differ"
            assert sorted(gs) == sorted(ws), at
            for k in gs:
                a, b = np.asarray(gs[k]), np.asarray(ws[k])
                assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{at}: {k} bits differ"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_quantized_step_is_dequantize_step_quantize(case, kernel_config):
    want = _reference_run(*case)
    for isa in pyoptk.available_isas():
        for threads in (1, 2):
            kernel_config(isa, threads)
            _assert_same(_quantized_run(*case), want, f"{isa}, {threads} thread(s)")


# ----- settings and bad input ----------------------------------------------------------------------
def _adam(n=5000, **kw):
    p = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    return p, pyoptk.Adam([p], lr=1e-2, **kw)


def test_defaults_and_small_tensors_keep_float32():
    p, opt = _adam(state_dtype="int8")
    small = np.zeros(4095, np.float32)
    opt.add_param_group({"params": [small]})
    opt.step([np.ones_like(p), np.ones_like(small)])
    assert opt.precision.quant.block_size == 256 and opt.precision.quant.min_8bit_size == 4096
    assert opt.state[p]["exp_avg"].dtype == np.uint8 and opt.state[p]["exp_avg_absmax"].size == 20
    assert opt.state[small]["exp_avg"].dtype == np.float32 and "exp_avg_absmax" not in opt.state[small]
    _, opt4 = _adam(state_dtype="int4")
    assert opt4.precision.quant.block_size == 128
    # States not in the table stay float32: Rprop's step sizes, ASGD's average, Adan's previous grad.
    q = np.ones(5000, np.float32)
    adan = pyoptk.Adan([q], state_dtype="int8")
    adan.step([np.ones_like(q)])
    assert adan.state[q]["pre_grad"].dtype == np.float32 and adan.state[q]["exp_avg"].dtype == np.uint8
    rprop = pyoptk.Rprop([q.copy()], state_dtype="int8")
    rprop.step([np.ones_like(q)])
    assert all(v.dtype == np.float32 for v in next(iter(rprop.state.values())).values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("kwargs,match", [
    (dict(state_dtype="int8", block_size=48), "block_size"),
    (dict(state_dtype="int8", block_size=16), "block_size"),
    (dict(state_dtype="int4", block_size=1024), "block_size"),
    (dict(state_dtype="int8", block_size=True), "block_size"),
    (dict(state_dtype="int8", min_8bit_size=-1), "min_8bit_size"),
    (dict(state_dtype="float32", block_size=256), "block_size"),
    (dict(state_dtype="int2"), "state_dtype"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _adam(**kwargs)


def test_algorithms_without_a_quantized_form_are_refused():
    p = np.ones(5000, np.float32)
    with pytest.raises(ValueError, match="int4"):
        pyoptk.Adadelta([p], state_dtype="int4")
    for cls in (pyoptk.SparseAdam, pyoptk.LBFGS, pyoptk.Adafactor, pyoptk.LAMB, pyoptk.LARS, pyoptk.Muon,
                pyoptk.ScheduleFreeAdamW):
        with pytest.raises((ValueError, TypeError), match="state_dtype"):  # TypeError: takes no precision
            cls([p.reshape(50, 100)], state_dtype="int8")
    with pytest.raises(ValueError, match="float64"):
        pyoptk.Adam([np.ones(5000)], state_dtype="int8")


def test_a_bad_quantized_state_changes_nothing():
    p, opt = _adam(state_dtype="int8")
    opt.step([np.ones_like(p)])
    before = copy.deepcopy((p, dict(opt.state[p])))
    opt.state[p]["exp_avg_absmax"] = np.zeros(19, np.float32)  # one block short
    with pytest.raises(ValueError, match="scales"):
        opt.step([np.ones_like(p)])
    opt.state[p]["exp_avg_absmax"] = before[1]["exp_avg_absmax"].copy()
    opt.state[p]["exp_avg"] = np.zeros(4999, np.uint8)
    with pytest.raises(ValueError, match="bytes"):
        opt.step([np.ones_like(p)])
    assert p.tobytes() == before[0].tobytes()
    assert opt.state[p]["exp_avg_sq"].tobytes() == before[1]["exp_avg_sq"].tobytes()


def test_a_bad_quantized_checkpoint_changes_nothing():
    p, opt = _adam(state_dtype="int8")
    opt.step([np.ones_like(p)])
    good = copy.deepcopy(opt.state_dict())
    q, other = _adam(state_dtype="int8")
    other.step([np.full_like(q, 2.0)])
    before = copy.deepcopy(dict(other.state[q]))
    wrong_map = copy.deepcopy(good)
    wrong_map["state"][0]["exp_avg_qmap"] = map_of(8, "unsigned")  # exp_avg is signed
    wrong_blocks = copy.deepcopy(good)
    wrong_blocks["state"][0]["exp_avg_sq_absmax"] = np.ones(7, np.float32)
    no_map = copy.deepcopy(good)
    del no_map["state"][0]["exp_avg_qmap"]
    for bad, match in ((wrong_map, "map"), (wrong_blocks, "block scales"), (no_map, "exp_avg_qmap")):
        with pytest.raises(ValueError, match=match):
            other.load_state_dict(bad)
        for k, v in before.items():
            assert np.asarray(other.state[q][k]).tobytes() == np.asarray(v).tobytes(), k
    other.load_state_dict(good)  # the good one loads


# ----- checkpoints ---------------------------------------------------------------------------------
@pytest.mark.parametrize("state_dtype", ["int8", "int4"])
def test_state_dict_round_trip_continues_bit_for_bit(state_dtype):
    def run(reload):
        p, opt = _adam(state_dtype=state_dtype, weight_decay=0.1)
        rng = np.random.default_rng(3)
        for t in range(6):
            if reload and t == 3:
                saved = copy.deepcopy(opt.state_dict())
                assert saved["precision"]["state_dtype"] == state_dtype
                opt = pyoptk.Adam([p], lr=1e-2, weight_decay=0.1, state_dtype=state_dtype)
                opt.load_state_dict(saved)
            opt.step([rng.standard_normal(p.size).astype(np.float32)])
        return p, opt.state[p]
    (p1, s1), (p2, s2) = run(False), run(True)
    assert p1.tobytes() == p2.tobytes()
    assert all(np.asarray(s1[k]).tobytes() == np.asarray(s2[k]).tobytes() for k in s1)


@pytest.mark.parametrize("state_dtype,bits", [("int8", 8), ("int4", 4)])
def test_float32_and_quantized_checkpoints_load_both_ways(state_dtype, bits):
    p, f32 = _adam()
    f32.step([np.random.default_rng(0).standard_normal(p.size).astype(np.float32)])
    exp_avg = f32.state[p]["exp_avg"].copy()
    # float32 -> quantized: quantized on load, as the quantizer codes it.
    q = p.copy()
    quant = pyoptk.Adam([q], lr=1e-2, state_dtype=state_dtype)
    quant.load_state_dict(f32.state_dict())
    codes, scales = ref.quantize(exp_avg, map_of(bits, "signed"), 256 if bits == 8 else 128)
    np.testing.assert_array_equal(quant.state[q]["exp_avg"], codes)
    np.testing.assert_array_equal(quant.state[q]["exp_avg_absmax"], scales)
    assert quant.state[q]["step"] == 1
    # quantized -> float32: dequantized, in the param's shape.
    r = p.copy()
    back = pyoptk.Adam([r], lr=1e-2)
    back.load_state_dict(quant.state_dict())
    want = ref.dequantize(codes, scales, map_of(bits, "signed"), 256 if bits == 8 else 128, p.size)
    assert back.state[r]["exp_avg"].dtype == np.float32 and back.state[r]["exp_avg"].shape == p.shape
    np.testing.assert_array_equal(back.state[r]["exp_avg"], want)
    step = np.ones_like(p)
    back.step([step])  # and it steps on
    # int8 -> int4 and other block sizes: re-coded.
    s = p.copy()
    other = pyoptk.Adam([s], lr=1e-2, state_dtype="int4" if bits == 8 else "int8", block_size=64)
    other.load_state_dict(quant.state_dict())
    assert other.state[s]["exp_avg_absmax"].size == -(-p.size // 64)


def test_functional_tree_api_keeps_quantized_state():
    params = {"w": np.ones(5000, np.float32), "b": np.ones(3, np.float32)}
    state = pyoptk.functional.init("adamw", params, lr=1e-2, state_dtype="int8")
    for _ in range(2):
        pyoptk.functional.update(state, params, {"w": np.full(5000, 0.5, np.float32), "b": np.ones(3, np.float32)})
    assert state["state"]["w"]["exp_avg"].dtype == np.uint8 and state["state"]["w"]["step"] == 2
    assert state["state"]["b"]["exp_avg"].dtype == np.float32  # below min_8bit_size


# ----- pyoptk.torch --------------------------------------------------------------------------------
def test_torch_optimizer_quantized_state_and_checkpoints():
    torch = pytest.importorskip("torch")
    import pyoptk.torch as pt

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(100, 100), torch.nn.Linear(100, 3)).to(torch.bfloat16)
    opt = pt.AdamW(model.parameters(), lr=1e-3, state_dtype="int8", master_weights=True)
    x = torch.randn(8, 100, dtype=torch.bfloat16)
    for _ in range(3):
        opt.zero_grad()
        model(x).float().pow(2).mean().backward()
        opt.step()
    st = opt.state[model[0].weight]
    assert st["exp_avg"].dtype == torch.uint8 and st["exp_avg_absmax"].dtype == torch.float32
    saved = opt.state_dict()
    again = pt.AdamW(model.parameters(), lr=1e-3, state_dtype="int8", master_weights=True)
    again.load_state_dict(saved)
    for k, v in st.items():
        assert torch.equal(again.state[model[0].weight][k], v), k
    plain = pt.AdamW(model.parameters(), lr=1e-3, master_weights=True, state_dtype="float32")
    plain.load_state_dict(saved)
    assert plain.state[model[0].weight]["exp_avg"].dtype == torch.float32


def test_bitsandbytes_adamw8bit_checkpoint_loads_and_continues():
    torch = pytest.importorskip("torch")
    bnb = pytest.importorskip("bitsandbytes")
    import pyoptk.torch as pt

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(100, 100), torch.nn.Linear(100, 3))
    twin = copy.deepcopy(model)
    theirs = bnb.optim.AdamW8bit(model.parameters(), lr=1e-3, weight_decay=0.01)
    xs = [torch.randn(8, 100) for _ in range(6)]
    for x in xs[:3]:
        theirs.zero_grad()
        model(x).pow(2).mean().backward()
        theirs.step()
    twin.load_state_dict(model.state_dict())
    saved = theirs.state_dict()
    ours = pt.AdamW(twin.parameters(), lr=0.5, state_dtype="int8")
    ours.load_state_dict(saved)
    inner = saved["state"][0]["__bnb_optimizer_quant_state__"]
    st = ours.state[twin[0].weight]
    assert float(st["step"]) == 3 and ours.param_groups[0]["lr"] == 1e-3
    assert torch.equal(st["exp_avg"], inner["state1"].reshape(-1))  # same map, same block: codes kept
    assert torch.equal(st["exp_avg_sq_absmax"], inner["absmax2"])
    assert ours.state[twin[0].bias]["exp_avg"].dtype == torch.float32  # bnb's float32 small state
    for x in xs[3:]:
        for m, o in ((model, theirs), (twin, ours)):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    assert float(ours.state[twin[0].weight]["step"]) == 6
    for a, b in zip(model.parameters(), twin.parameters()):
        assert (a - b).abs().max() < 1e-4  # 3 steps of lr 1e-3 from the same state


# ----- against bitsandbytes (pinned 0.50.2, optional) and quality -----------------------------------
@pytest.mark.parametrize("theirs,ours,kw", [("AdamW8bit", "AdamW", dict(lr=1e-2)), ("Adam8bit", "Adam", dict(lr=1e-2)),
                                            ("Lion8bit", "Lion", dict(lr=1e-3))])
def test_one_step_codes_match_bitsandbytes_where_theirs_are_nearest(theirs, ours, kw):
    """From the same state (theirs, loaded), one step each: the scales agree, and our codes are
    within one map step of theirs wherever theirs is the nearest code (bitsandbytes' CPU
    quantizer is approximate: elsewhere it is not the nearest, ours is)."""
    bnb = pytest.importorskip("bitsandbytes")
    torch = pytest.importorskip("torch")
    import pyoptk.torch as pt

    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(8192))
    twin = torch.nn.Parameter(w.detach().clone())
    them = getattr(bnb.optim, theirs)([w], **kw)
    for _ in range(3):
        w.grad = torch.randn(8192)
        them.step()
    twin.data.copy_(w.data)
    us = getattr(pt, ours)([twin], **kw, state_dtype="int8")
    us.load_state_dict(them.state_dict())
    g = torch.randn(8192)
    w.grad, twin.grad = g.clone(), g.clone()
    them.step()
    us.step()
    names = [("state1", "exp_avg", "signed"), ("state2", "exp_avg_sq", "unsigned")][:1 if ours == "Lion" else 2]
    for i, (key, name, sign) in enumerate(names, 1):
        their_codes = them.state[w][key].numpy().reshape(-1).astype(np.int64)
        our_codes = us.state[twin][name].numpy().astype(np.int64)
        our_scales = us.state[twin][name + SCALES].numpy()
        np.testing.assert_allclose(our_scales, them.state[w][f"absmax{i}"].numpy(), rtol=1e-6)
        # The float32 state both quantized, as near as we can see it: ours dequantized.
        values = _core.dequantize(our_codes.astype(np.uint8), our_scales, 0 if sign == "signed" else 1, 256, 8192)
        nearest, _ = ref.quantize(values, map_of(8, sign), 256)
        where = their_codes == nearest.astype(np.int64)
        assert where.mean() > 0.5, key
        assert np.abs(our_codes - their_codes)[where].max() <= 1, key


@pytest.mark.parametrize("theirs,ours,kw", [("AdamW8bit", "AdamW", dict(lr=1e-2)), ("Adam8bit", "Adam", dict(lr=1e-2)),
                                            ("Lion8bit", "Lion", dict(lr=1e-3))])
def test_100_steps_stay_closer_to_bitsandbytes_than_it_is_to_its_float32(theirs, ours, kw):
    bnb = pytest.importorskip("bitsandbytes")
    torch = pytest.importorskip("torch")
    import pyoptk.torch as pt

    def trajectory(make):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(8192))
        target, noise = torch.randn(8192), torch.randn(100, 8192)
        opt = make([w])
        for t in range(100):
            w.grad = (w.detach() - target) * 0.1 + noise[t]  # from its own params: trajectories may part
            opt.step()
        return w.detach()

    theirs8 = trajectory(lambda p: getattr(bnb.optim, theirs)(p, **kw))
    theirs32 = trajectory(lambda p: getattr(bnb.optim, ours)(p, **kw, optim_bits=32))
    ours8 = trajectory(lambda p: getattr(pt, ours)(p, **kw, state_dtype="int8"))
    assert (ours8 - theirs8).norm() <= (theirs8 - theirs32).norm()


def _least_squares(state_dtype, steps=300):
    """The README's kind of demo: AdamW on a 4096-parameter least-squares problem (relative loss)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 4096)).astype(np.float32) / 64
    y = x @ rng.standard_normal(4096).astype(np.float32)
    w = np.zeros(4096, np.float32)
    opt = pyoptk.AdamW([w], lr=3e-2, **({} if state_dtype is None else dict(state_dtype=state_dtype)))
    for _ in range(steps):
        opt.step([(x.T @ (x @ w - y) / len(y)).astype(np.float32)])
    return float(np.mean((x @ w - y) ** 2) / np.mean(y ** 2))


def _mlp(state_dtype, steps=150):
    torch = pytest.importorskip("torch")
    import pyoptk.torch as pt

    torch.manual_seed(0)
    x = torch.randn(512, 32)
    y = torch.sin(x @ torch.randn(32, 4))
    model = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.Tanh(), torch.nn.Linear(128, 128), torch.nn.Tanh(),
                                torch.nn.Linear(128, 4))
    precision = {} if state_dtype is None else dict(state_dtype=state_dtype, min_8bit_size=0)
    opt = pt.AdamW(model.parameters(), lr=3e-3, **precision)
    first = float((model(x) - y).pow(2).mean().detach())
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
    return float(loss.detach()) / first


@pytest.mark.parametrize("train", [_least_squares, _mlp])
def test_training_with_quantized_state_reaches_float32s_loss(train):
    """Final loss, relative to the first, within 1e-3 of float32 state's: 8- and 4-bit state train
    as float32 state does (measured: least squares 4e-7 float32, int8 about the same, int4 2e-6;
    the MLP 2e-4 float32, int8 8e-4)."""
    f32 = train(None)
    for state_dtype in ("int8", "int4"):
        assert train(state_dtype) <= f32 + 1e-3, state_dtype


def test_the_quantized_state_bench_runs(capsys):
    from pyoptk.bench import main

    main(["--state-dtype", "int8,int4", "--sizes", "3000", "--threads", "1", "--reps", "1"])
    out = capsys.readouterr().out
    for impl in ("pyoptk fp32+int8", "pyoptk bf16+int4", "roofline fp32+int8", "state memory"):
        assert impl in out


# ----- stochastic rounding of the codes (stochastic_codes=True) ---------------------------------------
@pytest.mark.parametrize("map_id", range(4))
def test_stochastic_codes_match_reference_and_are_deterministic(map_id):
    bits, sign = MAPS[map_id]
    rng = np.random.default_rng(map_id)
    x = _values(5003, rng, sign)
    x[1000] = np.nan
    codes, scales = _core.quantize(x, map_id, 128, key=12345)
    want, want_scales = ref.quantize_stochastic(x, map_of(bits, sign), 128, 12345)
    np.testing.assert_array_equal(codes, want)
    np.testing.assert_array_equal(scales, want_scales)
    again, _ = _core.quantize(x, map_id, 128, key=12345)
    other, _ = _core.quantize(x, map_id, 128, key=12346)
    assert again.tobytes() == codes.tobytes() and other.tobytes() != codes.tobytes()


@pytest.mark.parametrize("map_id", range(4))
def test_stochastic_codes_are_unbiased(map_id):
    bits, sign = MAPS[map_id]
    qmap = map_of(bits, sign)
    n, block = 1 << 16, 512
    x = np.empty(n, np.float32)
    x[::block] = 1.0  # every block's absmax is 1: v = x
    values = np.array([0.3, 0.05, 0.7, 1e-4] if sign == "unsigned" else [0.3, -0.05, -0.7, 1e-4], np.float32)
    for value in values:
        x[x != 1.0] = value
        x[::block] = 1.0
        lo = qmap[qmap <= value].max() if (qmap <= value).any() else qmap[0]
        mean = np.mean([_core.dequantize(*_core.quantize(x, map_id, block, key=k), map_id, block, n)[x != 1.0].mean()
                        for k in range(4)])
        if lo == qmap[0] and value < qmap[0]:  # below the zero-free map: its first entry, as nearest would
            assert mean == qmap[0]
            continue
        hi = qmap[qmap > value].min()
        sigma = (hi - lo) / 2 / np.sqrt(4 * n)
        assert abs(mean - value) < 5 * sigma + 1e-7, (value, mean)
        nearest = _core.dequantize(*_core.quantize(x, map_id, block), map_id, block, n)[x != 1.0].mean()
        assert abs(mean - value) <= abs(nearest - value) + 5 * sigma + 1e-7


@pytest.mark.parametrize("state_dtype,bits", [("int8", 8), ("int4", 4)])
@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_stochastic_codes_in_the_step_are_keyed_by_seed_step_param_element(state_dtype, bits, dtype, kernel_config):
    """The quantized step with stochastic_codes: dequantize, the float32 step, quantize
    stochastically with the key of (seed, step, param index, state slot), on every ISA and thread
    count; the same seed gives the same codes, another seed others."""
    seed, block = 7, 256 if bits == 8 else 128

    def run(seed):
        params, grads = _problem(dtype)
        opt = pyoptk.Adam(params, lr=0.01, state_dtype=state_dtype, min_8bit_size=0, stochastic_codes=True, seed=seed)
        for g in grads:
            opt.step(g)
        return params, opt

    # The reference: the float32-state step, its states quantized with the step's keys.
    params, grads = _problem(dtype)
    f32 = pyoptk.Adam(params, lr=0.01, state_dtype="float32")
    codes = {}
    for t, g in enumerate(grads):
        for i, p in enumerate(params):
            for name, (c, s, sign) in codes.get(i, {}).items():
                f32.state[p][name][...] = ref.dequantize(c, s, map_of(bits, sign), block, p.size).reshape(p.shape)
        f32.step(g)
        code_key = (seed * 0x9E3779B97F4A7C15 + t) % 2 ** 64 ^ 0xC0DE5C0DE5
        for i, p in enumerate(params):
            param_key = int(ref.mix64(np.uint64(code_key) ^ ref.mix64(np.uint64(i))))
            for k, (name, sign) in enumerate((("exp_avg", "signed"), ("exp_avg_sq", "unsigned"))):
                slot_key = int(ref.mix64(np.uint64(param_key) ^ np.uint64(2 + k)))
                c, s = ref.quantize_stochastic(f32.state[p][name], map_of(bits, sign), block, slot_key)
                codes.setdefault(i, {})[name] = (c, s, sign)
    for isa in pyoptk.available_isas():
        for threads in (1, 2):
            kernel_config(isa, threads)
            got, opt = run(seed)
            for i, (p, q) in enumerate(zip(got, params)):
                assert p.tobytes() == q.tobytes(), (isa, threads, i)
                for name, (c, s, _) in codes.get(i, {}).items():
                    assert opt.state[p][name].tobytes() == c.tobytes(), (isa, threads, i, name)
                    assert opt.state[p][name + SCALES].tobytes() == s.tobytes(), (isa, threads, i, name)
    _, other = run(seed + 1)
    assert other.state[other.param_groups[0]["params"][5]]["exp_avg"].tobytes() != \
        opt.state[got[5]]["exp_avg"].tobytes()
    assert opt.state_dict()["precision"]["stochastic_codes"] is True
