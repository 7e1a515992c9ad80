"""pyoptk.functional.init / update over nested dicts / lists / tuples: the class API's results bit
for bit, hyper-parameters that change between calls, a checkpoint round trip, and bad structures
refused naming the place, with nothing changed."""
import copy
import pickle

import numpy as np
import pytest

import pyoptk
from pyoptk.functional import init, update


def model(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    r = lambda *shape: rng.standard_normal(shape).astype(dtype)
    # sizes past every SIMD width, a 1-element and a 0-element param, a float64 one
    return {"encoder": [r(7, 3), r(1023), (r(1),)], "head": {"w": r(17, 5), "b": r(0)},
            "scale": rng.standard_normal(33)}


def leaves(tree):
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in leaves(v)]
    if isinstance(tree, (list, tuple)):
        return [x for v in tree for x in leaves(v)]
    return [tree]


def grads_like(params, seed):
    rng = np.random.default_rng(seed)
    def make(node):
        if isinstance(node, dict):
            return {k: make(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(make(v) for v in node)
        return rng.standard_normal(node.shape).astype(node.dtype)
    return make(params)


CASES = [
    ("adamw", "AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ("adam", "Adam", dict(lr=1e-2, amsgrad=True)),
    ("sgd", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("nadam", "NAdam", dict(lr=2e-2)),
    ("asgd", "ASGD", dict(lr=0.05, t0=2)),
    ("rprop", "Rprop", dict(lr=0.01)),
    ("adagrad", "Adagrad", dict(lr=0.1, initial_accumulator_value=0.1)),
    ("radam", "RAdam", dict(lr=1e-2)),
    ("rmsprop", "RMSprop", dict(lr=1e-2, centered=True, momentum=0.5)),
    ("adadelta", "Adadelta", dict()),
    ("adamax", "Adamax", dict()),
]


@pytest.mark.parametrize("name,cls,hyper", CASES)
def test_tree_updates_are_the_class_apis_bits_with_hyper_changes(name, cls, hyper):
    tree = model()
    flat = [p.copy() for p in leaves(tree)]
    state = init(name, tree, **hyper)
    opt = getattr(pyoptk, cls)(flat, **hyper)
    for t in range(12):
        if t == 6:  # hyper-parameters may change between calls, as group["lr"] does
            state["hyper"]["lr"] = opt.param_groups[0]["lr"] = hyper.get("lr", 1.0) / 3
        grads = grads_like(tree, t)
        update(state, tree, grads)
        opt.step(leaves(grads))
    for mine, theirs in zip(leaves(tree), flat):
        assert mine.tobytes() == theirs.tobytes()
    for d, p in zip(leaves_of_state(state["state"], tree), flat):
        want = opt.state[p]
        assert d.keys() == want.keys()
        for k, v in want.items():
            assert np.asarray(d[k]).tobytes() == np.asarray(v).tobytes(), k


def leaves_of_state(tree, params):
    """The per-param state dicts of a state tree, in params' order (the tree mirrors params)."""
    if isinstance(params, dict):
        return [x for k in params for x in leaves_of_state(tree[k], params[k])]
    if isinstance(params, (list, tuple)):
        return [x for t, p in zip(tree, params) for x in leaves_of_state(t, p)]
    return [tree]


def test_state_mirrors_params_and_holds_torchs_per_param_state():
    tree = {"a": np.zeros(3), "b": [np.zeros(2)]}
    state = init("adam", tree, lr=0.1)
    assert state["algorithm"] == "adam" and state["hyper"]["lr"] == 0.1 and state["state"] == {"a": {}, "b": [{}]}
    update(state, tree, {"a": np.ones(3), "b": [np.ones(2)]})
    s = state["state"]["a"]
    assert s["step"] == 1 and set(s) == {"step", "exp_avg", "exp_avg_sq"}
    assert np.allclose(tree["a"], -0.1)  # Adam's first step moves by lr


@pytest.mark.parametrize("name,cls,hyper", [CASES[0], CASES[3], CASES[4], CASES[2]])
def test_checkpoint_round_trip_resumes_bit_identically(name, cls, hyper):
    tree = model(seed=1)
    state = init(name, tree, **hyper)
    for t in range(5):
        update(state, tree, grads_like(tree, t))
    saved_tree, saved_state = pickle.loads(pickle.dumps((tree, state)))
    copied_tree, copied_state = copy.deepcopy((tree, state))
    for t in range(5, 10):
        g = grads_like(tree, t)
        update(state, tree, g)
        update(saved_state, saved_tree, g)
        update(copied_state, copied_tree, g)
    for a, b, c in zip(leaves(tree), leaves(saved_tree), leaves(copied_tree)):
        assert a.tobytes() == b.tobytes() == c.tobytes()


def snapshot(*trees):
    return pickle.dumps(trees)


def test_bad_structures_and_grads_are_refused_naming_the_place_and_change_nothing():
    tree = model()
    state = init("adamw", tree, lr=1e-2)
    update(state, tree, grads_like(tree, 0))
    good = grads_like(tree, 1)
    before = snapshot(tree, state["state"])

    def refused(grads, match, error=ValueError, params=tree):
        with pytest.raises(error, match=match):
            update(state, params, grads)
        assert snapshot(tree, state["state"]) == before  # no param, no state array, no step count

    bad = copy.deepcopy(good)
    bad["encoder"][1] = np.ones(5, np.float32)
    refused(bad, r"params\['encoder'\]\[1\] grad has shape \(5,\), expected \(1023,\)")
    bad = copy.deepcopy(good)
    bad["head"]["w"] = bad["head"]["w"].astype(np.float64)
    refused(bad, r"params\['head'\]\['w'\] grad has dtype float64", TypeError)
    bad = copy.deepcopy(good)
    del bad["head"]["b"]
    refused(bad, r"grads\['head'\] has other keys than params\['head'\]: missing 'b'")
    bad = copy.deepcopy(good)
    bad["encoder"] = bad["encoder"][:2]
    refused(bad, r"grads\['encoder'\] has 2 entries, params\['encoder'\] 3")
    bad = copy.deepcopy(good)
    bad["encoder"][2] = list(bad["encoder"][2])
    refused(bad, r"grads\['encoder'\]\[2\] is a list, params\['encoder'\]\[2\] a tuple")
    bad = copy.deepcopy(good)
    bad["scale"] = None
    refused(bad, r"grads\['scale'\] is None: update needs a grad for every param")
    bad = copy.deepcopy(good)
    bad["head"]["w"] = {"x": bad["head"]["w"]}
    refused(bad, r"params\['head'\]\['w'\] grad is a dict, expected a numpy.ndarray", TypeError)
    bad = copy.deepcopy(good)
    bad["encoder"][0] = tree["encoder"][0]  # a grad that is its own param
    refused(bad, "overlap|share|alias")
    state["hyper"]["lr"] = -1.0
    refused(good, r"state\['hyper'\]: Invalid learning rate: -1.0")
    state["hyper"]["lr"] = 1e-2
    state["hyper"]["lrr"] = 1.0
    with pytest.raises(ValueError, match=r"state\['hyper'\] has keys AdamW does not take: \['lrr'\]"):
        update(state, tree, good)
    del state["hyper"]["lrr"]
    assert snapshot(tree, state["state"]) == before
    update(state, tree, good)  # and the state still works
    assert snapshot(tree, state["state"]) != before


def test_bad_calls_to_init_and_update():
    with pytest.raises(ValueError, match="unknown algorithm 'adamm'; known: .*adamw"):
        init("adamm", {"a": np.zeros(2)})
    with pytest.raises(ValueError, match="Invalid learning rate"):
        init("adam", {"a": np.zeros(2)}, lr=-1)
    with pytest.raises(ValueError, match=r"params\['a'\]\[0\] is None"):
        init("adam", {"a": [None]})
    with pytest.raises(ValueError, match="state must be what pyoptk.functional.init returned"):
        update({"hyper": {}}, {"a": np.zeros(2)}, {"a": np.zeros(2)})
    assert "lbfgs" not in pyoptk.functional_tree.algorithms()
