"""The one step path (pyoptk/optimizer.py, csrc/python/plan.cpp, group_schedule.cpp): every step
runs a plan made by the checked path; the kernel's own coefficients and scalar state are computed
in C++ from the param groups, read each step. A plan kept from step to step must give the bits of
one made anew each step (from the state dicts), pick up every change of a group (a scheduler's
lr, a flag, a betas list changed in place), and refuse bad grads with nothing written."""
import numpy as np
import pytest

import pyoptk

from test_capi import CASES


def arrays(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(dtype) for n in (7, 1023, 1, 0, 33)]


def run(name, hyper, steps=14, dtype=np.float32, change=None, keep=True):
    """``steps`` steps; keep=False makes the plan anew every step (the checked path each time)."""
    params = arrays(0, dtype)
    opt = getattr(pyoptk, name)([{"params": params[:2]}, {"params": params[2:], "lr": 0.5 * hyper.get("lr", 1.0)}],
                                **hyper)
    kept = 0
    for t in range(steps):
        if change is not None:
            change(opt, t)
        before = opt._plan
        if not keep:
            opt._plan = None
        opt.step(arrays(100 + t, dtype))
        kept += before is not None and opt._plan is before
    return params, opt, kept


def same_bits(got, opt, want, ref):
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()
    for p, q in zip(got, want):
        mine, theirs = opt.state[p], ref.state[q]
        assert mine.keys() == theirs.keys()
        for k in mine:
            assert np.asarray(mine[k]).tobytes() == np.asarray(theirs[k]).tobytes(), k


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,hyper", CASES)
def test_a_kept_plan_gives_the_bits_of_a_plan_made_each_step(name, hyper, dtype):
    def schedule(opt, t):  # hyper-parameters change at some steps, not at others
        if t in (5, 6, 9):
            opt.param_groups[0]["lr"] = opt.param_groups[0]["lr"] * 0.7
    got, opt, kept = run(name, hyper, dtype=dtype, change=schedule)
    assert kept >= 8  # the plan ran again most of the time
    want, ref, ref_kept = run(name, hyper, dtype=dtype, change=schedule, keep=False)
    assert ref_kept == 0
    same_bits(got, opt, want, ref)
    assert opt.state_dict()["state"].keys() == ref.state_dict()["state"].keys()


def test_a_changed_flag_or_a_betas_list_changed_in_place_is_picked_up():
    def change(opt, t):
        if t == 4:
            opt.param_groups[1]["amsgrad"] = True  # a new state array: a new plan
        if t == 8:
            opt.param_groups[0]["betas"] = [0.8, 0.99]
        if t == 10:
            opt.param_groups[0]["betas"][0] = 0.5  # same list object, other value
        if t == 12:
            opt.param_groups[1]["maximize"] = True
    got, opt, kept = run("Adam", dict(lr=0.01), steps=16, change=change)
    assert kept >= 6
    want, ref, _ = run("Adam", dict(lr=0.01), steps=16, change=change, keep=False)
    same_bits(got, opt, want, ref)


def test_an_lr_changed_between_steps_takes_effect():
    """A kept plan reads the groups each step: lr 0 (no weight decay) leaves the params as they are."""
    params, opt, _ = run("Adam", dict(lr=0.01), steps=3)
    plan = opt._plan
    for group in opt.param_groups:
        group["lr"] = 0.0
    before = [p.copy() for p in params]
    opt.step(arrays(60))
    assert opt._plan is plan and all(a.tobytes() == b.tobytes() for a, b in zip(params, before))
    opt.param_groups[1]["lr"] = 0.01
    opt.step(arrays(61))
    assert params[0].tobytes() == before[0].tobytes() and params[1].tobytes() == before[1].tobytes()
    assert params[2].tobytes() != before[2].tobytes()


def test_a_refused_step_changes_nothing():
    params, opt, _ = run("NAdam", dict(lr=0.01), steps=3)
    plan = opt._plan
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
    assert opt.state[params[0]]["step"] == 4 and opt._plan is plan


def test_a_replaced_state_dict_or_array_makes_a_new_plan():
    params, opt, _ = run("Adam", dict(lr=0.01), steps=3)
    ref_params, ref, _ = run("Adam", dict(lr=0.01), steps=3, keep=False)
    plan = opt._plan
    opt.state[params[1]] = dict(opt.state[params[1]])  # the same values in a new dict
    ref.state[ref_params[1]] = dict(ref.state[ref_params[1]])
    opt.step(arrays(40))
    assert opt._plan is not plan
    plan = opt._plan
    for o, p in ((opt, params[0]), (ref, ref_params[0])):
        o.state[p]["exp_avg"] = o.state[p]["exp_avg"].copy()  # an array replaced in its dict
    opt.step(arrays(41))
    ref._plan = None
    ref.step(arrays(40))
    ref._plan = None
    ref.step(arrays(41))
    assert opt._plan is not plan
    same_bits(params, opt, ref_params, ref)


def test_none_grads_and_closures():
    params, opt, _ = run("Adam", dict(lr=0.01), steps=3)
    grads = arrays(9)
    grads[2] = None
    opt.step(grads)  # param 2 skipped: its state stays at step 3
    assert opt.state[params[2]]["step"] == 3 and opt.state[params[0]]["step"] == 4
    opt.step(arrays(10))  # then params at different steps share a plan, each with its own coefficients
    assert opt.state[params[2]]["step"] == 4 and opt.state[params[0]]["step"] == 5
    loss = opt.step(closure=lambda: (1.5, arrays(10)))
    assert loss == 1.5


def test_a_scheduled_lr_keeps_the_plan_and_a_bad_one_is_refused():
    def schedule(opt, t):
        for group in opt.param_groups:
            group["lr"] *= 0.9  # every step, as an LR scheduler does
    got, opt, kept = run("Adam", dict(lr=0.01), steps=10, change=schedule)
    assert kept == 9
    want, ref, _ = run("Adam", dict(lr=0.01), steps=10, change=schedule, keep=False)
    same_bits(got, opt, want, ref)
    before = [p.copy() for p in got]
    opt.param_groups[1]["lr"] = -1.0
    with pytest.raises(ValueError, match=r"param_groups\[1\]: Invalid learning rate: -1.0"):
        opt.step(arrays(50))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(got, before))
    assert opt.state[got[0]]["step"] == 10


def test_a_0d_lr_written_in_place_keeps_the_plan_and_is_checked():
    """A 0-d array lr a scheduler writes in place (same object, new value): read and checked each
    step it moved, the plan kept; a value out of range is refused with nothing written."""
    params, opt, _ = run("Adam", dict(lr=0.01), steps=3)
    lr = np.array(0.01)
    opt.param_groups[0]["lr"] = lr
    opt.step(arrays(20))
    plan = opt._plan
    lr[...] = 0.0
    before = [p.copy() for p in params]
    opt.step(arrays(21))
    assert opt._plan is plan and params[0].tobytes() == before[0].tobytes()
    assert params[2].tobytes() != before[2].tobytes()
    lr[...] = -1.0
    before = [p.copy() for p in params]
    with pytest.raises(ValueError, match=r"param_groups\[0\]: Invalid learning rate: -1.0"):
        opt.step(arrays(22))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(params, before))
    opt.param_groups[1]["note"] = "a key the check does not read"  # checked again, the plan kept
    lr[...] = 0.01
    opt.step(arrays(23))
    assert opt._plan is plan and opt.state[params[0]]["step"] == 6


def test_a_plain_new_lr_is_accepted_in_cpp_and_any_other_is_checked_in_python(monkeypatch):
    """A scheduler's new lr (a float >= 0, or a 0-d lr's new value) is all that changed: C++
    records it, no Python check runs, the plan stays and the lr takes effect; a negative, NaN or
    non-float lr, or another key changed with it, goes to the Python check as before."""
    params, opt, _ = run("Adam", dict(lr=0.01), steps=3)
    checked = []
    check = type(opt)._check_group
    monkeypatch.setattr(type(opt), "_check_group", lambda self, group: (checked.append(1), check(self, group)))
    plan = opt._plan
    for lr in (0.02, 0.0, 1e300):
        opt.param_groups[0]["lr"] = lr
        opt.step(arrays(30))
    assert not checked and opt._plan is plan and opt.state[params[0]]["step"] == 6
    before = [p.copy() for p in params]
    opt.param_groups[0]["lr"] = 0.0
    opt.step(arrays(31))
    assert params[0].tobytes() == before[0].tobytes() and params[2].tobytes() != before[2].tobytes()
    for bad in (-1.0, float("nan")):
        opt.param_groups[0]["lr"] = bad
        with pytest.raises(ValueError, match=r"param_groups\[0\]: Invalid learning rate"):
            opt.step(arrays(32))
    assert len(checked) == 2
    opt.param_groups[0]["lr"] = 1  # an int: the Python check, which takes it
    opt.step(arrays(33))
    opt.param_groups[0]["lr"], opt.param_groups[0]["eps"] = 0.01, 1e-6  # lr and eps: checked in Python
    opt.step(arrays(34))
    assert len(checked) == 4


@pytest.mark.parametrize("entry", [e for e in pyoptk.optim.ALGORITHMS if e.cls.plain_lr_key],
                         ids=lambda e: e.name)
def test_what_cpp_accepts_as_a_new_lr_the_python_check_accepts_in_the_same_mode(entry):
    """GroupWatch accepts a finite lr >= 0 alone for these classes: their check must accept every
    such lr and their mode must not read it (else C++ would let through what Python refuses)."""
    p = np.zeros(3, np.float32)
    opt = entry.cls([p])
    group = opt.param_groups[0]
    for lr in (0.0, 1e-300, 0.5, 1e300):
        changed = dict(group, lr=lr)
        opt._check_group(changed)
        assert opt._group_mode(changed) == opt._group_mode(group)
    assert entry.cls.plain_lr_key == "lr"


def test_an_optimizer_with_a_plan_is_freed():
    import gc
    import weakref

    _, opt, _ = run("NAdam", dict(lr=0.01), steps=3)
    assert opt._plan.schedule is not None
    ref = weakref.ref(opt)
    del opt
    gc.collect()
    assert ref() is None


def test_adopt_with_a_python_clip_schedule_calls_it_each_step():
    """A clip function C++ cannot compute (one that equals t ** 0.25 until step 8): computed in
    Python each step, so its later values are still called; the default PowerClip(0.25) is the
    kernel's own schedule."""
    hyper = dict(lr=1e-2, clip_lambda=lambda t: t ** 0.25 if t < 8 else 0.5)
    got, opt, kept = run("ADOPT", hyper)
    assert opt._plan.schedule is None and kept >= 8
    want, ref, _ = run("ADOPT", hyper, keep=False)
    same_bits(got, opt, want, ref)
    power, _, _ = run("ADOPT", dict(lr=1e-2))
    assert any(a.tobytes() != b.tobytes() for a, b in zip(got, power))  # the function's values were read
    _, default, kept = run("ADOPT", dict(lr=1e-2))
    assert default._plan.schedule is not None and kept >= 8
