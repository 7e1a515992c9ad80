"""pyoptk.jax with block-quantized state (state_dtype="int8" / "int4", issue 22's design): the
params-returning step bit for bit against the NumPy API (params, codes, scales) for every
algorithm with a quantized form, float32 / bfloat16 / float16 params with master weights,
stochastic rounding and stochastic codes, jit == eager, 1 and 2 threads; donation in place;
checkpoints both ways (quantized, and float32 <-> quantized as the NumPy API loads them); refusals."""
import copy

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402

import pyoptk  # noqa: E402
import pyoptk.jax as pj  # noqa: E402
from pyoptk._quant import NO_4BIT, QMAP, SCALES, map_of  # noqa: E402
from test_jax import FACTORIES as ALL_FACTORIES, numpy_twin, pointers  # noqa: E402
from test_jax import run_both as jax_run_both  # noqa: E402

# min_8bit_size 100: "big" (1025: odd, a block tail in 8 and 4 bits) and "w" (35 x 7) quantized,
# "s" (3) kept float32, as the NumPy API keeps a small tensor.
SMALL = dict(min_8bit_size=100)


def tree(dtype=jnp.float32, seed=0):
    rng = np.random.default_rng(seed)
    return {"big": jnp.asarray(rng.standard_normal(1025), dtype), "w": jnp.asarray(rng.standard_normal((35, 7)), dtype),
            "s": [jnp.asarray(rng.standard_normal(3), dtype)]}


def grads_seq(params, n, seed=1):
    rng = np.random.default_rng(seed)
    return [jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params) for _ in range(n)]


# Every factory whose NumPy-API class has a quantized form (schedule-free has none: refused below;
# SGD without momentum keeps no state); test_jax's RMSprop is centered (square_avg stays float32):
# uncentered too.
FACTORIES = {k: v for k, v in ALL_FACTORIES.items() if not k.startswith("schedule_free") and k != "sgd"}
FACTORIES["rmsprop_uncentered"] = lambda **k: pj.rmsprop(1e-2, momentum=0.5, **k)


def run_both(make, dtype, precision, jit=False):
    """test_jax's run (the JAX step and the NumPy API's, side by side) over this file's tree, and
    the transformation (to_state_dict reads its layout)."""
    return (*jax_run_both(make, dtype, precision, jit, make_tree=tree), make(**precision))


def assert_same_as_numpy(params, state, leaves, opt, tx):
    for got, want in zip(jax.tree.leaves(params), leaves):
        assert np.array(got).tobytes() == want.tobytes()
    sd = pj.to_state_dict(tx, state)
    want_sd = opt.state_dict()
    for i, want in want_sd["state"].items():
        assert sorted(sd["state"][i]) == sorted(want), i
        for key, value in want.items():
            a, b = np.asarray(sd["state"][i][key]), np.asarray(value)
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), (i, key)
    assert sd["precision"] == want_sd["precision"]


def quantized_states(state):
    return [k for k in state.states if k.endswith(SCALES)]


# Every factory in 8 bits, and in 4 bits those with a 4-bit form (the others' refusal: test_refusals).
QUANTIZED_CASES = [(name, bits) for name in sorted(FACTORIES) for bits in (8, 4)
                   if bits == 8 or FACTORIES[name]().fused.kernel.name not in NO_4BIT]


@pytest.mark.parametrize("name,bits", QUANTIZED_CASES)
def test_step_bit_for_bit_with_numpy_api(name, bits):
    precision = dict(state_dtype=f"int{bits}", **SMALL)
    params, state, leaves, opt, tx = run_both(FACTORIES[name], jnp.float32, precision)
    assert_same_as_numpy(params, state, leaves, opt, tx)
    quantized = quantized_states(state)
    if name not in ("rprop", "asgd"):  # their states stay float32, as in the NumPy API
        assert quantized
    for key in quantized:
        name_ = key[: -len(SCALES)]
        assert state.states[name_]["big"].dtype == jnp.uint8
        assert state.states[name_]["big"].size == (1025 if bits == 8 else 513)
        assert state.states[key]["big"].size == -(-1025 // (256 if bits == 8 else 128))
        assert state.states[key]["s"][0] is None and state.states[name_]["s"][0].dtype == jnp.float32


@pytest.mark.parametrize("name", ["adamw", "sgd_momentum", "lion", "adan"])
@pytest.mark.parametrize("precision", [dict(master_weights=True), dict(stochastic_rounding=True, seed=7),
                                       dict(master_weights=True, stochastic_rounding=True, stochastic_codes=True,
                                            seed=3),
                                       dict(stochastic_codes=True, block_size=64)],
                         ids=["master", "sr", "master_sr_codes", "codes_block64"])
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
@pytest.mark.parametrize("bits", [8, 4])
def test_low_precision_bit_for_bit_and_jit_equals_eager(name, precision, dtype, bits):
    precision = dict(precision, state_dtype=f"int{bits}", **SMALL)
    eager = run_both(FACTORIES[name], dtype, precision)
    jitted = run_both(FACTORIES[name], dtype, precision, jit=True)
    assert_same_as_numpy(*eager)
    assert_same_as_numpy(*jitted)
    for got in jax.tree.leaves(eager[0]):
        assert got.dtype == dtype


@pytest.mark.parametrize("state_dtype", ["int8", "int4"])
def test_one_and_two_threads_equal_the_numpy_api(state_dtype, kernel_config):
    precision = dict(state_dtype=state_dtype, stochastic_codes=True, **SMALL)
    for threads in (1, 2):
        kernel_config(pyoptk._core.isa(), threads)  # 2 threads: even small steps split (at block multiples)
        assert_same_as_numpy(*run_both(FACTORIES["adamw"], jnp.bfloat16, dict(precision, master_weights=True)))
        assert_same_as_numpy(*run_both(FACTORIES["adan"], jnp.float32, precision, jit=True))


def test_defaults_are_the_numpy_apis():
    """block 256 (8-bit) / 128 (4-bit), min_8bit_size 4096: a 5000-element leaf quantized, a 4095 one not."""
    params = {"a": jnp.ones(5000), "b": jnp.ones(4095)}
    state = pj.adamw(1e-3, state_dtype="int8").init(params)
    assert state.states["exp_avg"]["a"].dtype == jnp.uint8 and state.states["exp_avg_absmax"]["a"].size == 20
    assert state.states["exp_avg"]["b"].dtype == jnp.float32 and state.states["exp_avg_absmax"]["b"] is None
    state4 = pj.adamw(1e-3, state_dtype="int4").init(params)
    assert state4.states["exp_avg"]["a"].size == 2500 and state4.states["exp_avg_absmax"]["a"].size == 40


@pytest.mark.parametrize("make,bits", [(lambda: pj.adagrad(1e-2, initial_accumulator_value=0.3, state_dtype="int4",
                                                           **SMALL), 4),
                                       (lambda: pj.adamw(1e-2, state_dtype="int8", **SMALL), 8)])
def test_init_under_jit_is_the_numpy_apis_initial_state(make, bits):
    """init quantizes its constant without the quantizer on arrays (it may be traced): the same
    codes and scales as the NumPy API's quantized initial state (odd 4-bit tail included)."""
    params = tree()
    tx = make()
    state = jax.jit(tx.init)(params)
    leaves = [np.array(p) for p in jax.tree.leaves(params)]
    opt = numpy_twin(tx, leaves, dict(state_dtype=f"int{bits}", **SMALL))
    for i, p in enumerate(leaves):
        want = opt._state_entries(tx.fused.state_names, p, opt.param_groups[0])
        for key, value in want.items():
            if key.endswith(QMAP):
                continue
            got = jax.tree.leaves(state.states[key], is_leaf=lambda x: x is None)[i]
            assert np.array(got).tobytes() == np.asarray(value).tobytes(), (i, key)


@pytest.mark.parametrize("state_dtype", ["int8", "int4"])
def test_donated_step_runs_in_place_and_allocates_nothing(state_dtype):
    rng = np.random.default_rng(0)
    params = {f"l{i}": jnp.asarray(rng.standard_normal(10_000), jnp.float32) for i in range(20)}
    params["small"] = jnp.ones(7)  # a float32 state beside the quantized ones
    tx = pj.adamw(1e-3, state_dtype=state_dtype)
    state = tx.init(params)
    step = jax.jit(tx.step, donate_argnums=(0, 2))
    grads = grads_seq(params, 1)[0]
    memory = step.lower(params, grads, state).compile().memory_analysis()
    assert memory.temp_size_in_bytes <= 1024, memory
    assert memory.output_size_in_bytes - memory.alias_size_in_bytes <= 1024, memory
    before = pointers(params, state.states)
    assert len(before) == 21 + 4 * 20 + 2  # params, codes and scales of two states, the small leaf's two
    for _ in range(3):
        params, state = step(params, grads, state)
        assert pointers(params, state.states) == before
    text = jax.jit(tx.step).lower(params, grads, state).as_text()
    assert text.count("pyoptk_step") == 1


# ----- checkpoints ------------------------------------------------------------------------------
@pytest.mark.parametrize("state_dtype", ["int8", "int4"])
@pytest.mark.parametrize("dtype,precision", [(jnp.float32, {}), (jnp.bfloat16, dict(master_weights=True)),
                                             (jnp.float32, dict(stochastic_codes=True, seed=5))],
                         ids=["f32", "bf16_master", "f32_codes"])
def test_state_dict_both_ways(state_dtype, dtype, precision):
    precision = dict(precision, state_dtype=state_dtype, **SMALL)
    params = tree(dtype)
    grads = grads_seq(params, 6)
    tx = pj.adamw(1e-2, weight_decay=0.1, **precision)
    state = tx.init(params)
    for g in grads[:3]:
        params, state = tx.step(params, g, state)
    # to NumPy: its state_dict layout (codes, absmax, qmap); the NumPy API resumes from it
    saved = pj.to_state_dict(tx, state)
    assert saved["state"][0]["exp_avg_qmap"].tobytes() == map_of(int(state_dtype[3]), "signed").tobytes()
    assert saved["precision"]["state_dtype"] == state_dtype
    leaves = [np.array(p) for p in jax.tree.leaves(params)]
    opt = numpy_twin(tx, leaves, precision)
    opt.load_state_dict(copy.deepcopy(saved))
    for g in grads[3:]:
        opt.step([np.array(x) for x in jax.tree.leaves(g)])
    jparams, jstate = params, state
    for g in grads[3:]:
        jparams, jstate = tx.step(jparams, g, jstate)
    assert_same_as_numpy(jparams, jstate, leaves, opt, tx)
    # and back: the NumPy optimizer's quantized state_dict, as it is (codes and scales kept)
    back = pj.from_state_dict(tx, jparams, opt.state_dict())
    assert jax.tree.structure(back) == jax.tree.structure(jstate)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(jstate)):
        assert np.array(a).tobytes() == np.array(b).tobytes()


@pytest.mark.parametrize("state_dtype", ["int8", "int4"])
def test_float32_and_quantized_states_convert_as_the_numpy_api_loads_them(state_dtype):
    params = tree()
    grads = grads_seq(params, 4)
    f32 = pj.adam(1e-2)
    quant = pj.adam(1e-2, state_dtype=state_dtype, **SMALL)
    state = f32.init(params)
    for g in grads[:2]:
        params, state = f32.step(params, g, state)
    leaves = [np.array(p) for p in jax.tree.leaves(params)]
    # float32 -> quantized: quantized on load, as the NumPy API's load_state_dict does it
    qstate = pj.from_state_dict(quant, params, pj.to_state_dict(f32, state))
    opt = numpy_twin(quant, leaves, dict(state_dtype=state_dtype, **SMALL))
    opt.load_state_dict(pj.to_state_dict(f32, state))
    assert quantized_states(qstate)
    assert_same_as_numpy(params, qstate, leaves, opt, quant)
    # and steps on with it, as the NumPy API does
    qparams = params
    for g in grads[2:]:
        qparams, qstate = quant.step(qparams, g, qstate)
        opt.step([np.array(x) for x in jax.tree.leaves(g)])
    assert_same_as_numpy(qparams, qstate, leaves, opt, quant)
    # quantized -> float32: dequantized, in the param's shape
    back = pj.from_state_dict(f32, qparams, pj.to_state_dict(quant, qstate))
    r = numpy_twin(f32, [np.array(p) for p in jax.tree.leaves(qparams)], {})
    r.load_state_dict(opt.state_dict())
    for i, want in r.state_dict()["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            got = jax.tree.leaves(back.states[key])[i]
            assert got.dtype == jnp.float32 and got.shape == want[key].shape
            assert np.array(got).tobytes() == want[key].tobytes()
    # int8 <-> int4, other block sizes: re-coded
    other = pj.adam(1e-2, state_dtype="int4" if state_dtype == "int8" else "int8", block_size=64, **SMALL)
    recoded = pj.from_state_dict(other, qparams, pj.to_state_dict(quant, qstate))
    assert recoded.states["exp_avg_absmax"]["big"].size == -(-1025 // 64)


def test_state_serializes_as_a_pytree():
    params = tree()
    tx = pj.adamw(1e-2, state_dtype="int4", **SMALL)
    state = tx.init(params)
    for g in grads_seq(params, 2):
        params, state = tx.step(params, g, state)
    leaves, treedef = jax.tree.flatten(state)
    restored = jax.tree.unflatten(treedef, [jnp.asarray(np.array(x)) for x in leaves])
    g = grads_seq(params, 1, seed=9)[0]
    for x, y in zip(jax.tree.leaves(tx.step(params, g, state)), jax.tree.leaves(tx.step(params, g, restored))):
        assert np.array(x).tobytes() == np.array(y).tobytes()


def test_composes_with_masked_and_multi_steps():
    """optax.masked: the masked-out leaf has no state; MultiSteps: one real step per two calls."""
    params = tree()
    tx = optax.MultiSteps(optax.masked(pj.adamw(1e-2, state_dtype="int4", **SMALL),
                                       {"big": True, "w": False, "s": [True]}), 2)
    state = tx.init(params)
    step = jax.jit(lambda p, g, s: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p)))
    for g in grads_seq(params, 4):
        params, state = step(params, g, state)
    inner = state.inner_opt_state.inner_state
    assert int(inner.count) == 2 and inner.states["exp_avg"]["big"].dtype == jnp.uint8
    assert inner.states["exp_avg"]["s"][0].dtype == jnp.float32 and inner.states["exp_avg_absmax"]["s"][0] is None
    assert isinstance(inner.states["exp_avg_absmax"]["w"], optax.MaskedNode)


def test_composes_with_inject_hyperparams_and_apply_if_finite():
    params = tree()
    with pytest.raises(ValueError, match="static_args=\\('min_8bit_size'"):  # a number: injected as an array
        optax.inject_hyperparams(pj.adamw)(learning_rate=1e-2, state_dtype="int8", **SMALL).init(params)
    inject = optax.inject_hyperparams(pj.adamw, static_args=("min_8bit_size",))
    tx = optax.apply_if_finite(inject(learning_rate=1e-2, state_dtype="int8", **SMALL), 2)
    state = tx.init(params)
    step = jax.jit(lambda p, g, s: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p)))
    for g in grads_seq(params, 2):
        params, state = step(params, g, state)
    inner = state.inner_state.inner_state
    assert inner.states["exp_avg"]["big"].dtype == jnp.uint8 and int(inner.count) == 2
    bad = jax.tree.map(lambda g: g * jnp.nan, grads_seq(params, 1)[0])
    new_params, new_state = step(params, bad, state)  # skipped: codes and scales unchanged
    for a, b in zip(jax.tree.leaves(new_state.inner_state.inner_state.states), jax.tree.leaves(inner.states)):
        assert np.array(a).tobytes() == np.array(b).tobytes()


# ----- refusals ---------------------------------------------------------------------------------
def test_refusals():
    params = tree()
    with pytest.raises(ValueError, match="int4"):
        pj.from_class("Adadelta", 1.0, state_dtype="int4")
    for bad, match in ((dict(state_dtype="int8", block_size=48), "block_size"),
                       (dict(state_dtype="int4", block_size=1024), "block_size"),
                       (dict(state_dtype="int8", min_8bit_size=-1), "min_8bit_size"),
                       (dict(block_size=256), "block_size"), (dict(min_8bit_size=10), "min_8bit_size"),
                       (dict(stochastic_codes=True), "stochastic_codes"), (dict(state_dtype="int2"), "state_dtype")):
        with pytest.raises(ValueError, match=match):
            pj.adamw(1e-2, **bad)
        with pytest.raises(ValueError, match=match):
            pj.from_class("Adam", 1e-2, **bad)
    # schedule-free keeps z and x in the params' dtype: no quantized form, refused (not float32)
    for make in (pj.schedule_free_adamw, pj.schedule_free_sgd):
        with pytest.raises(ValueError, match="state_dtype"):
            make(1e-2, state_dtype="int8")
        with pytest.raises(TypeError, match="block_size"):
            make(1e-2, block_size=256)
    # a state from a float32 transformation is not a quantized one's
    tx = pj.adamw(1e-2, state_dtype="int8", **SMALL)
    with pytest.raises(Exception):
        tx.step(params, grads_seq(params, 1)[0], pj.adamw(1e-2).init(params))
    # codes of the wrong size: the handler refuses, naming the state
    state = tx.init(params)
    states = dict(state.states, exp_avg=dict(state.states["exp_avg"], big=jnp.zeros(1024, jnp.uint8)))
    with pytest.raises(Exception, match="exp_avg"):
        tx.step(params, grads_seq(params, 1)[0], state._replace(states=states))
    states = dict(state.states, exp_avg=dict(state.states["exp_avg"], big=jnp.zeros(1025, jnp.int8)))
    with pytest.raises(Exception, match="uint8"):
        tx.step(params, grads_seq(params, 1)[0], state._replace(states=states))


def test_float64_params_are_refused():
    with jax.enable_x64(True):
        with pytest.raises(ValueError, match="float64"):
            pj.adamw(1e-2, state_dtype="int8").init({"w": jnp.ones(5000, jnp.float64)})


def test_every_factory_honours_or_refuses_every_precision_option():
    """No option silently ignored: each factory either keeps quantized state (uint8 codes) for a
    state the NumPy API quantizes, or raises naming the option."""
    params = {"w": jnp.ones(5000, jnp.float32)}
    factories = [getattr(pj, n) for n in ("sgd", "adam", "adamw", "adagrad", "rmsprop", "adamax", "nadam", "radam",
                                           "lion", "adan", "adopt", "ademamix")]
    for make in factories:
        kw = dict(momentum=0.9) if make is pj.sgd else {}
        for bits in (8, 4):
            state = make(1e-2, state_dtype=f"int{bits}", **kw).init(params)
            assert quantized_states(state), make.__name__
            assert all(state.states[k[: -len(SCALES)]]["w"].dtype == jnp.uint8 for k in quantized_states(state))
    for make in (pj.schedule_free_adamw, pj.schedule_free_sgd):
        with pytest.raises(ValueError, match="state_dtype"):
            make(1e-2, state_dtype="int4")
        with pytest.raises(ValueError, match="state_dtype"):
            make(1e-2, state_dtype="bfloat16")
