"""pyoptk.swa_utils.AveragedParams: SWA/EMA against NumPy references over many updates, on every
ISA x thread count (bit-identical), torch AveragedModel parity, swapping, checkpoints, refusals."""
import copy
import itertools

import numpy as np
import pytest

from pyoptk.swa_utils import AveragedParams

from conftest import DTYPES, ISAS, THREADS

SIZES = [0, 1, 7, 17, 1023, 100003]
UPDATES = 12


def run(dtype, mode, seed=0, **kw):
    """UPDATES updates of AveragedParams over fresh random params; returns (averages, history)."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    avg = AveragedParams(params, mode, **kw)
    history = []
    for _ in range(UPDATES):
        for p in params:
            p[...] = rng.standard_normal(p.shape).astype(dtype)
        history.append([p.copy() for p in params])
        avg.update()
    assert avg.n_averaged == UPDATES
    return avg.averages, history


def reference(history, mode, decays=None, bias_correction=False):
    """SWA in the array dtype, the same operations as torch's get_swa_avg_fn; EMA in float64."""
    avgs = None
    z = 0.0
    for n, params in enumerate(history):
        if mode == "swa":
            dt = params[0].dtype
            avgs = [p.copy() for p in params] if n == 0 else [a + (p - a) / dt.type(n + 1) for a, p in zip(avgs, params)]
            continue
        d = decays[n]
        z = d * z + (1 - d)
        w = 1.0 if n == 0 else ((1 - d) / z if bias_correction else 1 - d)
        p64 = [p.astype(np.float64) for p in params]
        avgs = p64 if n == 0 else [a + w * (p - a) for a, p in zip(avgs, p64)]
    return avgs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["swa", "ema"])
def test_reference_every_isa_and_thread_count(kernel_config, dtype, mode):
    results = []
    for isa, threads in itertools.product(ISAS, THREADS):
        kernel_config(isa, threads)
        results.append(run(dtype, mode, decay=0.8))
    first, history = results[0]
    for other, _ in results[1:]:
        for a, b in zip(first, other):
            np.testing.assert_array_equal(a, b)
    ref = reference(history, mode, [0.8] * UPDATES)
    for a, r in zip(first, ref):
        assert a.dtype == dtype
        if mode == "swa":
            np.testing.assert_array_equal(a, r)  # same operations, same dtype
        else:  # kernel: lerp with fma in the dtype; reference: float64
            np.testing.assert_allclose(a, r, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("options", [dict(bias_correction=True), dict(warmup=True),
                                     dict(decay=lambda n: 0.5 + 0.04 * n), dict(warmup=True, bias_correction=True)])
def test_ema_variants(options):
    options = dict(options)
    decay = options.pop("decay", 0.9)
    out, history = run(np.float64, "ema", 1, decay=decay, **options)
    decays = [decay(n) if callable(decay) else decay for n in range(UPDATES)]
    if options.get("warmup"):
        decays = [min(d, (1 + n) / (10 + n)) for n, d in enumerate(decays)]
    ref = reference(history, "ema", decays, options.get("bias_correction", False))
    for a, r in zip(out, ref):
        np.testing.assert_allclose(a, r, rtol=1e-13, atol=1e-14)


def test_bias_correction_is_the_debiased_zero_started_ema():
    rng = np.random.default_rng(2)
    p = np.zeros(5)
    avg = AveragedParams([p], "ema", decay=0.7, bias_correction=True)
    ema = np.zeros(5)
    for t in range(1, 9):
        p[...] = rng.standard_normal(5)
        avg.update()
        ema = 0.7 * ema + 0.3 * p
        np.testing.assert_allclose(avg.averages[0], ema / (1 - 0.7 ** t), rtol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["swa", "ema"])
def test_torch_averaged_model_bitwise(dtype, mode):
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    rng = np.random.default_rng(3)
    params = [rng.standard_normal(n).astype(dtype) for n in (1, 17, 1023, 4099)]
    model = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params])
    theirs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9) if mode == "ema" else None)
    mine = AveragedParams(params, mode, decay=0.9)
    for _ in range(UPDATES):
        for p, t in zip(params, model):
            p[...] = rng.standard_normal(p.shape).astype(dtype)
            with torch.no_grad():
                t.copy_(torch.from_numpy(p))
        mine.update()
        theirs.update_parameters(model)
    assert mine.n_averaged == int(theirs.n_averaged)
    for a, t in zip(mine.averages, theirs.module):
        # Same formulas as torch's CPU kernels (division for SWA; lerp with fma for EMA).
        np.testing.assert_array_equal(a, t.detach().numpy())


def test_first_update_copies_and_update_with_other_params():
    p = np.arange(4.0)
    avg = AveragedParams([p], "ema", decay=0.5)
    avg.averages[0][:] = np.nan
    avg.update()
    np.testing.assert_array_equal(avg.averages[0], p)
    other = np.full(4, 10.0)
    avg.update_parameters([other])
    np.testing.assert_array_equal(avg.averages[0], 0.5 * p + 5.0)
    assert avg.n_averaged == 2


def test_swapped_and_copy_to():
    p = np.arange(3.0)
    avg = AveragedParams([p], "swa")
    avg.update()
    p[...] = [10.0, 20.0, 30.0]
    avg.update()
    expected = np.array([5.0, 10.5, 16.0])
    buf_id = p.__array_interface__["data"][0]
    with avg.swapped() as live:
        assert live[0] is p
        np.testing.assert_array_equal(p, expected)
        np.testing.assert_array_equal(avg.averages[0], [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(p, [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(avg.averages[0], expected)
    with pytest.raises(KeyError):
        with avg.swapped():
            raise KeyError("restored anyway")
    np.testing.assert_array_equal(p, [10.0, 20.0, 30.0])
    assert p.__array_interface__["data"][0] == buf_id
    out = np.zeros(3)
    avg.copy_to([out])
    np.testing.assert_array_equal(out, expected)


def test_buffers():
    p, running = np.zeros(3, np.float32), np.ones(2, np.float32)
    count = np.array(5, np.int64)
    avg = AveragedParams([p], "swa", buffers=[running, count])
    for k in range(3):
        p[...] = k
        running[...] = 10 * k
        count[...] = 7 + k
        avg.update()
    np.testing.assert_array_equal(avg.averages[0], 1.0)
    np.testing.assert_array_equal(avg.buffer_copies[0], 20.0)  # copied, not averaged
    assert avg.buffer_copies[1] == 9
    avg2 = AveragedParams([p], "swa", buffers=[running], use_buffers=True)
    for k in range(3):
        running[...] = 10 * k
        avg2.update()
    np.testing.assert_array_equal(avg2.buffer_copies[0], 10.0)  # averaged
    with pytest.raises(TypeError, match=r"buffers\[0\] has dtype int64"):
        AveragedParams([p], buffers=[count], use_buffers=True)


def test_state_dict_round_trip_and_refusals():
    rng = np.random.default_rng(4)
    params = [rng.standard_normal(n) for n in (3, 50)]
    a = AveragedParams(params, "ema", decay=0.9, bias_correction=True)
    for _ in range(3):
        a.update()
    saved = copy.deepcopy(a.state_dict())
    b = AveragedParams([p.copy() for p in params], "ema", decay=0.9, bias_correction=True)
    ids = [id(x) for x in b.averages]
    b.load_state_dict(saved)
    assert [id(x) for x in b.averages] == ids and b.n_averaged == 3
    for _ in range(2):
        params[0] += 1
        a.update()
        b.update(params)
    for x, y in zip(a.averages, b.averages):
        np.testing.assert_array_equal(x, y)
    before = copy.deepcopy(b.state_dict())
    bad = [
        (dict(saved, n_averaged=-1), "non-negative whole number"),
        (dict(saved, mode="swa"), "holds 'swa' averages"),
        (dict(saved, averages=saved["averages"][:1]), "has 1 averages, AveragedParams keeps 2"),
        (dict(saved, averages=[saved["averages"][0], np.zeros(49)]), r"averages\[1\] has shape \(49,\)"),
        (dict(saved, averages=[saved["averages"][0], np.zeros(50, np.int64)]), "expected floating point"),
        ({k: v for k, v in saved.items() if k != "ema_norm"}, r"missing keys \['ema_norm'\]"),
        (dict(saved, extra=1), r"unknown keys \['extra'\]"),
    ]
    for sd, message in bad:
        with pytest.raises(ValueError, match=message):
            b.load_state_dict(sd)
    after = b.state_dict()
    assert after["n_averaged"] == before["n_averaged"]
    for x, y in zip(after["averages"], before["averages"]):
        np.testing.assert_array_equal(x, y)


def test_bad_inputs():
    good = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match=r"params\[1\] has dtype int64; AveragedParams averages float32 and float64"):
        AveragedParams([good, np.zeros(3, np.int64)])
    with pytest.raises(ValueError, match=r"params\[0\] is not C-contiguous"):
        AveragedParams([np.zeros((4, 4))[:, 0]])
    with pytest.raises(TypeError, match=r"params\[0\] is a list"):
        AveragedParams([[1.0]])
    with pytest.raises(ValueError, match="mode must be 'swa' or 'ema'"):
        AveragedParams([good], "mean")
    with pytest.raises(ValueError, match=r"Invalid decay value 1.5"):
        AveragedParams([good], "ema", decay=1.5)
    with pytest.raises(ValueError, match="mode='ema' only"):
        AveragedParams([good], "swa", bias_correction=True)
    with pytest.raises(TypeError, match="ordered sequence"):
        AveragedParams({1, 2})
    avg = AveragedParams([good, np.zeros(5)])
    with pytest.raises(ValueError, match=r"params\[1\] has shape \(4,\), its average \(5,\)"):
        avg.update([good, np.zeros(4)])
    with pytest.raises(TypeError, match=r"params\[1\] has dtype float32, its average float64"):
        avg.update([good, np.zeros(5, np.float32)])
    with pytest.raises(ValueError, match="params has 1 arrays, AveragedParams keeps 2"):
        avg.update([good])
    with pytest.raises(ValueError, match="share memory"):  # the kernel's check: an average aliasing a param
        avg.update([avg.averages[0], np.zeros(5)])
    assert avg.n_averaged == 0  # refused updates change nothing
    with pytest.raises(ValueError, match=r"decay\(0\) = 2.0 is not in \[0, 1\]"):
        AveragedParams([good], "ema", decay=lambda n: 2.0).update()
