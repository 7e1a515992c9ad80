"""Optimizer.kernel_paths(): how the last step ran each param (the engine's own record, made where
it chooses the kernel), and bench/kernel_choice.py, which prints it for every layout."""
import pathlib
import subprocess
import sys

import ml_dtypes
import numpy as np

import pyoptk
from pyoptk import _core

BF16 = np.dtype(ml_dtypes.bfloat16)
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _paths(param_dtype, grad_dtype=None, n=8192, **precision):
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(param_dtype)
    q = rng.standard_normal(3).astype(param_dtype)
    opt = pyoptk.Adam([p, q], lr=1e-3, **precision)
    assert opt.kernel_paths() == []  # no step yet
    opt.step([rng.standard_normal(n).astype(grad_dtype or param_dtype),
              rng.standard_normal(3).astype(grad_dtype or param_dtype)])
    return [(index, path) for index, path, _ in opt.kernel_paths()], opt.kernel_paths()[0][2]


def test_float_arrays_run_direct(all_isas_threads):
    for _ in all_isas_threads():
        assert _paths(np.float32)[0] == [(0, "direct"), (1, "direct")]
        assert _paths(np.float64)[0] == [(0, "direct"), (1, "direct")]


def test_each_reason_for_staging_is_named(all_isas_threads):
    for _ in all_isas_threads():
        paths, why = _paths(BF16, stochastic_rounding=True)
        assert paths == [(0, "staged"), (1, "staged")] and "stochastic rounding" in why
        paths, why = _paths(np.float32, state_dtype="int8")
        assert paths[0] == (0, "staged") and "quantized" in why
        assert paths[1] == (1, "direct")  # 3 elements: under min_8bit_size, float32 state
        paths, why = _paths(BF16, np.float32, state_dtype="float32")
        assert paths[0][1] in ("fused", "staged")  # a float32 grad for a bfloat16 param


def test_16_bit_layouts_are_fused_where_a_kernel_exists(all_isas_threads):
    # Every ISA (scalar included: it converts one element at a time) has the fused layouts of
    # kernels_stored.cpp: 16-bit everywhere, 16-bit param and grad with float32 states, float32
    # param and grad with bfloat16 states (state_dtype), master
    # weights with float32 states; master weights with 16-bit states are staged.
    for _ in all_isas_threads():
        assert _paths(BF16)[0][0] == (0, "fused")
        assert _paths(np.float16, state_dtype="float32")[0][0] == (0, "fused")
        assert _paths(np.float32, state_dtype="bfloat16")[0][0] == (0, "fused")
        paths, why = _paths(BF16, master_weights=True, state_dtype="float32")
        assert paths[0] == (0, "fused") and "in registers" in why
        paths, why = _paths(BF16, master_weights=True)
        assert paths[0] == (0, "staged") and "no fused kernel" in why


def test_a_scaled_step_says_so():
    p = np.ones(16, np.float32)
    opt = pyoptk.Adam([p], lr=1e-3)
    opt.step([np.ones(16, np.float32)], grad_scale=np.float32(4.0))
    (_, path, why), = opt.kernel_paths()
    assert path == "staged" and "grad_scale" in why


def test_isa_rows_name_the_cpu_features_each_needs():
    rows = _core._isa_rows()
    assert rows[0] == ("scalar", "", True)
    assert [name for name, _, ok in rows if ok] == pyoptk.available_isas()
    if any(name == "avx2" for name, _, _ in rows):
        assert dict((n, f) for n, f, _ in rows)["avx2"].split() == ["avx2", "fma", "f16c"]


def test_kernel_choice_script_prints_every_layout(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "kernel_choice.py")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"running on: {pyoptk.isa()}" in out and "<- active" in out
    for layout in ("float32", "all-bfloat16", "float32 params, int8 state", "all-bfloat16, stochastic rounding"):
        assert f"  {layout} " in out, out
    assert out.count("direct") >= 2 and "staged" in out


def test_kernel_choice_script_lowers_the_isa(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "kernel_choice.py"), "--isa", "scalar"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "running on: scalar" in done.stdout and "scalar       yes  needs nothing (every CPU)  <- active" in done.stdout
