"""pyoptk.jax's schedule-free: the params-returning step bit for bit against pyoptk's NumPy API
(ScheduleFreeAdamW / ScheduleFreeSGD, warmup, weight decay, r; float32, and float64 under x64),
jit == eager, eval params bit for bit against the NumPy API's eval(), trajectories against
optax.contrib's schedule-free, state_dict both ways, composition (chain, inject_hyperparams, an lr
schedule), in place under donation, and refusals (16-bit params, another state given to eval,
state_dtype)."""
import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402

import pyoptk  # noqa: E402
import pyoptk.jax as pj  # noqa: E402
from test_jax import grads_seq, max_diff, optax_run, pointers, tree  # noqa: E402

STEPS = 20
CASES = {
    "adamw": lambda: pj.schedule_free_adamw(1e-2, warmup_steps=5, weight_decay=0.1, r=0.5, weight_lr_power=1.5),
    "adamw_defaults": lambda: pj.schedule_free_adamw(),
    "sgd": lambda: pj.schedule_free_sgd(0.1, warmup_steps=5, b1=0.8, weight_decay=0.01),
    "sgd_defaults": lambda: pj.schedule_free_sgd(0.05),
}


def leaves_of(t):
    return [np.array(x) for x in jax.tree.leaves(t)]


def run_both(make, jit=False, steps=STEPS):
    """The JAX step and the NumPy API's class over the same leaves; then both evaluation points."""
    params = tree()
    tx = make()
    leaves = leaves_of(params)
    opt = tx.fused.cls(leaves, **tx.fused.kwargs)
    step = jax.jit(tx.step) if jit else tx.step
    state = tx.init(params)
    for g in grads_seq(params, steps):
        params, state = step(params, g, state)
        opt.step(leaves_of(g))
    return tx, params, state, leaves, opt


def assert_bits(got, want):
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("name", sorted(CASES))
def test_step_and_eval_bit_for_bit_with_numpy_api(name):
    tx, params, state, leaves, opt = run_both(CASES[name])
    assert_bits(leaves_of(params), leaves)
    assert int(state.count) == opt.param_groups[0]["k"] == STEPS
    sd = pj.to_state_dict(tx, state)
    want = opt.state_dict()
    for i, entry in want["state"].items():
        assert sorted(sd["state"][i]) == sorted(entry)
        for key, value in entry.items():
            np.testing.assert_array_equal(sd["state"][i][key], value, err_msg=key)
    assert sd["param_groups"] == want["param_groups"]  # the schedule (k, lr_max, weight_sum...) in the group
    x = pj.schedule_free_eval_params(state, params)
    opt.eval()
    assert_bits(leaves_of(x), leaves)
    assert_bits(leaves_of(jax.jit(pj.schedule_free_eval_params)(state, params)), leaves)
    opt.train()


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_jit_equals_eager(name):
    _, eager, es, _, _ = run_both(CASES[name])
    _, jitted, js, _, _ = run_both(CASES[name], jit=True)
    for a, b in zip(jax.tree.leaves((eager, es)), jax.tree.leaves((jitted, js))):
        np.testing.assert_array_equal(np.array(a), np.array(b))


FLOAT64 = """
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, numpy as np, pyoptk.jax as pj
rng = np.random.default_rng(0)
params = {"w": jnp.asarray(rng.standard_normal((5, 7))), "b": jnp.asarray(rng.standard_normal(37))}
for tx in (pj.schedule_free_adamw(1e-2, warmup_steps=3, weight_decay=0.1), pj.schedule_free_sgd(0.1, warmup_steps=3)):
    leaves = [np.array(p) for p in jax.tree.leaves(params)]
    opt, state, p = tx.fused.cls(leaves, **tx.fused.kwargs), tx.init(params), params
    for _ in range(10):
        g = jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape)), p)
        p, state = jax.jit(tx.step)(p, g, state)
        opt.step([np.array(x) for x in jax.tree.leaves(g)])
    assert all(a.dtype == np.float64 and np.array_equal(np.array(a), b) for a, b in zip(jax.tree.leaves(p), leaves))
    x = jax.jit(pj.schedule_free_eval_params)(state, p)
    opt.eval()
    assert all(np.array_equal(np.array(a), b) for a, b in zip(jax.tree.leaves(x), leaves))
print("ok")
"""


def test_float64_bit_for_bit_with_x64(tmp_path):
    """float64 params (JAX's x64, switched on in a child process: it is global): the step and
    eval in double, bit for bit the NumPy API's."""
    out = subprocess.run([sys.executable, "-c", FLOAT64], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_eval_before_any_step_is_the_params():
    params = tree()
    tx = pj.schedule_free_adamw(1e-2)
    assert_bits(leaves_of(pj.schedule_free_eval_params(tx.init(params), params)), leaves_of(params))


def test_eval_leaves_the_params_and_state_alone():
    tx, params, state, _, _ = run_both(CASES["adamw"], steps=3)
    before = leaves_of((params, state))
    pj.schedule_free_eval_params(state, params)
    jax.jit(pj.schedule_free_eval_params)(state, params)
    assert_bits(leaves_of((params, state)), before)


def test_donated_step_runs_in_place():
    params = tree()
    tx = pj.schedule_free_adamw(1e-2)
    state = tx.init(params)
    step = jax.jit(tx.step, donate_argnums=(0, 2))
    grads = grads_seq(params, 1)[0]
    memory = step.lower(params, grads, state).compile().memory_analysis()
    assert memory.temp_size_in_bytes <= 1024, memory
    params, state = step(params, grads, state)
    before = pointers(params, state.states)
    for _ in range(3):
        params, state = step(params, grads, state)
        assert pointers(params, state.states) == before


# ----- against optax.contrib's schedule-free ---------------------------------------------
# optax wraps a base optimizer (AdamW: scale_by_rms with bias correction, eps outside the root,
# add_decayed_weights after the normalisation, as the reference) and forms y from x and z as the
# paper writes it, where the kernel folds that into y = lerp(y, z, c) + lr (b1 (1 - c) - 1) g: the
# same update; optax keeps b1, weight_sum, max_lr and c in float32 (here double): without warmup
# the trajectories agree to float32 rounding (1e-6 over 20 steps). With warmup they do not by
# formula: optax's base optimizer evaluates the warmup schedule at its own count, from 0, so its z
# step lags the reference's lr (and the weights) by one step; with the base's schedule shifted by
# one they agree again. optax has no r (r = 0) and no SGD weight decay default (None = 0).
TOL = 1e-6


@pytest.mark.parametrize("ours,theirs", [
    (lambda: pj.schedule_free_adamw(1e-2, weight_decay=0.1), lambda: optax.contrib.schedule_free_adamw(1e-2, weight_decay=0.1)),
    (lambda: pj.schedule_free_adamw(), lambda: optax.contrib.schedule_free_adamw()),
    (lambda: pj.schedule_free_sgd(0.1, weight_decay=0.01), lambda: optax.contrib.schedule_free_sgd(0.1, weight_decay=0.01)),
], ids=["adamw", "adamw_defaults", "sgd"])
def test_trajectory_and_eval_against_optax(ours, theirs):
    """(test_jax.py's OPTAX table checks the trajectories of the first and last too, both forms.)"""
    params = tree()
    grads = grads_seq(params, STEPS)
    mine, want = ours(), theirs()
    a, b = mine.init(params), want.init(params)
    p, q = params, params
    for g in grads:
        p, a = mine.step(p, g, a)
        updates, b = want.update(g, b, q)
        q = optax.apply_updates(q, updates)
    assert max_diff(p, q) <= TOL
    # x = (y - (1 - b1) z) / b1 in optax: its rounding scaled by 1/b1 (lerp here)
    assert max_diff(pj.schedule_free_eval_params(a, p), optax.contrib.schedule_free_eval_params(b, q)) <= 2 * TOL


def test_warmup_differs_from_optax_by_one_step_of_the_base_schedule():
    params = tree()
    grads = grads_seq(params, STEPS)
    ours = pj.schedule_free_adamw(1e-2, warmup_steps=5, weight_decay=0.1)
    sched = optax.warmup_constant_schedule(0.0, 1e-2, 5)

    def optax_with(base_lr):
        return optax.contrib.schedule_free(optax.chain(
            optax.scale_by_rms(decay=0.999, eps=1e-8, eps_in_sqrt=False, bias_correction=True),
            optax.add_decayed_weights(0.1), optax.scale_by_learning_rate(base_lr)), sched, b1=0.9)

    mine = optax_run(ours, params, grads, fused=True)
    assert max_diff(mine, optax_run(optax.contrib.schedule_free_adamw(1e-2, warmup_steps=5, weight_decay=0.1),
                                    params, grads, fused=False)) > 1e-3
    assert max_diff(mine, optax_run(optax_with(lambda c: sched(c + 1)), params, grads, fused=False)) <= TOL


# ----- checkpoints ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_state_dict_both_ways(name):
    params = tree()
    grads = grads_seq(params, 8)
    tx = CASES[name]()
    state = tx.init(params)
    for g in grads[:4]:
        params, state = tx.step(params, g, state)
    # to NumPy: the NumPy API resumes from the exported state where the JAX step goes on
    leaves = leaves_of(params)
    opt = tx.fused.cls(leaves, **tx.fused.kwargs)
    opt.load_state_dict(pj.to_state_dict(tx, state))
    for g in grads[4:]:
        opt.step(leaves_of(g))
        params, state = tx.step(params, g, state)
    assert_bits(leaves_of(params), leaves)
    # and back: a state from the NumPy optimizer's state_dict is the JAX state, bit for bit
    back = pj.from_state_dict(tx, params, opt.state_dict())
    assert isinstance(back, pj.ScheduleFreeState)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    opt.eval()  # its params hold x now: refused, saying what to do
    with pytest.raises(ValueError, match="eval mode"):
        pj.from_state_dict(tx, params, opt.state_dict())


def test_state_serializes():
    params = tree()
    tx = pj.schedule_free_sgd(0.1)
    state = tx.init(params)
    params, state = tx.step(params, grads_seq(params, 1)[0], state)
    serialization = pytest.importorskip("flax.serialization")
    again = serialization.from_bytes(tx.init(params), serialization.to_bytes(state))
    for x, y in zip(jax.tree.leaves(again), jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.array(x), np.array(y))


# ----- composition ------------------------------------------------------------------------
def test_chain_and_an_lr_schedule():
    """A schedule as learning_rate is the group's lr at each step (as an lr scheduler writing the
    NumPy API's group): the warmup multiplies it and lr_max is the running max of the product,
    so a decaying schedule keeps the averaging weights at the peak's."""
    params = tree()
    grads = grads_seq(params, 12)
    sched = optax.linear_schedule(2e-2, 5e-3, 12)
    tx = optax.chain(optax.clip_by_global_norm(1.0), pj.schedule_free_adamw(sched, warmup_steps=3))
    state = tx.init(params)
    leaves = leaves_of(params)
    opt = pyoptk.ScheduleFreeAdamW(leaves, lr=2e-2, warmup_steps=3)
    step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p)))
    for t, g in enumerate(grads):
        clipped, _ = optax.clip_by_global_norm(1.0).update(g, optax.EmptyState())
        opt.param_groups[0]["lr"] = float(np.float32(sched(t)))  # the kernel's dynamic lr is float32
        opt.step(leaves_of(clipped))
        params, state = step(params, state, g)
    assert max_diff(params, jax.tree.unflatten(jax.tree.structure(params), leaves)) <= 1e-6
    inner = state[1]
    peak = max(float(sched(t)) * min(1.0, (t + 1) / 3) for t in range(12))  # at step 3, the warmup's end
    assert np.asarray(inner.scalars).view(np.float64)[0] == pytest.approx(opt.param_groups[0]["lr_max"], rel=1e-6)
    assert opt.param_groups[0]["lr_max"] == pytest.approx(peak, rel=1e-6)
    opt.eval()
    assert max_diff(pj.schedule_free_eval_params(inner, params), jax.tree.unflatten(jax.tree.structure(params), leaves)) <= 1e-6


def test_inject_hyperparams_b1_as_an_array():
    """inject_hyperparams makes b1 an array: the step reads it as float32 (as every injected
    hyper-parameter) and eval's 1 - 1/b1 is computed in float32; eval takes state.inner_state."""
    params = tree()
    grads = grads_seq(params, 10)
    tx = optax.inject_hyperparams(pj.schedule_free_adamw)(learning_rate=1e-2, weight_decay=0.1)
    want = optax.contrib.schedule_free_adamw(1e-2, weight_decay=0.1)
    state, ws = tx.init(params), want.init(params)
    step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p)))
    p, q = params, params
    for g in grads:
        p, state = step(p, state, g)
        u, ws = want.update(g, ws, q)
        q = optax.apply_updates(q, u)
    assert max_diff(p, q) <= 2 * TOL
    with pytest.raises(TypeError, match="inner_state"):
        pj.schedule_free_eval_params(state, p)
    x = jax.jit(pj.schedule_free_eval_params)(state.inner_state, p)
    assert max_diff(x, optax.contrib.schedule_free_eval_params(ws, q)) <= 2 * TOL


def test_float32_b1_widens_to_its_float64_bits():
    from pyoptk.jax._schedule_free import _f64_bits

    for v in (0.9, 0.5, -0.1111111, 1.0, 0.0, -3.5e-30, 123456.789):
        want = np.float64(np.float32(v)).reshape(1).view(np.uint32)
        np.testing.assert_array_equal(np.array(jax.jit(_f64_bits)(jnp.asarray(v, jnp.float32))), want)
    np.testing.assert_array_equal(np.array(_f64_bits(0.9)), np.float64(0.9).reshape(1).view(np.uint32))


def test_mlp_trains_and_evaluates():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(k1, (256, 8))
    y = jnp.sin(x @ jax.random.normal(k2, (8, 1)))
    params = {"w1": jax.random.normal(k3, (8, 32)) * 0.3, "b1": jnp.zeros(32),
              "w2": jax.random.normal(k1, (32, 1)) * 0.3, "b2": jnp.zeros(1)}

    def loss(p):
        return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"] - y) ** 2)

    tx = pj.schedule_free_adamw(2e-2, warmup_steps=20)
    state = tx.init(params)

    def train_step(params, state):
        grads = jax.grad(loss)(params)
        return tx.step(params, grads, state)

    train_step = jax.jit(train_step, donate_argnums=(0, 1))
    first = float(loss(params))
    for _ in range(300):
        params, state = train_step(params, state)
    assert float(loss(pj.schedule_free_eval_params(state, params))) < first / 10


# ----- refusals ---------------------------------------------------------------------------
def test_refusals():
    with pytest.raises(TypeError, match="float32 or float64, got bfloat16"):
        pj.schedule_free_adamw(1e-2).init(tree(jnp.bfloat16))
    with pytest.raises(TypeError, match="float32 or float64, got float16"):
        pj.schedule_free_sgd(0.1).init(tree(jnp.float16))
    with pytest.raises(ValueError, match="state_dtype is not supported"):
        pj.schedule_free_adamw(1e-2, state_dtype=jnp.bfloat16)
    with pytest.raises(ValueError, match="Invalid beta"):
        pj.schedule_free_adamw(1e-2, b1=1.0)
    with pytest.raises(ValueError, match="0 < momentum < 1|Invalid momentum"):
        pj.schedule_free_sgd(0.1, b1=0.0)
    with pytest.raises(ValueError, match="schedule_free_adamw"):
        pj.from_class("ScheduleFreeAdamW", 1e-2)
    params = tree()
    adamw = pj.adamw(1e-2)
    with pytest.raises(TypeError, match="needs the ScheduleFreeState"):
        pj.schedule_free_eval_params(adamw.init(params), params)  # another algorithm's state
    tx = pj.schedule_free_adamw(1e-2)
    with pytest.raises(TypeError, match="ScheduleFreeState its init returned"):
        tx.step(params, params, adamw.init(params))
