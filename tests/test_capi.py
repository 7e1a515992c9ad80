"""The C API (pyoptk/include/pyoptk/capi.h) from a C++ program built by CMake against the
installed header: every element-wise algorithm's results are bit-identical to the class API's,
and bad calls come back as error codes with messages, writing nothing."""
import ctypes
import subprocess
from pathlib import Path

import numpy as np
import pytest

import pyoptk
from pyoptk import _core

from embed_build import build_capi_program, python_env


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    return build_capi_program(tmp_path_factory.mktemp("capi"))


def run(program, *args, isa=None):
    env = python_env()
    env.pop("PYOPTK_ISA", None)
    if isa:
        env["PYOPTK_ISA"] = isa
    proc = subprocess.run([str(program), *map(str, args)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_header_ships_with_the_package_and_the_module_exports_the_table():
    assert Path(pyoptk.get_include(), "pyoptk", "capi.h").is_file()
    assert Path(pyoptk.__file__).with_name("capi.pxd").is_file()
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    assert get_name(_core._C_API) == b"pyoptk._core._C_API"


def test_bad_calls_give_codes_and_messages_and_write_nothing(program):
    out = run(program, "errors")
    assert "wrong ABI: pyoptk C API version mismatch: the caller wants ABI 2" in out
    assert out.strip().endswith("ok")


# (optimizer class, hyper-parameters): every element-wise algorithm and its formula-changing flags.
CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, maximize=True)),
    ("RMSprop", dict(lr=1e-2, centered=True, momentum=0.5, weight_decay=0.01)),
    ("RMSprop", dict(lr=1e-2)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("Adamax", dict(lr=2e-2, weight_decay=0.01)),
    ("NAdam", dict(lr=2e-2, weight_decay=0.01, decoupled_weight_decay=True)),
    ("NAdam", dict(lr=2e-2, momentum_decay=0.01)),
    ("RAdam", dict(lr=1e-2, weight_decay=0.01)),
    ("Adadelta", dict(lr=1.0, weight_decay=0.01)),
    ("Rprop", dict(lr=0.01, maximize=True)),
    ("ASGD", dict(lr=0.05, t0=3, lambd=1e-3, weight_decay=0.01)),
    ("Lion", dict(lr=1e-3)),
    ("Lion", dict(lr=1e-3, weight_decay=0.1, maximize=True, betas=(0.8, 0.95))),
    ("Adan", dict(lr=1e-2)),
    ("Adan", dict(lr=1e-2, weight_decay=0.1)),  # proximal decay
    ("Adan", dict(lr=1e-2, weight_decay=0.1, no_prox=True, maximize=True, betas=(0.9, 0.8, 0.95))),
    ("ADOPT", dict(lr=1e-2)),  # the default clip, PowerClip(0.25): its power in C++
    ("ADOPT", dict(lr=1e-2, clip_lambda=None, weight_decay=0.1)),  # L2 decay, no clip (NaN in C++)
    ("ADOPT", dict(lr=1e-2, weight_decay=0.1, decouple=True, maximize=True, betas=(0.8, 0.99))),
    ("AdEMAMix", dict(lr=1e-2)),  # no warmups: t_alpha = t_beta3 = None, NaN in C++
    ("AdEMAMix", dict(lr=1e-2, weight_decay=0.1, t_alpha=6, t_beta3=4, maximize=True)),  # warmups end mid-run
]
STEPS = 12  # past RAdam's un-rectified steps (1..5), past ASGD's t0


def layouts():
    """(n, threads, spans): sizes 0, 1, 7, 1023 and one split across threads; one or several spans."""
    yield 0, 1, 1
    yield 1, 1, 1
    yield 7, 0, 3
    yield 1023, 1, 1
    yield 1023, 2, 4
    yield 70001, 2, 3
    yield 7, 1, -3  # step_bucket: the spans in backward order, a coefficient set each
    yield 70001, 2, -4


def prepare(tmp, index, name, hyper, dtype, n, threads, spans):
    """Writes case `index`'s input, runs the same steps through the class API; returns the case
    line and the expected output bytes."""
    rng = np.random.default_rng(index)
    p0 = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(STEPS)]
    for g in grads[1::3]:
        g[::5] = 0  # exact zeros: Rprop's sign(0) and its "prev" reset
    p = p0.copy()
    opt = getattr(pyoptk, name)([p], **hyper)
    group, kernel = opt.param_groups[0], opt.kernel
    mode = opt._group_mode(group)
    names = kernel.state_names(mode)
    flags = ",".join(f for f, bit in kernel.flag_bits.items() if mode & bit and f != opt.fresh_state_flag) or "-"
    first_step = int(opt.fresh_state_flag is not None and bool(names))
    inits = [np.full(n, opt._state_init(s, group) or 0.0, dtype) for s in names]
    for g in grads:
        opt.step([g])
    state = opt.state[p]
    expected = p.tobytes() + b"".join(state[s].tobytes() for s in names)
    expected += np.array([state[s] for s in kernel.scalar_names], np.float64).tobytes()
    (tmp / f"{index}.in").write_bytes(p0.tobytes() + b"".join(g.tobytes() for g in grads)
                                      + b"".join(a.tobytes() for a in inits))
    hyper_text = " ".join(repr(float(h)) for h in kernel.hyper(group))
    dcode = 0 if dtype == np.float32 else 1
    line = f"{index} {kernel.name} {flags} {dcode} {n} {STEPS} {threads} {spans} {first_step} {hyper_text}"
    return line, expected


def test_every_elementwise_algorithm_is_bit_identical_to_the_class_api(program, tmp_path):
    lines, expected = [], {}
    index = 0
    for name, hyper in CASES:
        for dtype in (np.float32, np.float64):
            for n, threads, spans in layouts():
                line, expected[index] = prepare(tmp_path, index, name, hyper, dtype, n, threads, spans)
                lines.append(line)
                index += 1
    (tmp_path / "cases.txt").write_text("\n".join(lines) + "\n")
    for isa in (None, "scalar"):
        out = run(program, "run", tmp_path / "cases.txt", tmp_path, isa=isa)
        assert f"ran {len(lines)} cases" in out
        for i, want in expected.items():
            got = (tmp_path / f"{i}.out").read_bytes()
            assert got == want, f"case {lines[i]} (ISA {isa or 'best'}) differs from the class API"
