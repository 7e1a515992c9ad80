"""The compiled steady-state step (pyoptk/_compiled.py, csrc/python/compiled_step.cpp): once an
optimizer's plan runs, C++ computes the coefficients and scalar state and runs the plan. It must
give the Python path's bits for every element-wise algorithm, step aside whenever a group
changes (and pick up the change), and refuse bad grads with nothing written."""
import numpy as np
import pytest

import pyoptk
import pyoptk.optimizer as optimizer_module

from test_capi import CASES


def python_only(monkeypatch):
    monkeypatch.setattr(optimizer_module, "arm", lambda *args: None)


def arrays(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(dtype) for n in (7, 1023, 1, 0, 33)]


def run(name, hyper, steps=14, dtype=np.float32, change=None):
    params = arrays(0, dtype)
    opt = getattr(pyoptk, name)([{"params": params[:2]}, {"params": params[2:], "lr": 0.5 * hyper.get("lr", 1.0)}],
                                **hyper)
    armed = 0
    for t in range(steps):
        if change is not None:
            change(opt, t)
        opt.step(arrays(100 + t, dtype))
        armed += opt._plan is not None and opt._plan.compiled is not None
    return params, opt, armed


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,hyper", CASES)
def test_compiled_steps_are_the_python_paths_bits(monkeypatch, name, hyper, dtype):
    def schedule(opt, t):  # hyper-parameters change at some steps, not at others
        if t in (5, 6, 9):
            opt.param_groups[0]["lr"] = opt.param_groups[0]["lr"] * 0.7
    got, opt, armed = run(name, hyper, dtype=dtype, change=schedule)
    assert armed >= 8  # it ran compiled most of the time
    python_only(monkeypatch)
    want, ref, ref_armed = run(name, hyper, dtype=dtype, change=schedule)
    assert ref_armed == 0
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()
    for p, q in zip(got, want):
        mine, theirs = opt.state[p], ref.state[q]
        assert mine.keys() == theirs.keys()
        for k in mine:
            assert np.asarray(mine[k]).tobytes() == np.asarray(theirs[k]).tobytes(), k
    assert opt.state_dict()["state"].keys() == ref.state_dict()["state"].keys()


def test_a_changed_flag_or_a_betas_list_changed_in_place_is_picked_up(monkeypatch):
    def change(opt, t):
        if t == 4:
            opt.param_groups[1]["amsgrad"] = True  # a new state array: a new plan
        if t == 8:
            opt.param_groups[0]["betas"] = [0.8, 0.99]
        if t == 10:
            opt.param_groups[0]["betas"][0] = 0.5  # same list object, other value
        if t == 12:
            opt.param_groups[1]["maximize"] = True
    got, opt, armed = run("Adam", dict(lr=0.01), steps=16, change=change)
    assert armed >= 6
    python_only(monkeypatch)
    want, _, _ = run("Adam", dict(lr=0.01), steps=16, change=change)
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()


def test_a_refused_compiled_step_changes_nothing():
    params, opt, _ = run("NAdam", dict(lr=0.01), steps=3)
    assert opt._plan.compiled is not None
    snapshot = [p.copy() for p in params], {k: dict(v) for k, v in opt.state_dict()["state"].items()}
    grads = arrays(7)
    grads[1] = grads[1][:-1]
    with pytest.raises(ValueError, match="param 1 grad has shape"):
        opt.step(grads)
    grads = arrays(7)
    grads[4] = params[4]  # a grad that is a param
    with pytest.raises(ValueError):
        opt.step(grads)
    with pytest.raises(ValueError, match="got 4 grads for 5 params"):
        opt.step(arrays(7)[:4])
    for a, b in zip(params, snapshot[0]):
        assert a.tobytes() == b.tobytes()
    now = opt.state_dict()["state"]
    for k, v in snapshot[1].items():
        assert now[k]["step"] == v["step"] == 3 and now[k]["mu_product"] == v["mu_product"]
    opt.step(arrays(8))
    assert opt.state[params[0]]["step"] == 4


def test_none_grads_and_closures_take_the_python_path():
    params, opt, _ = run("Adam", dict(lr=0.01), steps=3)
    grads = arrays(9)
    grads[2] = None
    opt.step(grads)  # param 2 skipped: its state stays at step 3
    assert opt.state[params[2]]["step"] == 3 and opt.state[params[0]]["step"] == 4
    loss = opt.step(closure=lambda: (1.5, arrays(10)))
    assert loss == 1.5


def test_a_scheduled_lr_stays_on_the_compiled_step_and_a_bad_one_is_refused(monkeypatch):
    def schedule(opt, t):
        for group in opt.param_groups:
            group["lr"] *= 0.9  # every step, as an LR scheduler does
    got, opt, armed = run("Adam", dict(lr=0.01), steps=10, change=schedule)
    assert armed == 9 and opt._plan.arm_tried
    python_only(monkeypatch)
    want, _, _ = run("Adam", dict(lr=0.01), steps=10, change=schedule)
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()
    before = [p.copy() for p in got]
    opt.param_groups[1]["lr"] = -1.0
    with pytest.raises(ValueError, match=r"param_groups\[1\]: Invalid learning rate: -1.0"):
        opt.step(arrays(50))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(got, before))
    assert opt.state[got[0]]["step"] == 10


def test_an_optimizer_with_a_compiled_step_is_freed():
    import gc
    import weakref

    _, opt, _ = run("NAdam", dict(lr=0.01), steps=3)
    assert opt._plan.compiled is not None
    ref = weakref.ref(opt)
    del opt
    gc.collect()
    assert ref() is None


def test_adopt_with_a_python_clip_schedule_stays_on_the_python_path(monkeypatch):
    """A clip function C++ cannot compute (one that equals t ** 0.25 until step 8): never compiled,
    so its later values are still called; the default PowerClip(0.25) is compiled."""
    hyper = dict(lr=1e-2, clip_lambda=lambda t: t ** 0.25 if t < 8 else 0.5)
    got, opt, armed = run("ADOPT", hyper)
    assert armed == 0
    python_only(monkeypatch)
    want, _, _ = run("ADOPT", hyper)
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()
    monkeypatch.undo()
    assert run("ADOPT", dict(lr=1e-2))[2] >= 8
