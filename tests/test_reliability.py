"""Regression tests for issue #10: memory safety under hostile arrays, one optimizer used from
several threads, replaced param groups, pickling, deterministic BLAS use, validated checkpoints
and counts. Each test fails on the code before the fix (4e64b54)."""
import copy
import pickle
import threading
import warnings

import numpy as np
import pytest

import pyoptk
from pyoptk import _core
from pyoptk.functional import adam as adam_fn
from pyoptk.functional import nadam as nadam_fn
from pyoptk.functional import sgd as sgd_fn


def set_strides(a, strides):
    with warnings.catch_warnings():  # NumPy 2.4 deprecates setting strides; still possible
        warnings.simplefilter("ignore", DeprecationWarning)
        a.strides = strides


def unaligned(n, dtype):
    """A C-contiguous view whose data sits one byte past an aligned address."""
    itemsize = np.dtype(dtype).itemsize
    a = np.zeros(n * itemsize + 1, np.uint8)[1:].view(dtype)
    assert a.flags.c_contiguous and not a.flags.aligned
    return a


# ----- 1. the plan caches data pointers ------------------------------------------------------

def test_shrunk_param_after_the_plan_steps_its_new_buffer():
    # The repro: a glibc abort ("malloc(): invalid next size") before the fix.
    p, q = np.zeros(1000, np.float32), np.zeros(7, np.float32)
    opt = pyoptk.SGD([p, q], lr=1.0)
    for _ in range(2):
        opt.step([np.ones_like(p), np.ones_like(q)])
    p.resize(10, refcheck=False)
    opt.step([np.full(10, 0.5, np.float32), np.ones_like(q)])
    np.testing.assert_array_equal(p, np.full(10, -2.5, np.float32))
    np.testing.assert_array_equal(q, np.full(7, -3.0, np.float32))
    opt.step([np.ones(10, np.float32), np.ones_like(q)])  # and the re-planned steps after it
    np.testing.assert_array_equal(p, np.full(10, -3.5, np.float32))


def test_grown_param_after_the_plan_is_updated_in_its_new_buffer():
    p = np.zeros(7, np.float64)
    opt = pyoptk.SGD([p], lr=1.0)
    opt.step([np.ones(7)])
    opt.step([np.ones(7)])
    p.resize(5000, refcheck=False)  # a new buffer: the old one is freed
    opt.step([np.ones(5000)])
    np.testing.assert_array_equal(p[:7], -3.0)
    np.testing.assert_array_equal(p[7:], -1.0)


@pytest.mark.parametrize("which", ["param", "state"])
def test_resized_param_or_state_with_momentum_is_refused_unchanged(which):
    p, q = np.zeros(1000, np.float32), np.zeros(7, np.float32)
    opt = pyoptk.SGD([p, q], lr=1.0, momentum=0.9)
    for _ in range(2):
        opt.step([np.ones_like(p), np.ones_like(q)])
    buf = opt.state[p]["momentum_buffer"]
    target = p if which == "param" else buf
    target.resize(10, refcheck=False)
    before = [p.copy(), q.copy(), buf.copy(), opt.state[q]["momentum_buffer"].copy()]
    grads = [np.ones(10 if which == "param" else 1000, np.float32), np.ones_like(q)]
    with pytest.raises(ValueError, match="param 0 momentum_buffer has shape"):
        opt.step(grads)
    after = [p, q, buf, opt.state[q]["momentum_buffer"]]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_restrided_param_after_the_plan_is_refused_unchanged():
    # Before the fix the grad for [0, 1] updated [1, 0] (the plan stepped it as C-ordered).
    p = np.zeros((2, 2), np.float32)
    opt = pyoptk.SGD([p], lr=1.0)
    opt.step([np.ones_like(p)])
    opt.step([np.ones_like(p)])
    set_strides(p, (4, 8))  # now Fortran-ordered over the same buffer
    with pytest.raises(ValueError, match="param 0 is not C-contiguous"):
        opt.step([np.arange(4, dtype=np.float32).reshape(2, 2)])
    np.testing.assert_array_equal(p, -2.0)


def test_plan_rechecks_arrays_after_python_code_ran_during_the_run():
    # A coefficient's __float__ runs after the grads were checked: it resizes the param. The run
    # must see it (StalePlan), not write through the stale pointer.
    p = np.zeros(1000, np.float64)
    g = np.ones(1000)
    plan = _core.Plan("sgd", [(0, 0, 0, p, None, None)])  # plain SGD: no momentum buffer

    class Sneaky:
        def __float__(self):
            p.resize(3, refcheck=False)
            return 1.0

    coeffs = [tuple(Sneaky() for _ in pyoptk._kernels.Kernel("sgd").coeff_names)]
    with pytest.raises(_core.StalePlan):
        plan.run([g], coeffs)
    np.testing.assert_array_equal(p, 0.0)


# ----- 2. reductions over a sequence of fresh arrays -----------------------------------------

class FreshArrays:
    """A sequence that makes a new array on every __getitem__ (freed as soon as nothing holds it)."""

    def __init__(self, n, size):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i >= self.n:
            raise IndexError(i)
        return np.full(self.size, float(i + 1))


def test_reductions_keep_fresh_sequence_items_alive():
    # SIGSEGV or NaN before the fix: only raw pointers were kept, the arrays freed.
    n, size = 8, 100_000
    expected = float(sum((i + 1) ** 2 for i in range(n)) * size)
    assert _core.sum_squares(FreshArrays(n, size)) == expected
    assert _core.dot(FreshArrays(n, size), FreshArrays(n, size)) == expected
    total, per = _core.reduce("sum_abs", FreshArrays(n, size))
    assert per == [float((i + 1) * size) for i in range(n)] and total == float(sum(per))


# ----- 3. misaligned arrays ----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_arrays_are_refused_everywhere(dtype):
    bad = unaligned(33, dtype)
    with pytest.raises(ValueError, match="param 0 (of the new group )?is not aligned"):
        pyoptk.Adam([bad])
    p = np.zeros(33, dtype)
    opt = pyoptk.Adam([p])
    with pytest.raises(ValueError, match="param 0 grad is not aligned"):
        opt.step([unaligned(33, dtype)])
    opt.step([np.ones(33, dtype)])  # the plan's fast path checks grads too
    snapshot = (p.copy(), opt.state[p]["exp_avg"].copy(), opt.state[p]["step"])
    g = unaligned(33, dtype)
    g[:] = 1
    with pytest.raises(ValueError, match="param 0 grad is not aligned"):
        opt.step([g])
    np.testing.assert_array_equal(p, snapshot[0])
    np.testing.assert_array_equal(opt.state[p]["exp_avg"], snapshot[1])
    assert opt.state[p]["step"] == snapshot[2]
    with pytest.raises(ValueError, match=r"xs\[0\] is not aligned"):
        _core.sum_squares([bad])
    with pytest.raises(ValueError, match="not aligned"):
        pyoptk.clip_grad_norm_([bad], 1.0)
    with pytest.raises(ValueError, match="param 0 grad is not aligned"):
        pyoptk.Muon([np.zeros((3, 11), dtype)]).step([unaligned(33, dtype).reshape(3, 11)])
    # SparseAdam coalesces a SparseGrad's values into a new (aligned) array: the right result.
    sp, ref = np.zeros((4, 3), dtype), np.zeros((4, 3), dtype)
    values = unaligned(3, dtype).reshape(1, 3)
    values[:] = 1
    pyoptk.SparseAdam([sp]).step([pyoptk.SparseGrad(np.array([1]), values)])
    pyoptk.SparseAdam([ref]).step([pyoptk.SparseGrad(np.array([1]), np.ones((1, 3), dtype))])
    np.testing.assert_array_equal(sp, ref)
    assert sp[1].min() < 0


@pytest.mark.parametrize("which", ["rows", "grad values"])
def test_unaligned_rows_or_values_are_refused_by_the_rows_kernel(which):
    p, e1, e2 = np.zeros((4, 2)), np.zeros((4, 2)), np.zeros((4, 2))
    rows, values = np.array([0, 2]), np.ones((2, 2))
    if which == "rows":
        rows = np.zeros(2 * 8 + 1, np.uint8)[1:].view(np.int64)
        rows[:] = [0, 2]
    else:
        values = unaligned(4, np.float64).reshape(2, 2)
    item = (0, 0, 0, p, values, rows, e1, e2)
    coeffs = [tuple(0.1 for _ in pyoptk._kernels.Kernel("sparse_adam").coeff_names)]
    with pytest.raises(ValueError, match=f"param 0 {which} (is|are) not aligned"):
        _core.step_rows("sparse_adam", [item], coeffs)
    np.testing.assert_array_equal(p, 0)


# ----- 4. one optimizer, two threads --------------------------------------------------------

@pytest.mark.parametrize("name, per_thread", [("SGD", 150), ("Adam", 150), ("Adafactor", 40)])
def test_concurrent_steps_on_one_optimizer_are_serialized(name, per_thread):
    # Before the fix 600 concurrent steps left step at ~300 and params off by 0.16, silently.
    threads = 2
    p = np.zeros(50_000, np.float64)  # large enough for the GIL to be released for a while
    g = np.full_like(p, 0.01)
    opt = getattr(pyoptk, name)([p], lr=0.01)

    def work():
        for _ in range(per_thread):
            opt.step([g])

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    ref = np.zeros_like(p)
    ref_opt = getattr(pyoptk, name)([ref], lr=0.01)
    for _ in range(threads * per_thread):
        ref_opt.step([g])
    assert opt.state[p]["step"] == threads * per_thread if name != "SGD" else True
    np.testing.assert_array_equal(p, ref)  # identical grads: any order gives the same bits


def test_two_optimizers_do_not_share_a_lock():
    # Two optimizers must still step in parallel: holding one's lock does not block the other.
    a, b = np.zeros(10), np.zeros(10)
    opt_a, opt_b = pyoptk.SGD([a], lr=1.0), pyoptk.SGD([b], lr=1.0)
    done = threading.Event()
    with opt_a._lock:
        t = threading.Thread(target=lambda: (opt_b.step([np.ones(10)]), done.set()))
        t.start()
        assert done.wait(10), "optimizer b waited for optimizer a's lock"
        t.join()
    np.testing.assert_array_equal(b, -1.0)


def test_step_racing_add_param_group_errs_before_writing_or_succeeds():
    # Before the fix a step racing add_param_group raised KeyError after its update was written.
    params = [np.zeros(4000) for _ in range(4)]
    opt = pyoptk.Adam(params[:1], lr=0.1)
    applied = [0] * 40
    errors = []

    def stepper():
        for _ in range(300):
            n = sum(len(g["params"]) for g in opt.param_groups)
            try:
                opt.step([np.ones(4000)] * n)
            except ValueError as e:  # the group count changed between reading it and the step
                assert "grads for" in str(e), e
                continue
            except Exception as e:  # anything else is the bug
                errors.append(e)
                return
            for i in range(n):
                applied[i] += 1

    def adder():
        for p in params[1:]:
            opt.add_param_group({"params": [p]})

    t1, t2 = threading.Thread(target=stepper), threading.Thread(target=adder)
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    assert not errors, errors
    for i, p in enumerate(params):
        if applied[i] == 0:
            assert p not in opt.state
            continue
        assert opt.state[p]["step"] == applied[i]
        ref = np.zeros(4000)
        ref_opt = pyoptk.Adam([ref], lr=0.1)
        for _ in range(applied[i]):
            ref_opt.step([np.ones(4000)])
        np.testing.assert_array_equal(p, ref)


# ----- 5. a replaced param-group dict ------------------------------------------------------

def test_replacing_a_param_group_dict_keeps_the_optimizer_working():
    # Before the fix every later step raised "The truth value of an array ... is ambiguous".
    old, new = np.zeros(5), np.zeros(5)
    opt = pyoptk.SGD([old], lr=1.0)
    opt.step([np.ones(5)])
    opt.step([np.ones(5)])  # planned
    opt.param_groups[0] = dict(opt.param_groups[0], params=[new])
    for _ in range(3):
        opt.step([np.ones(5)])
    np.testing.assert_array_equal(new, -3.0)
    np.testing.assert_array_equal(old, -2.0)


# ----- 6. Adafactor and Muon: the same bits whatever BLAS's thread count --------------------

@pytest.mark.parametrize("name", ["Adafactor", "Muon"])
def test_blas_thread_count_does_not_change_the_bits(name):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(0)
    shape = (400, 300) if name == "Muon" else (300_000,)  # big enough for BLAS to use threads
    p0 = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) for _ in range(3)]
    results = []
    for blas_threads in (1, 2):
        with threadpoolctl.threadpool_limits(limits=blas_threads, user_api="blas"):
            before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
            p = p0.copy()
            opt = getattr(pyoptk, name)([p], lr=0.01)
            for g in grads:
                opt.step([g])
            after = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
            assert before == after  # the step's own one-thread limit was undone
            results.append(p)
    np.testing.assert_array_equal(results[0], results[1])


# ----- 7. the smaller ones -------------------------------------------------------------------

def test_set_num_threads_is_bounded():
    saved = pyoptk.get_num_threads()
    with pytest.raises(ValueError, match="n must be <="):
        pyoptk.set_num_threads(5000)
    assert pyoptk.get_num_threads() == saved
    assert _core.max_threads() >= 256


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_optimizer_copies_after_steps_resume_bit_identically(how):
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(17), rng.standard_normal((3, 5))]
    grads = [[rng.standard_normal(p.shape) for p in params] for _ in range(6)]
    opt = pyoptk.AdamW(params, lr=0.01, weight_decay=0.1)
    for gs in grads[:3]:
        opt.step(gs)
    twin = pickle.loads(pickle.dumps(opt)) if how == "pickle" else copy.deepcopy(opt)
    twin_params = [p for g in twin.param_groups for p in g["params"]]
    assert all(t is not p for t, p in zip(twin_params, params))
    for gs in grads[3:]:
        opt.step(gs)
        twin.step(gs)
    for a, b in zip(params, twin_params):
        np.testing.assert_array_equal(a, b)
    assert twin.state[twin_params[0]]["step"] == 6
    threading.Thread(target=lambda: twin.step(grads[0])).start()  # the copy has a working lock


def test_masked_arrays_are_refused():
    m = np.ma.array(np.zeros(3, np.float32), mask=[0, 1, 0])
    with pytest.raises(TypeError, match="param 0 .*is a numpy.ma.MaskedArray"):
        pyoptk.SGD([m], lr=1.0)
    p = np.zeros(3, np.float32)
    opt = pyoptk.SGD([p], lr=1.0)
    g = np.ma.array(np.ones(3, np.float32), mask=[0, 1, 0])
    with pytest.raises(TypeError, match="param 0 grad is a numpy.ma.MaskedArray"):
        opt.step([g])
    opt.step([np.ones(3, np.float32)])
    with pytest.raises(TypeError, match="param 0 grad is a numpy.ma.MaskedArray"):  # the planned path
        opt.step([g])
    np.testing.assert_array_equal(p, -1.0)
    with pytest.raises(TypeError, match="MaskedArray"):
        _core.sum_squares([np.ma.array(np.ones(3))])


def _adam_checkpoint():
    p = np.zeros(4)
    opt = pyoptk.Adam([p], lr=0.1)
    opt.step([np.ones(4)])
    return p, opt


@pytest.mark.parametrize("edit, error, message", [
    (lambda sd: sd["state"][0].update(step="5"), TypeError, "'step' must be a whole number"),
    (lambda sd: sd["state"][0].update(step=True), TypeError, "'step' must be a whole number"),
    (lambda sd: sd["state"][0].update(step=2**70), ValueError, "'step' must be a non-negative whole number"),
    (lambda sd: sd["state"][0].update(step=-1), ValueError, "'step' must be a non-negative whole number"),
    (lambda sd: sd["state"][0].update(step=np.array([3])), TypeError, "'step' must be a whole number"),
    (lambda sd: sd["param_groups"][0].update(lr=10**400), ValueError, "Invalid learning rate"),
    (lambda sd: sd["param_groups"][0].update(lr="0.1"), ValueError, "Invalid learning rate"),
    (lambda sd: sd.update(state=[1, 2]), ValueError, "must be a dict of per-param dicts"),
    (lambda sd: sd["state"].update({0: 5}), ValueError, "must be a dict of per-param dicts"),
    (lambda sd: sd.update(param_groups=[{"lr": 0.1}]), ValueError, "each with a 'params' list"),
    (lambda sd: sd.update(param_groups=5), ValueError, "must be a list of dicts"),
    (lambda sd: sd["param_groups"][0].update(params=["a"]), ValueError, "params must be distinct ints"),
])
def test_load_state_dict_validates_values_and_structure(edit, error, message):
    p, opt = _adam_checkpoint()
    sd = copy.deepcopy(opt.state_dict())
    edit(sd)
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(error, match=message):
        opt.load_state_dict(sd)
    after = opt.state_dict()
    assert after["state"][0]["step"] == before["state"][0]["step"] == 1
    np.testing.assert_array_equal(after["state"][0]["exp_avg"], before["state"][0]["exp_avg"])
    assert after["param_groups"] == before["param_groups"]


@pytest.mark.parametrize("cls, key, value, error", [
    ("NAdam", "mu_product", -0.5, ValueError),
    ("NAdam", "mu_product", float("inf"), ValueError),
    ("NAdam", "mu_product", "0.9", TypeError),
    ("ASGD", "eta", float("nan"), ValueError),
    ("ASGD", "mu", 2.0, ValueError),
])
def test_load_state_dict_validates_scalar_state(cls, key, value, error):
    p = np.zeros(3)
    opt = getattr(pyoptk, cls)([p])
    opt.step([np.ones(3)])
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0][key] = value
    saved = opt.state[p][key]
    with pytest.raises(error, match=f"'{key}'"):
        opt.load_state_dict(sd)
    assert opt.state[p][key] == saved


@pytest.mark.parametrize("value, error", [(-1, ValueError), ("3", TypeError), (2.5, ValueError), (True, TypeError)])
def test_lbfgs_counts_are_validated_on_load(value, error):
    x = np.array([1.0, 2.0])
    opt = pyoptk.LBFGS([x], max_iter=2)
    opt.step(lambda: (float(x @ x), [2 * x]))
    sd = copy.deepcopy(opt.state_dict())
    n_iter = sd["state"][0]["n_iter"]
    sd["state"][0]["n_iter"] = value
    with pytest.raises(error, match="'n_iter'"):
        opt.load_state_dict(sd)
    assert opt.state[x]["n_iter"] == n_iter > 0


def test_averaged_params_n_averaged_is_validated():
    a = np.zeros(3)
    avg = pyoptk.swa_utils.AveragedParams([a])
    avg.update()
    sd = copy.deepcopy(avg.state_dict())
    for value, error in (("3", TypeError), (1.5, ValueError), (-2, ValueError)):
        with pytest.raises(error, match="n_averaged"):
            avg.load_state_dict(dict(sd, n_averaged=value))
    assert avg.n_averaged == 1


@pytest.mark.parametrize("steps, error", [(["3"], TypeError), ([1.5], ValueError), ([-1], ValueError),
                                          ([True], TypeError)])
def test_functional_state_steps_are_validated(steps, error):
    p, g, m, v = np.zeros(4), np.ones(4), np.zeros(4), np.zeros(4)
    with pytest.raises(error, match=r"state_steps\[0\]"):
        adam_fn([p], [g], [m], [v], [], list(steps), amsgrad=False, beta1=0.9, beta2=0.999, lr=0.1,
                weight_decay=0.0, eps=1e-8, maximize=False)
    with pytest.raises(error, match=r"state_steps\[0\]"):
        nadam_fn([p], [g], [m], [v], [1.0], list(steps), beta1=0.9, beta2=0.999, lr=0.1, weight_decay=0.0,
                 momentum_decay=4e-3, eps=1e-8)
    np.testing.assert_array_equal(p, 0)
    np.testing.assert_array_equal(m, 0)
    # whole floats and 0-d arrays (torch's step tensors made arrays) are counts
    steps = [np.array(2.0)]
    adam_fn([p], [g], [m], [v], [], steps, amsgrad=False, beta1=0.9, beta2=0.999, lr=0.1, weight_decay=0.0,
            eps=1e-8, maximize=False)
    assert steps == [3]
    sgd_fn([p], [g], [None], momentum=0.0, lr=1.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False)


def test_pybind11_is_pinned_to_a_known_good_range():
    import pathlib
    import tomllib

    pyproject = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"
    requires = tomllib.loads(pyproject.read_text())["build-system"]["requires"]
    assert any(r.replace(" ", "").startswith("pybind11>=2.12,<3.1") for r in requires), requires
