"""The torch-shaped Python API: param groups, grads bookkeeping, and refusing bad input without
changing anything."""
import copy
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import pyoptk


def _params(*sizes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(dtype) for n in sizes]


def _snapshot(opt):
    return copy.deepcopy([[p.copy() for p in g["params"]] for g in opt.param_groups]), copy.deepcopy(
        {i: s for i, s in opt.state_dict()["state"].items()})


def _assert_unchanged(opt, snapshot):
    params, state = _snapshot(opt)
    for a, b in zip(params, snapshot[0]):
        for x, y in zip(a, b):
            assert np.array_equal(x, y)
    assert state.keys() == snapshot[1].keys()
    for i in state:
        assert state[i].keys() == snapshot[1][i].keys()
        for k in state[i]:
            assert np.array_equal(state[i][k], snapshot[1][i][k])


def _stepped_adam():
    """Two groups, already stepped once, so refusals must protect existing state too."""
    a, b, c = _params(5, 3, 4)
    opt = pyoptk.Adam([{"params": [a, b]}, {"params": [c], "lr": 0.1}], lr=0.01, amsgrad=True)
    opt.step([np.ones_like(a), np.ones_like(b), np.ones_like(c)])
    return opt, (a, b, c)


# ----- construction ---------------------------------------------------------------------------
def test_param_groups_take_defaults_and_overrides():
    a, b = _params(3, 4)
    opt = pyoptk.SGD([{"params": [a]}, {"params": b, "lr": 0.1}], lr=0.01, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]
    assert opt.param_groups[1]["params"][0] is b
    assert opt.defaults == dict(lr=0.01, momentum=0.9, dampening=0, weight_decay=0, nesterov=False, maximize=False)
    assert "Parameter Group 1" in repr(opt)


def test_torch_defaults():
    p = _params(2)
    assert pyoptk.Adam(p).defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                                           maximize=False, decoupled_weight_decay=False)
    assert pyoptk.AdamW(p).defaults["weight_decay"] == 1e-2
    assert pyoptk.AdamW(p).defaults["decoupled_weight_decay"] is True
    assert pyoptk.SGD(p).defaults["lr"] == 1e-3


@pytest.mark.parametrize("make, error, match", [
    (lambda p: pyoptk.Adam([]), ValueError, "empty parameter list"),
    (lambda p: pyoptk.Adam(p[0]), TypeError, "iterable"),
    (lambda p: pyoptk.Adam([p[0].tolist()]), TypeError, "param 0 .*list"),
    (lambda p: pyoptk.Adam([np.arange(3)]), TypeError, "param 0 .*int64"),
    (lambda p: pyoptk.Adam([p[0], np.zeros(4, np.float16)]), TypeError, "param 1 .*float16"),
    (lambda p: pyoptk.Adam([np.zeros((4, 4), np.float32)[:, 1]]), ValueError, "not C-contiguous"),
    (lambda p: pyoptk.Adam([np.broadcast_to(np.float32(1), (3,))]), ValueError, "not C-contiguous|read-only"),
    (lambda p: pyoptk.Adam([p[0], p[0]]), ValueError, "more than one parameter group"),
    (lambda p: pyoptk.Adam([{"params": [p[0]]}, {"params": [p[0][1:]]}]), ValueError, "share memory"),
    (lambda p: pyoptk.Adam({p[0].ctypes.data: p[0]}.values()), None, None),
    (lambda p: pyoptk.Adam([{"params": {1}}]), TypeError, "sets"),
    (lambda p: pyoptk.Adam(p, lr=-1), ValueError, "Invalid learning rate: -1"),
    (lambda p: pyoptk.Adam(p, lr=float("nan")), ValueError, "Invalid learning rate: nan"),
    (lambda p: pyoptk.Adam(p, lr="0.1"), ValueError, "Invalid learning rate"),
    (lambda p: pyoptk.Adam(p, eps=-1e-8), ValueError, "Invalid epsilon value"),
    (lambda p: pyoptk.Adam(p, betas=(1.0, 0.999)), ValueError, "beta parameter at index 0: 1.0"),
    (lambda p: pyoptk.Adam(p, betas=(0.9, -0.1)), ValueError, "beta parameter at index 1"),
    (lambda p: pyoptk.Adam(p, betas=0.9), ValueError, "Invalid betas"),
    (lambda p: pyoptk.Adam(p, weight_decay=-1), ValueError, "weight_decay"),
    (lambda p: pyoptk.Adam(p, amsgrad=1), ValueError, "amsgrad"),
    (lambda p: pyoptk.Adam(p, capturable=True), ValueError, "capturable"),
    (lambda p: pyoptk.Adam(p, differentiable=True), ValueError, "differentiable"),
    (lambda p: pyoptk.Adam(p, lr_decay=0.1), TypeError, "lr_decay"),
    (lambda p: pyoptk.SGD(p, momentum=-0.5), ValueError, "Invalid momentum value"),
    (lambda p: pyoptk.SGD(p, nesterov=True), ValueError, "Nesterov momentum requires"),
    (lambda p: pyoptk.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "Nesterov"),
    (lambda p: pyoptk.SGD(p, weight_decay=float("nan")), ValueError, "weight_decay value: nan"),
])
def test_construction_refuses_bad_input(make, error, match):
    p = _params(4)
    if error is None:
        make(p)  # a dict's values view is an ordered iterable: accepted
        return
    with pytest.raises(error, match=match):
        make(p)


def test_read_only_param_refused():
    p = np.zeros(3, np.float32)
    p.flags.writeable = False
    with pytest.raises(ValueError, match="param 0 .*read-only"):
        pyoptk.SGD([p])


def test_add_param_group_checks_required_and_duplicates():
    a, b = _params(3, 3)
    opt = pyoptk.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="more than one"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="Invalid learning rate"):
        opt.add_param_group({"params": [b], "lr": -1.0})
    opt.add_param_group({"params": [b], "momentum": 0.5})
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["momentum"] == 0.5

    class NeedsLr(pyoptk.SGD):
        def __init__(self, params):
            pyoptk.Optimizer.__init__(self, params, dict(pyoptk.SGD([b]).defaults, lr=pyoptk.required))

    with pytest.raises(ValueError, match="required optimization parameter lr"):
        NeedsLr([a])


# ----- step -----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_grads, error, match", [
    (lambda a, b, c: [np.ones(5, np.float32), np.ones(3, np.float32)], ValueError, "2 grads for 3 params"),
    (lambda a, b, c: [np.ones(5, np.float32), np.ones(4, np.float32), np.ones(4, np.float32)], ValueError,
     r"param 1 grad has shape \(4,\), expected \(3,\)"),
    (lambda a, b, c: [np.ones(5, np.float32), np.ones(3, np.float32), np.ones(4, np.float64)], TypeError,
     "param 2 grad has dtype float64, expected float32"),
    (lambda a, b, c: [np.ones(5, np.float32), [1.0, 2.0, 3.0], np.ones(4, np.float32)], TypeError,
     "param 1 grad is a list"),
    (lambda a, b, c: [np.ones(5, np.float32), np.ones(3, np.float32), np.ones(8, np.float32)[::2]], ValueError,
     "param 2 grad is not C-contiguous"),
    (lambda a, b, c: [np.ones(5, np.float32), np.ones((3, 1), np.float32), np.ones(4, np.float32)], ValueError,
     r"param 1 grad has shape \(3, 1\)"),
    (lambda a, b, c: [np.ones(5, np.float32), np.ones(3, np.float32), c], ValueError, "param 2 .* share memory"),
    (lambda a, b, c: [a[:5], np.ones(3, np.float32), np.ones(4, np.float32)], ValueError, "share memory"),
    (lambda a, b, c: np.ones(3), TypeError, "list"),
])
def test_refused_step_changes_nothing(bad_grads, error, match):
    opt, (a, b, c) = _stepped_adam()
    before = _snapshot(opt)
    with pytest.raises(error, match=match):
        opt.step(bad_grads(a, b, c))
    _assert_unchanged(opt, before)
    assert all(s["step"] == 1 for s in opt.state.values())


def test_param_made_read_only_after_construction_refused_without_change():
    opt, (a, b, c) = _stepped_adam()
    before = _snapshot(opt)
    c.flags.writeable = False
    with pytest.raises(ValueError, match="param 2 is read-only"):
        opt.step([np.ones_like(a), np.ones_like(b), np.ones_like(c)])
    c.flags.writeable = True
    _assert_unchanged(opt, before)


def test_invalid_group_hyper_parameter_refused_at_step_without_change():
    opt, (a, b, c) = _stepped_adam()
    before = _snapshot(opt)
    opt.param_groups[1]["lr"] = -0.5
    with pytest.raises(ValueError, match=r"param_groups\[1\]: Invalid learning rate"):
        opt.step([np.ones_like(a), np.ones_like(b), np.ones_like(c)])
    _assert_unchanged(opt, before)


def test_none_grad_skips_param_and_its_state():
    a, b = _params(4, 4)
    b0 = b.copy()
    opt = pyoptk.Adam([a, b], lr=0.1)
    opt.step([np.ones_like(a), None])
    assert np.array_equal(b, b0) and b not in opt.state and opt.state[a]["step"] == 1
    opt.step([np.ones_like(a), np.ones_like(b)])
    assert opt.state[a]["step"] == 2 and opt.state[b]["step"] == 1


def test_params_with_different_step_counts_get_their_own_bias_correction():
    a, b = _params(6, 6)
    a2, b2 = a.copy(), b.copy()
    opt = pyoptk.Adam([a, b], lr=0.1)
    solo_a, solo_b = pyoptk.Adam([a2], lr=0.1), pyoptk.Adam([b2], lr=0.1)
    rng = np.random.default_rng(3)
    for k in range(5):
        ga, gb = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
        opt.step([ga, gb if k % 2 else None])
        solo_a.step([ga])
        if k % 2:
            solo_b.step([gb])
    assert np.array_equal(a, a2) and np.array_equal(b, b2)


def test_step_updates_in_place_and_views_into_one_buffer():
    buffer = np.zeros(10, np.float64)
    w, bias = buffer[:7].reshape(7), buffer[7:]  # params as views into one arena
    address = w.ctypes.data
    opt = pyoptk.SGD([w, bias], lr=0.5)
    opt.step([np.ones(7), np.full(3, 2.0)])
    assert w.ctypes.data == address
    assert np.array_equal(buffer, [-0.5] * 7 + [-1.0] * 3)


def test_closure_returns_loss_and_supplies_grads():
    p = np.array([3.0])
    opt = pyoptk.SGD([p], lr=0.25)
    loss = opt.step(closure=lambda: (float(p[0] ** 2), [2 * p]))
    assert loss == 9.0 and p[0] == 1.5
    with pytest.raises(ValueError, match="not both"):
        opt.step([2 * p], closure=lambda: (0.0, [2 * p]))
    with pytest.raises(ValueError, match="needs grads"):
        opt.step()


def test_lr_change_mid_run_takes_effect():
    p = np.zeros(3)
    opt = pyoptk.SGD([p], lr=1.0)
    opt.step([np.ones(3)])
    opt.param_groups[0]["lr"] = 0.25
    opt.step([np.ones(3)])
    assert np.array_equal(p, [-1.25] * 3)


def test_zero_dimensional_and_empty_params():
    s, e = np.array(2.0), np.zeros((0, 3))
    opt = pyoptk.Adam([s, e], lr=0.5)
    opt.step([np.array(1.0), np.zeros((0, 3))])
    assert abs(s - 1.5) < 1e-7 and e.shape == (0, 3)  # lr * m_hat / (sqrt(v_hat) + eps) = 0.5 / (1 + 1e-8)


# ----- functional -----------------------------------------------------------------------------
def test_functional_adam_matches_class_and_increments_steps():
    p1, p2 = _params(9, dtype=np.float64) * 2
    p2 = p1.copy()
    opt = pyoptk.Adam([p1], lr=0.1, amsgrad=True)
    m, v, vmax, steps = np.zeros(9), np.zeros(9), np.zeros(9), [0]
    rng = np.random.default_rng(0)
    for _ in range(4):
        g = rng.standard_normal(9)
        opt.step([g])
        pyoptk.functional.adam([p2], [g], [m], [v], [vmax], steps, amsgrad=True, beta1=0.9, beta2=0.999, lr=0.1,
                               weight_decay=0.0, eps=1e-8, maximize=False)
    assert steps == [4]
    assert np.array_equal(p1, p2) and np.array_equal(opt.state[p1]["max_exp_avg_sq"], vmax)


def test_functional_sgd_creates_momentum_buffers_in_the_list():
    p = np.zeros(4)
    bufs = [None]
    for _ in range(2):
        pyoptk.functional.sgd([p], [np.ones(4)], bufs, weight_decay=0.0, momentum=0.5, lr=1.0, dampening=0.0,
                              nesterov=False, maximize=False)
    assert np.array_equal(bufs[0], [1.5] * 4) and np.array_equal(p, [-2.5] * 4)


def test_functional_refuses_mismatched_lists_and_bad_grads_without_change():
    p, m, v = np.zeros(4), np.zeros(4), np.zeros(4)
    steps = [0]
    kw = dict(amsgrad=False, beta1=0.9, beta2=0.999, lr=0.1, weight_decay=0.0, eps=1e-8, maximize=False)
    with pytest.raises(ValueError, match="exp_avg_sq.* 2 entries"):
        pyoptk.functional.adam([p], [np.ones(4)], [m], [v, v], None, steps, **kw)
    with pytest.raises(TypeError, match="param 0 grad has dtype float32"):
        pyoptk.functional.adam([p], [np.ones(4, np.float32)], [m], [v], None, steps, **kw)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        pyoptk.functional.adam([p], [np.ones(4)], [m], [v], None, steps, **dict(kw, lr=-1))
    assert steps == [0] and not p.any() and not m.any()


# ----- ISA and threads --------------------------------------------------------------------------
def test_isa_reporting_and_forcing():
    isas = pyoptk.available_isas()
    # The best one is picked by default, unless PYOPTK_ISA lowered it at import.
    wanted = os.environ.get("PYOPTK_ISA", "").strip().lower()
    assert isas[0] == "scalar" and pyoptk.isa() == (wanted if wanted in isas else isas[-1])
    assert pyoptk._core.best_isa() == isas[-1]
    with pytest.raises(ValueError, match="unknown ISA"):
        pyoptk.set_isa("sse9")
    if "avx512" not in isas:  # built but not runnable here, or not built (PYOPTK_ISAS, ARM): refused either way
        built = [name for name, _, _ in pyoptk._core._isa_rows()]
        with pytest.raises(ValueError, match="not available" if "avx512" in built else "unknown ISA"):
            pyoptk.set_isa("avx512")


def _isa_in_subprocess(value):
    env = dict(os.environ, PYOPTK_ISA=value)
    code = "import warnings, pyoptk; print(pyoptk.isa())"
    out = subprocess.run([sys.executable, "-W", "default", "-c", code], env=env, capture_output=True, text=True,
                         cwd=tempfile.gettempdir())  # not the repo root, whose pyoptk/ is the uncompiled source
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), out.stderr


def test_pyoptk_isa_env_lowers_the_isa():
    assert _isa_in_subprocess("scalar")[0] == "scalar"
    isa, stderr = _isa_in_subprocess("avx1024")
    assert isa == pyoptk.available_isas()[-1] and "PYOPTK_ISA" in stderr


def test_num_threads():
    saved = pyoptk.get_num_threads()
    try:
        pyoptk.set_num_threads(3)
        assert pyoptk.get_num_threads() == 3
        with pytest.raises(ValueError, match="n must be >= 1"):
            pyoptk.set_num_threads(0)
    finally:
        pyoptk.set_num_threads(saved)


def test_default_threads_honour_omp_num_threads():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", "import pyoptk; print(pyoptk.get_num_threads())"], env=env,
                         capture_output=True, text=True, cwd=tempfile.gettempdir())
    assert out.stdout.strip() == "1"
