"""Bounded stress tests (a few seconds each): random interleavings of the public operations on one
optimizer from two threads, and hostile arrays fed to every public entry point. Each outcome is
either a clear exception with nothing changed, or the result a clean run gives."""
import copy
import random
import threading
import time
import warnings

import numpy as np
import pytest

import pyoptk
from pyoptk import _core

SECONDS = 2.0  # per interleaving test: the loops stop at the deadline or after MAX_OPS each
MAX_OPS = 300


# ----- two threads, one optimizer ----------------------------------------------------------

def _references(counts, size, cls, hyper):
    """{n: the param after n identical steps} for each n in counts, on a fresh optimizer."""
    p, g = np.zeros(size), np.full(size, 0.5)
    opt = cls([p], **hyper)
    out = {0: p.copy()}
    for n in range(1, max(counts, default=0) + 1):
        opt.step([g])
        if n in counts:
            out[n] = p.copy()
    return out


@pytest.mark.parametrize("cls, hyper", [(pyoptk.Adam, dict(lr=0.01)), (pyoptk.SGD, dict(lr=0.01, momentum=0.9)),
                                        (pyoptk.NAdam, dict(lr=0.01))])
def test_random_interleavings_on_one_optimizer(cls, hyper):
    """step / state_dict / load_state_dict / add_param_group / set_num_threads from two threads.
    Every grad is the same, so each param must end exactly where `its number of applied steps`
    identical steps take it, whatever the order; a step refused (its grads were counted before
    another thread added a group) changes nothing."""
    size = 33_000  # above the 32K-element threshold: 2 threads really split the kernel
    pool = [np.zeros(size) for _ in range(6)]
    opt = cls(pool[:1], **hyper)
    applied = [0] * len(pool)
    added = [1]
    failures = []
    saved_threads = pyoptk.get_num_threads()
    deadline = time.monotonic() + SECONDS
    grad = np.full(size, 0.5)

    def worker(seed):
        rng = random.Random(seed)
        try:
            for _ in range(MAX_OPS):
                if time.monotonic() > deadline:
                    break
                op = rng.choice(["step"] * 6 + ["state_dict", "load", "add", "threads"])
                if op == "step":
                    n = sum(len(g["params"]) for g in opt.param_groups)
                    try:
                        opt.step([grad] * n)
                    except ValueError as e:
                        assert "grads for" in str(e), e  # a group was added meanwhile: refused
                        continue
                    for i in range(n):
                        applied[i] += 1  # steps are serialized, so this count is exact per param
                elif op == "state_dict":
                    sd = opt.state_dict()
                    listed = sum(len(g["params"]) for g in sd["param_groups"])
                    assert set(sd["state"]) <= set(range(listed)), sd["state"].keys()
                elif op == "load":
                    # A round trip under the optimizer's (re-entrant) lock: a snapshot taken and
                    # loaded while another thread steps would roll the state back, by design.
                    with opt._lock:
                        opt.load_state_dict(copy.deepcopy(opt.state_dict()))
                elif op == "add":
                    with opt._lock:
                        if added[0] < len(pool):
                            opt.add_param_group({"params": [pool[added[0]]]})
                            added[0] += 1
                else:
                    pyoptk.set_num_threads(rng.choice([1, 2]))
        except Exception as e:  # noqa: BLE001 - any other exception is the failure under test
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (1, 2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        pyoptk.set_num_threads(saved_threads)
    assert not failures, failures
    assert applied[0] > 10  # the loops ran
    refs = _references(set(applied), size, cls, hyper)
    for i, p in enumerate(pool[:added[0]]):
        np.testing.assert_array_equal(p, refs[applied[i]], err_msg=f"param {i}")
        if applied[i] and "step" in opt.state[p]:
            assert opt.state[p]["step"] == applied[i]


# ----- hostile arrays against every public entry point ------------------------------------

def _unaligned(shape, dtype=np.float64):
    n = int(np.prod(shape))
    a = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)[1:].view(dtype).reshape(shape)
    a[...] = 0.25
    return a


def _restrided(shape):
    a = np.full(shape, 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        a.strides = (a.itemsize, a.itemsize * shape[0])  # column-major over the same buffer
    return a


def _zero_stride(shape):
    return np.broadcast_to(np.float64(0.25), shape)


def _read_only(shape):
    a = np.full(shape, 0.25)
    a.flags.writeable = False
    return a


def _freed_base(shape):
    base = np.full(int(np.prod(shape)) + 8, 0.25)
    view = base[8:].reshape(shape)
    del base  # the view keeps its memory alive
    return view


def _resized(shape):
    a = np.full(int(np.prod(shape)) + 100, 0.25)
    a.resize(int(np.prod(shape)), refcheck=False)
    return a.reshape(shape)


def _masked(shape):
    return np.ma.array(np.full(shape, 0.25), mask=np.zeros(shape, bool))


HOSTILE = {"unaligned": _unaligned, "restrided": _restrided, "zero_stride": _zero_stride, "read_only": _read_only,
           "freed_base": _freed_base, "resized": _resized, "masked": _masked}
SHAPE = (7, 9)


def _clean(a):
    return np.array(np.asarray(a), dtype=np.float64, order="C", copy=True)


def _optimizer_step(cls, **hyper):
    def run(params, grads):
        opt = cls(params, **hyper)
        opt.step(grads)
        opt.step(grads)  # the second one through the plan
        return params
    return run


def _clip_norm(params, grads):
    pyoptk.clip_grad_norm_(grads, 0.1)
    return grads


def _total_norm(params, grads):
    return [np.array(pyoptk.get_total_norm(grads))]


def _clip_value(params, grads):
    pyoptk.clip_grad_value_(grads, 0.1)
    return grads


def _average(params, grads):
    avg = pyoptk.swa_utils.AveragedParams(params, mode="ema", decay=0.5)
    avg.update()
    avg.update(grads)
    return avg.averages


def _reduce(params, grads):
    return [np.array(_core.reduce("sum_squares", params + grads)[0]), np.array(_core.dot(params, grads))]


def _functional_adam(params, grads):
    states = [[np.zeros(p.shape) for p in params] for _ in range(2)]
    pyoptk.functional.adam(params, grads, states[0], states[1], None, [0] * len(params), amsgrad=False, beta1=0.9,
                           beta2=0.999, lr=0.1, weight_decay=0.0, eps=1e-8, maximize=False)
    return params + states[0]


def _sparse_adam(params, grads):
    """SparseAdam with every row of each grad listed (the values are the hostile array)."""
    opt = pyoptk.SparseAdam(params, lr=0.1)
    sparse = [pyoptk.SparseGrad(np.arange(g.shape[0]), g) for g in grads]
    opt.step(sparse)
    opt.step(sparse)
    return params


def _lbfgs(params, grads):
    opt = pyoptk.LBFGS(params, lr=0.5, max_iter=3, history_size=2)
    opt.step(lambda: (0.0, grads))
    return params


def _functional_tree(params, grads):
    tree = {"a": params[0], "b": [params[1]]}
    state = pyoptk.functional.init("adamw", tree, lr=0.1)
    for _ in range(2):
        pyoptk.functional.update(state, tree, {"a": grads[0], "b": [grads[1]]})
    return params


OPTIMIZERS = {"SGD": _optimizer_step(pyoptk.SGD, lr=0.1, momentum=0.9), "Adam": _optimizer_step(pyoptk.Adam, lr=0.1),
              "RMSprop": _optimizer_step(pyoptk.RMSprop, lr=0.1), "Adafactor": _optimizer_step(pyoptk.Adafactor),
              "Muon": _optimizer_step(pyoptk.Muon), "Lion": _optimizer_step(pyoptk.Lion, lr=0.1),
              "Adan": _optimizer_step(pyoptk.Adan, lr=0.1), "LAMB": _optimizer_step(pyoptk.LAMB, lr=0.1),
              "LARS": _optimizer_step(pyoptk.LARS, lr=0.1),
              "ScheduleFreeAdamW": _optimizer_step(pyoptk.ScheduleFreeAdamW, lr=0.1),
              "SparseAdam": _sparse_adam, "LBFGS": _lbfgs,
              "functional.adam": _functional_adam, "functional.update": _functional_tree}
# These gather their grads into new arrays with NumPy (LBFGS's flat grad, SparseAdam's coalesced
# rows) before any kernel reads them: an unaligned grad is copied correctly, so it may be accepted.
COPIES_GRADS = {"LBFGS", "SparseAdam"}
# entry point -> (call, the slots it reads)
ENTRY_POINTS = {**{name: (run, ("param", "grad")) for name, run in OPTIMIZERS.items()},
                "clip_grad_norm_": (_clip_norm, ("grad",)), "get_total_norm": (_total_norm, ("grad",)),
                "clip_grad_value_": (_clip_value, ("grad",)), "AveragedParams": (_average, ("param", "grad")),
                "reduce": (_reduce, ("param", "grad"))}


CASES = [(entry, kind, slot) for entry, (_, reads) in sorted(ENTRY_POINTS.items()) for kind in sorted(HOSTILE)
         for slot in reads]


@pytest.mark.parametrize("entry, kind, slot", CASES)
def test_hostile_arrays_are_refused_unchanged_or_handled_correctly(entry, kind, slot):
    run, _ = ENTRY_POINTS[entry]
    hostile = HOSTILE[kind](SHAPE)
    others = [np.full(SHAPE, 0.5), np.full(SHAPE, -0.75)]
    params = [hostile, others[0]] if slot == "param" else [others[0].copy(), others[1].copy()]
    grads = [others[1].copy(), others[0].copy()] if slot == "param" else [hostile, others[1].copy()]
    before = [_clean(a) for a in params + grads]
    try:
        out = run(params, grads)
    except (TypeError, ValueError) as e:
        assert str(e), "an exception with a message"
        for a, b in zip(before, params + grads):
            np.testing.assert_array_equal(np.asarray(b), a, err_msg="a refused call changed an array")
        return
    # Accepted: the result must be what the same call gives on clean copies.
    clean_params, clean_grads = [_clean(a) for a in before[:2]], [_clean(a) for a in before[2:]]
    expected = run(clean_params, clean_grads)
    for got, want in zip(out, expected):
        np.testing.assert_array_equal(np.asarray(got), want)
    if not (kind == "unaligned" and slot == "grad" and entry in COPIES_GRADS):
        assert kind not in ("unaligned", "masked"), "unaligned and masked arrays must be refused"
    if slot == "param" and entry in OPTIMIZERS:
        assert kind not in ("restrided", "zero_stride", "read_only"), "a param that cannot be updated in place"


def test_aliasing_arrays_are_refused_unchanged():
    p = np.zeros(100)
    for make in (lambda: pyoptk.SGD([p, p], lr=1.0), lambda: pyoptk.SGD([p[:60], p[40:]], lr=1.0)):
        with pytest.raises(ValueError, match="share memory|more than one parameter group"):
            make()
    opt = pyoptk.SGD([p], lr=1.0, momentum=0.9)
    for _ in range(2):  # the first step makes the plan; the second runs through it
        with pytest.raises(ValueError, match="share memory"):
            opt.step([p])  # a grad that is the param itself
        opt.step([np.ones(100)])
    with pytest.raises(ValueError, match="share memory"):
        opt.step([opt.state[p]["momentum_buffer"]])  # a grad that is a state array
    np.testing.assert_array_equal(p, -1.0 - 1.9)  # the two accepted steps: buffers 1, then 1.9
