"""pyoptk.jax with optax's combinators (chain, masked, inject_hyperparams, MultiSteps,
apply_if_finite), checkpoints (NumPy state_dict both ways, a tree round trip through NumPy,
flax.serialization where installed) and a plain-JAX MLP trained end to end under jit with donation."""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402

import pyoptk  # noqa: E402
import pyoptk.jax as pj  # noqa: E402
from test_jax import grads_seq, max_diff, optax_run, tree  # noqa: E402


def run(tx, params, grads, jit=False):
    state = tx.init(params)

    def step(params, state, g):
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    for g in grads:
        params, state = step(params, state, g)
    return params, state


def test_chain():
    params, grads = tree(), grads_seq(tree(), 10)
    ours = optax.chain(optax.clip_by_global_norm(1.0), pj.adam(1e-2))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    assert max_diff(run(ours, params, grads, jit=True)[0], run(theirs, params, grads)[0]) <= 4e-6


def test_masked_steps_only_the_masked_leaves():
    params, grads = tree(), grads_seq(tree(), 10)
    mask = {"w": True, "b": False, "s": [True]}
    ours = optax.chain(optax.masked(pj.adamw(1e-2, weight_decay=0.1), mask), optax.masked(optax.sgd(0.1), {
        "w": False, "b": True, "s": [False]}))
    theirs = optax.chain(optax.masked(optax.adamw(1e-2, weight_decay=0.1), mask), optax.masked(optax.sgd(0.1), {
        "w": False, "b": True, "s": [False]}))
    assert max_diff(run(ours, params, grads, jit=True)[0], run(theirs, params, grads)[0]) <= 4e-6


def test_inject_hyperparams_changes_take_effect_without_recompiling():
    params, grads = tree(), grads_seq(tree(), 6)
    ours = optax.inject_hyperparams(pj.adamw)(learning_rate=1e-2, weight_decay=0.1)
    theirs = optax.inject_hyperparams(optax.adamw)(learning_rate=1e-2, weight_decay=0.1)

    def go(tx):
        state = tx.init(params)
        p = params
        step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p)))
        for i, g in enumerate(grads):
            if i == 3:  # a new learning rate and decay, mid-run
                state.hyperparams["learning_rate"] = jnp.asarray(3e-2)
                state.hyperparams["weight_decay"] = jnp.asarray(0.0)
            p, state = step(p, state, g)
        return p, step

    mine, step = go(ours)
    want, optax_step = go(theirs)
    assert max_diff(mine, want) <= 4e-6
    assert step._cache_size() == optax_step._cache_size()  # (the replaced hyperparams' weak type: 2 each)


def test_multi_steps_accumulates_then_steps():
    params, grads = tree(), grads_seq(tree(), 6)
    ours = optax.MultiSteps(pj.adam(1e-2), every_k_schedule=3)
    theirs = optax.MultiSteps(optax.adam(1e-2), every_k_schedule=3)
    assert max_diff(run(ours, params, grads, jit=True)[0], run(theirs, params, grads)[0]) <= 4e-6


def test_apply_if_finite_skips_a_nonfinite_step():
    params, grads = tree(), grads_seq(tree(), 5)
    grads[2] = jax.tree.map(lambda g: g.at[0].set(jnp.nan), grads[2])
    ours = optax.apply_if_finite(pj.adam(1e-2), max_consecutive_errors=3)
    theirs = optax.apply_if_finite(optax.adam(1e-2), max_consecutive_errors=3)
    mine, state = run(ours, params, grads, jit=True)
    assert int(state.notfinite_count) == 0 and int(state.total_notfinite) == 1
    assert int(state.inner_state.count) == 4  # the NaN step left the inner state as it was
    assert max_diff(mine, run(theirs, params, grads)[0]) <= 4e-6


def test_schedules_match_optax():
    params, grads = tree(), grads_seq(tree(), 12)
    sched = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 3, 12)
    assert max_diff(optax_run(pj.adamw(sched), params, grads, True),
                    optax_run(optax.adamw(sched), params, grads, False)) <= 4e-6


# ----- checkpoints ------------------------------------------------------------------------
@pytest.mark.parametrize("make,cls,kwargs", [
    (lambda: pj.nadam(1e-2), pyoptk.NAdam, dict(lr=1e-2, momentum_decay=4e-3)),
    (lambda: pj.adamw(1e-2, weight_decay=0.1, master_weights=True), pyoptk.AdamW,
     dict(lr=1e-2, weight_decay=0.1, master_weights=True)),
])
def test_state_dict_both_ways(make, cls, kwargs):
    dtype = jnp.bfloat16 if kwargs.get("master_weights") else jnp.float32
    params = tree(dtype)
    grads = grads_seq(params, 6)
    tx = make()
    state = tx.init(params)
    for g in grads[:3]:
        params, state = tx.step(params, g, state)
    # to NumPy: the NumPy API resumes from the exported state where the JAX step goes on
    leaves = [np.array(p) for p in jax.tree.leaves(params)]
    opt = cls(leaves, **kwargs)
    opt.load_state_dict(pj.to_state_dict(tx, state))
    for g in grads[3:]:
        opt.step([np.array(x) for x in jax.tree.leaves(g)])
    jparams, jstate = params, state
    for g in grads[3:]:
        jparams, jstate = tx.step(jparams, g, jstate)
    for got, want in zip(jax.tree.leaves(jparams), leaves):
        np.testing.assert_array_equal(np.array(got), want)
    # and back: a state from the NumPy optimizer's state_dict steps on as the NumPy API does
    back = pj.from_state_dict(tx, jparams, opt.state_dict())
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(jstate)):
        np.testing.assert_array_equal(np.array(a), np.array(b))


def test_state_round_trips_through_numpy_and_serialization():
    params = tree()
    tx = pj.nadam(1e-2)
    state = tx.init(params)
    for g in grads_seq(params, 3):
        params, state = tx.step(params, g, state)
    leaves, treedef = jax.tree.flatten(state)
    saved = [np.array(x) for x in leaves]  # e.g. np.savez
    restored = jax.tree.unflatten(treedef, [jnp.asarray(x) for x in saved])
    g = grads_seq(params, 1, seed=9)[0]
    a, b = tx.step(params, g, state), tx.step(params, g, restored)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.array(x), np.array(y))
    serialization = pytest.importorskip("flax.serialization")
    again = serialization.from_bytes(tx.init(params), serialization.to_bytes(state))
    for x, y in zip(jax.tree.leaves(again), jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.array(x), np.array(y))


# ----- end to end -------------------------------------------------------------------------
def test_mlp_trains_end_to_end_in_place():
    key = jax.random.PRNGKey(0)
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (256, 8))
    y = jnp.sin(x @ jax.random.normal(k2, (8, 1)))
    params = {"w1": jax.random.normal(k3, (8, 32)) * 0.3, "b1": jnp.zeros(32),
              "w2": jax.random.normal(k1, (32, 1)) * 0.3, "b2": jnp.zeros(1)}

    def loss(p):
        h = jnp.tanh(x @ p["w1"] + p["b1"])
        return jnp.mean((h @ p["w2"] + p["b2"] - y) ** 2)

    tx = pj.adamw(optax.cosine_decay_schedule(3e-2, 300), weight_decay=1e-4)
    state = tx.init(params)

    @jax.jit
    def train_step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        params, state = tx.step(params, grads, state)
        return params, state, value

    train_step = jax.jit(train_step, donate_argnums=(0, 1))
    first = float(loss(params))
    for _ in range(300):
        params, state, value = train_step(params, state)
    assert float(loss(params)) < first / 10


def test_sgd_state_dict_needs_the_count_back():
    """SGD's state keeps no step count, and step 1 creates the momentum buffer (b = g): resuming
    at count 0 would start it over, so from_state_dict asks for the count."""
    params = tree()
    grads = grads_seq(params, 4)
    tx = pj.sgd(0.05, momentum=0.9)
    state = tx.init(params)
    for g in grads[:2]:
        params, state = tx.step(params, g, state)
    sd = pj.to_state_dict(tx, state)
    with pytest.raises(ValueError, match="pass count="):
        pj.from_state_dict(tx, params, sd)
    back = pj.from_state_dict(tx, params, sd, count=2)
    a, b = params, params
    for g in grads[2:]:
        a, state = tx.step(a, g, state)
        b, back = tx.step(b, g, back)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.array(x), np.array(y))
