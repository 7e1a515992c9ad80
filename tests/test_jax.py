"""pyoptk.jax: the params-returning step bit for bit against the NumPy API (every factory, the
registry's other element-wise algorithms, 16-bit params with master weights / stochastic
rounding), jit == eager, donation in place (pointers and XLA's temporary bytes), trajectories
against optax's own, errors. Composition and checkpoints: tests/test_jax_compose.py."""
import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402
import ml_dtypes  # noqa: E402

import pyoptk.jax as pj  # noqa: E402

STEPS = 6


def tree(dtype=jnp.float32, seed=0):
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.standard_normal((5, 7)), dtype), "b": jnp.asarray(rng.standard_normal(37), dtype),
            "s": [jnp.asarray(rng.standard_normal(3), dtype)]}


def grads_seq(params, n, seed=1):
    rng = np.random.default_rng(seed)
    return [jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params) for _ in range(n)]


FACTORIES = {
    "sgd": lambda **k: pj.sgd(0.05, **k),
    "sgd_momentum": lambda **k: pj.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=0.01, **k),
    "adam": lambda **k: pj.adam(1e-2, amsgrad=True, **k),
    "adamw": lambda **k: pj.adamw(1e-2, weight_decay=0.1, **k),
    "adagrad": lambda **k: pj.adagrad(1e-2, **k),
    "rmsprop": lambda **k: pj.rmsprop(1e-2, centered=True, momentum=0.5, **k),
    "adamax": lambda **k: pj.adamax(1e-2, **k),
    "nadam": lambda **k: pj.nadam(1e-2, **k),
    "radam": lambda **k: pj.radam(1e-2, **k),
    "lion": lambda **k: pj.lion(1e-3, **k),
    "adan": lambda **k: pj.adan(1e-2, weight_decay=0.02, **k),
    "adopt": lambda **k: pj.adopt(1e-2, **k),
    "ademamix": lambda **k: pj.ademamix(1e-2, t_alpha=10, t_beta3=10, **k),
    "adadelta": lambda **k: pj.from_class("Adadelta", 1.0, rho=0.9, **k),
    "rprop": lambda **k: pj.from_class("Rprop", 1e-2, **k),
    "asgd": lambda **k: pj.from_class("ASGD", 1e-2, **k),
    "schedule_free_adamw": lambda **k: pj.schedule_free_adamw(1e-2, warmup_steps=3, weight_decay=0.1, **k),
    "schedule_free_sgd": lambda **k: pj.schedule_free_sgd(0.1, warmup_steps=3, weight_decay=0.01, **k),
}


def numpy_twin(tx, leaves, precision):
    """The NumPy-API optimizer over ``leaves`` with the transformation's own group."""
    return tx.fused.cls(leaves, **tx.fused.kwargs, **precision)


def run_both(make, dtype, precision, jit=False, make_tree=tree):
    params = make_tree(dtype)
    tx = make(**precision)
    leaves = [np.array(p) for p in jax.tree.leaves(params)]
    opt = numpy_twin(tx, leaves, precision)
    step = jax.jit(tx.step) if jit else tx.step
    state = tx.init(params)
    for g in grads_seq(params, STEPS):
        params, state = step(params, g, state)
        opt.step([np.array(x) for x in jax.tree.leaves(g)])
    return params, state, leaves, opt


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_step_bit_for_bit_with_numpy_api(name):
    params, state, leaves, opt = run_both(FACTORIES[name], jnp.float32, {})
    for got, want in zip(jax.tree.leaves(params), leaves):
        np.testing.assert_array_equal(np.array(got), want)
    sd = pj.to_state_dict(FACTORIES[name](), state)
    for i, want in opt.state_dict()["state"].items():
        for key, value in want.items():
            np.testing.assert_array_equal(np.asarray(sd["state"][i][key]), np.asarray(value), err_msg=key)


@pytest.mark.parametrize("name", ["adamw", "sgd_momentum", "lion", "adan"])
@pytest.mark.parametrize("precision", [dict(master_weights=True), dict(stochastic_rounding=True, seed=7),
                                       dict(state_dtype="bfloat16", stochastic_rounding=True)],
                         ids=["master", "sr", "bf16_state_sr"])
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_bit_for_bit_and_jit_equals_eager(name, precision, dtype):
    params, state, leaves, _ = run_both(FACTORIES[name], dtype, precision)
    jparams, jstate, _, _ = run_both(FACTORIES[name], dtype, precision, jit=True)
    for got, jgot, want in zip(jax.tree.leaves(params), jax.tree.leaves(jparams), leaves):
        assert got.dtype == dtype
        np.testing.assert_array_equal(np.array(got).view(np.uint16), want.view(np.uint16))
        np.testing.assert_array_equal(np.array(jgot).view(np.uint16), want.view(np.uint16))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(jstate)):
        np.testing.assert_array_equal(np.array(a), np.array(b))


@pytest.mark.parametrize("name", ["adam", "nadam", "sgd_momentum", "adan"])
def test_jit_equals_eager(name):
    eager, es, _, _ = run_both(FACTORIES[name], jnp.float32, {})
    jitted, js, _, _ = run_both(FACTORIES[name], jnp.float32, {}, jit=True)
    for a, b in zip(jax.tree.leaves((eager, es)), jax.tree.leaves((jitted, js))):
        np.testing.assert_array_equal(np.array(a), np.array(b))


@pytest.mark.parametrize("case", ["grad is the param", "grad is a state", "one array, two params"])
def test_one_array_in_two_places_steps_as_under_jit(case):
    """Values, not buffers: a grad that is the param's own array (or a state's), or one array given
    as two params, steps eagerly as it does under jit (XLA copies what it must)."""
    tx = pj.adamw(0.1, weight_decay=0.1)
    a = jnp.linspace(-1.0, 1.0, 37, dtype=jnp.float32)
    if case == "one array, two params":
        params = {"p": a, "q": a}
        grads = {"p": a * 0.5, "q": a * 0.25}
    else:
        params = {"p": a}
    first = {k: v * 0.3 for k, v in params.items()}
    state = tx.init(params)
    params, state = tx.step(params, first, state)  # non-zero states
    if case == "one array, two params":
        params = {"p": params["p"], "q": params["p"]}  # equal after the first step: one array again
    if case == "grad is the param":
        grads = {"p": params["p"]}
    elif case == "grad is a state":
        grads = {"p": state.states["exp_avg"]["p"]}
    eager = tx.step(params, grads, state)
    jitted = jax.jit(tx.step)(params, grads, state)
    for x, y in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_array_equal(np.array(x), np.array(y))
    # and the NumPy API on separate copies of the same values
    start = {"p": a, "q": a} if case == "one array, two params" else {"p": a}
    twin = numpy_twin(tx, [np.array(v) for v in start.values()], {})
    twin.step([np.array(first[k]) for k in start])
    twin.step([np.array(g) for g in grads.values()])
    for mine, theirs in zip(twin.param_groups[0]["params"], eager[0].values()):
        np.testing.assert_array_equal(mine, np.array(theirs))


@pytest.mark.parametrize("name,dtype,precision", [("adamw", jnp.float32, {}), ("sgd_momentum", jnp.float32, {}),
                                                   ("nadam", jnp.float32, {}),
                                                   ("lion", jnp.bfloat16, dict(master_weights=True))])
def test_donated_steps_keep_their_plan_bit_for_bit(name, dtype, precision):
    """Donated, every step writes the same buffers: the handler keeps the plan it checked on the
    first call (and collapses buffers of 4 MiB and more into huge pages on the second); the
    params and state stay bit for bit the NumPy API's, step 1's fresh-state mode included."""
    rng = np.random.default_rng(3)
    params = {"big": jnp.asarray(rng.standard_normal(1 << 20), dtype), **tree(dtype)}
    tx = FACTORIES[name](**precision)
    leaves = [np.array(p) for p in jax.tree.leaves(params)]
    opt = numpy_twin(tx, leaves, precision)
    step = jax.jit(tx.step, donate_argnums=(0, 2))
    state = tx.init(params)
    grads = grads_seq(params, STEPS)
    grads[3] = grads[2]  # the same grad buffers twice in a row, too
    for g in grads:
        params, state = step(params, g, state)
        opt.step([np.array(x) for x in jax.tree.leaves(g)])
    for got, want in zip(jax.tree.leaves(params), leaves):
        np.testing.assert_array_equal(np.array(got).view(np.uint8), want.view(np.uint8))
    sd = pj.to_state_dict(tx, state)
    for i, want in opt.state_dict()["state"].items():
        for key, value in want.items():
            np.testing.assert_array_equal(np.asarray(sd["state"][i][key]), np.asarray(value), err_msg=key)


def pointers(*trees):
    return [x.unsafe_buffer_pointer() for x in jax.tree.leaves(trees)]


def test_donated_step_runs_in_place_and_allocates_nothing():
    rng = np.random.default_rng(0)
    params = {f"l{i}": jnp.asarray(rng.standard_normal(10_000), jnp.float32) for i in range(20)}
    tx = pj.adamw(1e-3)
    state = tx.init(params)
    step = jax.jit(tx.step, donate_argnums=(0, 2))
    grads = grads_seq(params, 1)[0]
    compiled = step.lower(params, grads, state).compile()
    memory = compiled.memory_analysis()
    param_bytes = 20 * 10_000 * 4
    # Nothing but the count's increment: XLA copies nothing into the donated buffers.
    assert memory.temp_size_in_bytes <= 1024, memory
    assert memory.output_size_in_bytes - memory.alias_size_in_bytes <= 1024, memory
    before = pointers(params, state.states)
    for _ in range(3):
        params, state = step(params, grads, state)
        assert pointers(params, state.states) == before
    # Not donated, the same step copies: the pointers differ (so the check above means something).
    copy_step = jax.jit(tx.step)
    new_params, new_state = copy_step(params, grads, state)
    assert pointers(new_params) != pointers(params)
    assert copy_step.lower(params, grads, state).compile().memory_analysis().output_size_in_bytes >= 3 * param_bytes


def test_one_custom_call_per_step_whole_tree():
    params = tree()
    tx = pj.adam(1e-3)
    text = jax.jit(tx.step).lower(params, grads_seq(params, 1)[0], tx.init(params)).as_text()
    assert text.count("pyoptk_step") == 1


def test_schedule_and_count_are_operands_no_recompile():
    params = tree()
    tx = pj.adam(optax.linear_schedule(1e-2, 0.0, 10))
    step = jax.jit(tx.step)
    state = tx.init(params)
    for g in grads_seq(params, 4):
        params, state = step(params, g, state)
    assert step._cache_size() == 1
    assert int(state.count) == 4


# ----- against optax's own ----------------------------------------------------------------
# 20 float32 steps on a 3-leaf tree; the tolerance is on the params' max abs difference (they
# move by 0.01-4). Equal formulas differ by float32 rounding only: the kernels compute bias
# corrections in double on the host and multiply where optax divides (~1e-6 after 20 steps).
# adagrad / adamax: eps placed as torch (outside the root / inside the max), optax elsewhere:
# with eps <= 1e-7 against sums >= 0.1 the difference is below float32 rounding. radam: the
# rectification term in double vs float32 (1e-5). lion: a sign that flips on rounding moves one
# element by 2 lr (bounded by 1e-5 here). adopt: optax's default clip bound count ** 0.25 counts
# from 0, the reference's step ** 0.25 from 1: compared against optax with (count + 1) ** 0.25.
OPTAX = {
    "sgd": (lambda: pj.sgd(0.05, momentum=0.9), lambda: optax.sgd(0.05, momentum=0.9), 1e-6),
    "sgd_nesterov": (lambda: pj.sgd(0.05, momentum=0.9, nesterov=True),
                     lambda: optax.sgd(0.05, momentum=0.9, nesterov=True), 2e-6),
    "adam": (lambda: pj.adam(1e-2), lambda: optax.adam(1e-2), 4e-6),
    "adamw": (lambda: pj.adamw(1e-2, weight_decay=0.1), lambda: optax.adamw(1e-2, weight_decay=0.1), 4e-6),
    "adagrad": (lambda: pj.adagrad(1e-2), lambda: optax.adagrad(1e-2), 1e-6),
    "rmsprop": (lambda: pj.rmsprop(1e-2), lambda: optax.rmsprop(1e-2, eps_in_sqrt=False), 1e-6),
    "adamax": (lambda: pj.adamax(1e-2), lambda: optax.adamax(1e-2), 1e-6),
    "radam": (lambda: pj.radam(1e-2), lambda: optax.radam(1e-2), 5e-5),
    "lion": (lambda: pj.lion(1e-3), lambda: optax.lion(1e-3), 1e-5),
    "adopt": (lambda: pj.adopt(1e-2), lambda: optax.contrib.adopt(1e-2, clip_value_fn=lambda c: (c + 1) ** 0.25), 1e-6),
    "ademamix": (lambda: pj.ademamix(1e-2), lambda: optax.contrib.ademamix(1e-2), 4e-6),
    # without warmup (optax's base optimizer counts its warmup a step later: test_jax_schedule_free.py)
    "schedule_free_adamw": (lambda: pj.schedule_free_adamw(1e-2, weight_decay=0.1),
                            lambda: optax.contrib.schedule_free_adamw(1e-2, weight_decay=0.1), 1e-6),
    "schedule_free_sgd": (lambda: pj.schedule_free_sgd(0.1, weight_decay=0.01),
                          lambda: optax.contrib.schedule_free_sgd(0.1, weight_decay=0.01), 1e-6),
}


def optax_run(tx, params, grads, fused):
    state = tx.init(params)
    for g in grads:
        if fused:
            params, state = tx.step(params, g, state)
        else:
            updates, state = tx.update(g, state, params)
            params = optax.apply_updates(params, updates)
    return params


def max_diff(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("name", sorted(OPTAX))
def test_trajectory_against_optax(name):
    ours, theirs, tol = OPTAX[name]
    params = tree()
    grads = grads_seq(params, 20)
    want = optax_run(theirs(), params, grads, fused=False)
    assert max_diff(optax_run(ours(), params, grads, fused=True), want) <= tol
    # optax's contract (update, then apply_updates) too: p + (p' - p) rounds once more.
    assert max_diff(optax_run(ours(), params, grads, fused=False), want) <= 2 * tol


def test_adan_and_nadam_differ_from_optax_by_formula():
    """optax.adan weights the grad difference by 1 - b2 where the authors' code (pyoptk) weights
    it by b2; optax.nadam is Adam with a Nesterov look-ahead where torch's NAdam (pyoptk) has
    Dozat's momentum schedule. Equal on adan's first step (the difference is 0 there), apart later."""
    params = tree()
    grads = grads_seq(params, 3)
    assert max_diff(optax_run(pj.adan(1e-2), params, grads[:1], True),
                    optax_run(optax.adan(1e-2, eps_root=0.0), params, grads[:1], False)) <= 1e-7
    assert max_diff(optax_run(pj.adan(1e-2), params, grads, True),
                    optax_run(optax.adan(1e-2, eps_root=0.0), params, grads, False)) > 1e-4


# ----- refusals ---------------------------------------------------------------------------
def test_refusals():
    params = tree()
    tx = pj.adam(1e-2)
    with pytest.raises(ValueError, match="needs params"):
        tx.update(grads_seq(params, 1)[0], tx.init(params))
    with pytest.raises(ValueError, match="eps_root"):
        pj.adam(1e-2, eps_root=1e-8)
    with pytest.raises(ValueError, match="eps_in_sqrt"):
        pj.rmsprop(1e-2, eps_in_sqrt=True)
    with pytest.raises(ValueError, match="mask"):
        pj.adamw(1e-2, mask={"w": True})
    with pytest.raises(ValueError, match="not an element-wise"):
        pj.from_class("LAMB", 1e-2)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        pj.adam(-1.0)
    with pytest.raises(TypeError, match="float arrays"):
        tx.init({"i": jnp.arange(3)})
    bad = dict(params, b=jnp.zeros(36, jnp.float32))  # a grad of the wrong size: the handler refuses
    with pytest.raises(Exception, match="pyoptk.jax"):
        tx.step(params, bad, tx.init(params))


def test_import_error_without_jax(tmp_path):
    # Run outside the checkout: from its root, `python -c` would import the unbuilt source tree.
    code = "import sys; sys.modules['jax'] = None\nimport pyoptk\ntry:\n import pyoptk.jax\nexcept ImportError as e:\n print(e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "pyoptk.jax needs JAX and optax" in out
    code = "import sys, pyoptk; print('jax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=tmp_path).stdout.strip() == "False"
