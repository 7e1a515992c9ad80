"""The CUDA kernels. Without a GPU (CI): the build has them wherever nvcc exists, and GPU arrays
are refused with clear errors before any CUDA call where they cannot work. With a GPU: every op
in every mode and both dtypes, and every single-pass optimizer, equal the CPU bit for bit (the same
formulas, compiled with -fmad=false and IEEE division/sqrt), aligned and unaligned, over many
steps; checkpoints are host arrays and resume exactly; bad GPU input is refused by name."""
from __future__ import annotations

import copy
import os
import shutil

import numpy as np
import pytest

import pyoptk
from pyoptk import _core, cuda
from cases import SGD_ADAM as ADAM_SGD_CASES, TORCH_OPTIM as ALGORITHM_CASES

GPU = cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason=f"no usable CUDA device: {cuda.unavailable_reason() or 'n/a'}")

# One chunk is 16384 elements: sizes past one and several chunks, with tails past the 4-lane
# (float32) and 2-lane (float64) vector width.
SIZES = [0, 1, 7, 1023, 16384 + 5, 3 * 16384 + 13]
DTYPES = [np.float32, np.float64]
STEPS = 10
SINGLE_PASS = ADAM_SGD_CASES + ALGORITHM_CASES
HOST_ONLY = ["Adafactor", "Muon", "LBFGS", "SparseAdam"]


class FakeCudaArray:
    """A __cuda_array_interface__ object over any device address (unaligned views in the GPU
    tests; a stand-in for CuPy in the tests without a GPU)."""

    def __init__(self, ptr: int, shape: tuple, typestr: str = "<f4", readonly: bool = False, strides=None):
        self._interface = {"shape": shape, "typestr": typestr, "data": (ptr, readonly), "strides": strides,
                           "version": 3}

    @property
    def __cuda_array_interface__(self):  # a property, as CuPy's and Numba's are
        return self._interface


class FakeDlpackTensor:
    """Says it lives on DLPack device type `device_type` (2 = CUDA); never exported here."""

    def __init__(self, device_type: int):
        self.device_type = device_type

    def __dlpack_device__(self):
        return (self.device_type, 0)

    def __dlpack__(self, stream=None):
        raise AssertionError("not reached: refused before export")


def _same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Lanes that are bit-identical, or NaN in both (a NaN's payload is the hardware's choice)."""
    u = np.uint32 if a.dtype == np.float32 else np.uint64
    return (a.view(u) == b.view(u)) | (np.isnan(a) & np.isnan(b))


def assert_bit_identical(cpu: np.ndarray, gpu: np.ndarray, what: str) -> None:
    same = _same_bits(np.ascontiguousarray(cpu), np.ascontiguousarray(gpu))
    if not same.all():
        i = int(np.argmin(same.reshape(-1)))
        raise AssertionError(f"{what}: {(~same).sum()} of {same.size} lanes differ; first at {i}: "
                             f"cpu {cpu.reshape(-1)[i]!r}, gpu {gpu.reshape(-1)[i]!r}")


# ----- without a GPU: the build, and the refusals that need no device ----------------------------

def test_cuda_kernels_are_built_wherever_nvcc_exists():
    """The compile-and-link check: CI has nvcc, so the default build (PYOPTK_CUDA=AUTO) must
    have compiled csrc/cuda and linked it into _core."""
    if shutil.which("nvcc") is None and not os.path.exists("/usr/local/cuda/bin/nvcc"):
        pytest.skip("no nvcc on this machine")
    assert cuda.built(), "nvcc exists but pyoptk was built without its CUDA kernels"
    assert hasattr(_core.cuda, "Plan") and hasattr(_core.cuda, "DeviceArray")


def test_availability_is_reported_not_raised():
    assert isinstance(cuda.is_available(), bool)
    assert cuda.device_count() >= 0
    if not cuda.is_available():
        assert cuda.unavailable_reason()
        with pytest.raises(RuntimeError, match="not available|without its CUDA"):
            cuda.synchronize()


@pytest.mark.parametrize("make", [lambda: FakeCudaArray(0x1000, (3,)), lambda: FakeDlpackTensor(2)],
                         ids=["cuda_array_interface", "dlpack"])
def test_a_group_mixing_host_and_cuda_arrays_is_refused(make):
    host = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"mix host \(NumPy\) and CUDA arrays: param 0 is a host ndarray, param 1 a CUDA"):
        pyoptk.Adam([host, make()])
    opt = pyoptk.SGD([host], lr=0.1)
    with pytest.raises(ValueError, match="mix host"):
        opt.add_param_group({"params": [np.zeros(2, np.float32), make()]})
    assert len(opt.param_groups) == 1


def test_functional_calls_refuse_mixed_arrays():
    p, g = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="mix host"):
        pyoptk.functional.sgd([p, FakeCudaArray(0x1000, (3,))], [g, g], [None, None], weight_decay=0.0,
                              momentum=0.0, lr=0.1, dampening=0.0, nesterov=False, maximize=False)
    assert (p == 0).all()


@pytest.mark.parametrize("name", HOST_ONLY)
def test_multi_pass_optimizers_refuse_cuda_arrays(name):
    with pytest.raises(ValueError, match=f"{name} runs on host"):
        getattr(pyoptk, name)([FakeCudaArray(0x1000, (4, 4))])


def test_host_dlpack_objects_are_not_cuda_arrays():
    # A host (kDLCPU) DLPack object is read as a host array through NumPy, not as a CUDA array;
    # this one's export fails, and the error says so, naming the param.
    with pytest.raises(TypeError, match="param 0 is a FakeDlpackTensor that NumPy cannot read through DLPack"):
        pyoptk.Adam([FakeDlpackTensor(1)])


@pytest.mark.skipif(GPU, reason="checks the no-device message")
def test_cuda_arrays_without_a_device_say_why():
    with pytest.raises(RuntimeError, match="param 0 of the new group is a CUDA array, but pyoptk.cuda is not available"):
        pyoptk.Adam([FakeCudaArray(0x1000, (3,))])


# ----- with a GPU --------------------------------------------------------------------------------

def _ops():
    """(op, mode) for every op and every mode its CPU table instantiates."""
    out = []
    for op, info in _core.registry().items():
        known = sum(info["flags"].values())
        for mode in range(known + 1):
            if mode & ~known:
                continue
            item = (0, mode, 0, np.zeros(1), np.zeros(1) if info["reads_grad"] else None,
                    *_states(info, mode, 1, np.float64))
            try:
                _core.step(op, [item], [[0.5] * len(info["coeffs"])])
            except ValueError as e:
                if "unsupported flag combination" in str(e):
                    continue
                raise
            out.append((op, mode))
    return out


def _states(info, mode, n, dtype, rng=None):
    out = []
    for _, bits in info["states"]:
        present = bits == 0 or mode & bits
        out.append((np.abs(rng.standard_normal(n)).astype(dtype) if rng is not None else np.zeros(n, dtype))
                   if present else None)
    return out


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("op,mode", _ops() if GPU else [])
def test_every_op_and_mode_matches_the_cpu_bit_for_bit(op, mode, dtype):
    info = _core.registry()[op]
    rng = np.random.default_rng(mode)
    reads_grad = info["reads_grad"]
    for n in SIZES:
        for unaligned in (False, True):
            p = rng.standard_normal(n + 1).astype(dtype)
            g = rng.standard_normal(n + 1).astype(dtype) if reads_grad else None
            if g is not None:
                g[::7] = 0
            states = _states(info, mode, n + 1, dtype, rng)
            coeffs = [list(rng.uniform(0.05, 0.95, len(info["coeffs"])))]
            host = [a.copy() if a is not None else None for a in [p, g, *states]]
            dev = [cuda.from_numpy(a) if a is not None else None for a in [p, g, *states]]
            cut = slice(1, None) if unaligned else slice(0, n)
            host_views = [a[cut] if a is not None else None for a in host]
            dev_views = [_device_view(a, 1 if unaligned else 0, n) if a is not None else None for a in dev]
            for _ in range(3):
                _core.step(op, [(0, mode, 0, *host_views)], coeffs)
                _core.cuda.step(op, [(0, mode, 0, *dev_views)], coeffs)
            for k, (h, d) in enumerate(zip(host, dev)):
                if h is not None:
                    assert_bit_identical(h, d.to_numpy(), f"{op} mode {mode} n={n} unaligned={unaligned} array {k}")


def _device_view(a, offset: int, n: int):
    """Elements [offset, offset + n) of a DeviceArray, as a CUDA-array-interface object."""
    return FakeCudaArray(a.data_ptr + offset * a.dtype.itemsize, (n,), "<f4" if a.dtype == np.float32 else "<f8")


def _problem(dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    grads = [[rng.standard_normal(n).astype(dtype) for n in SIZES] for _ in range(STEPS)]
    return params, grads


def _run_host(name, hyper, dtype):
    params, grads = _problem(dtype)
    opt = getattr(pyoptk, name)(params, **hyper)
    for step_grads in grads:
        opt.step(step_grads)
    return params, opt


def _run_gpu(name, hyper, dtype, grad_steps=slice(0, STEPS), params=None, checkpoint=None):
    """GPU params (from `params`, else the problem's) stepped over grads[grad_steps], after
    loading `checkpoint` when given."""
    start, grads = _problem(dtype)
    dev_params = [cuda.from_numpy(p) for p in (params if params is not None else start)]
    opt = getattr(pyoptk, name)(dev_params, **hyper)
    if checkpoint is not None:
        opt.load_state_dict(checkpoint)
    for step_grads in grads[grad_steps]:
        opt.step([cuda.from_numpy(g) for g in step_grads])
    return dev_params, opt


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("case", SINGLE_PASS, ids=lambda c: c[0] + "-" + ",".join(map(str, c[1].items())))
def test_optimizers_on_gpu_arrays_match_the_host_bit_for_bit(case, dtype):
    name, hyper = case
    host_params, host_opt = _run_host(name, hyper, dtype)
    dev_params, dev_opt = _run_gpu(name, hyper, dtype)
    assert dev_opt._plan is not None, "steady-state GPU steps go through the cached device plan"
    for i, (hp, dp) in enumerate(zip(host_params, dev_params)):
        assert_bit_identical(hp, dp.to_numpy(), f"{name} param {i}")
    host_sd, dev_sd = host_opt.state_dict(), dev_opt.state_dict()
    for key, state in dev_sd["state"].items():
        for k, v in state.items():
            if isinstance(v, np.ndarray):
                assert_bit_identical(host_sd["state"][key][k], v, f"{name} state {key} {k}")
            else:
                assert v == host_sd["state"][key][k]


@needs_gpu
@pytest.mark.parametrize("case", [c for c in SINGLE_PASS if c[0] in ("Adam", "SGD", "NAdam", "ASGD")])
def test_gpu_checkpoints_are_host_arrays_and_resume_exactly(case):
    name, hyper = case
    half = STEPS // 2
    straight, _ = _run_gpu(name, hyper, np.float32)
    first, opt = _run_gpu(name, hyper, np.float32, slice(0, half))
    saved = copy.deepcopy(opt.state_dict())
    arrays = [v for s in saved["state"].values() for v in s.values() if not np.isscalar(v)]
    assert arrays and all(isinstance(v, np.ndarray) for v in arrays), "checkpoints hold host NumPy arrays"
    resumed, opt2 = _run_gpu(name, hyper, np.float32, slice(half, STEPS), [p.to_numpy() for p in first], saved)
    assert all(isinstance(v, cuda.DeviceArray) for s in opt2.state.values() for v in s.values() if not np.isscalar(v))
    for i, (a, b) in enumerate(zip(straight, resumed)):
        assert_bit_identical(a.to_numpy(), b.to_numpy(), f"{name} resumed param {i}")


@needs_gpu
def test_device_arrays_round_trip_and_export():
    a = np.arange(10, dtype=np.float32)
    d = cuda.from_numpy(a)
    assert d.shape == (10,) and d.dtype == np.float32 and d.size == 10 and d.nbytes == 40
    np.testing.assert_array_equal(d.to_numpy(), a)
    cai = d.__cuda_array_interface__
    assert cai["shape"] == (10,) and cai["typestr"] == "<f4" and cai["data"][0] == d.data_ptr
    assert d.__dlpack_device__() == (2, d.device)
    assert (cuda.full((2, 3), np.float64, 1.5).to_numpy() == 1.5).all()
    pieces = _core.cuda.pieces([(3,), (5, 2), (0,)], np.float32, 0.0, 0)
    assert all(p.data_ptr % 256 == 0 for p in pieces) and [p.shape for p in pieces] == [(3,), (5, 2), (0,)]
    with pytest.raises(TypeError, match="float32 or float64"):
        cuda.empty((3,), np.int32)


@needs_gpu
def test_bad_gpu_input_is_refused_by_name_and_changes_nothing():
    p = cuda.from_numpy(np.ones(8, np.float32))
    opt = pyoptk.Adam([p], lr=0.1)
    opt.step([cuda.from_numpy(np.ones(8, np.float32))])
    before = (p.to_numpy(), copy.deepcopy(opt.state_dict()))
    bad = [([cuda.from_numpy(np.ones(7, np.float32))], ValueError, "param 0 grad has shape"),
           ([cuda.from_numpy(np.ones(8, np.float64))], TypeError, "param 0 grad has dtype float64"),
           ([np.ones(8, np.float32)], TypeError, "param 0 grad is a host numpy.ndarray, expected a CUDA array"),
           ([FakeCudaArray(p.data_ptr, (8,))], ValueError, "share memory"),
           ([FakeCudaArray(p.data_ptr, (2, 4), strides=(4, 8))], ValueError, "not C-contiguous")]
    for grads, error, message in bad:
        with pytest.raises(error, match=message):
            opt.step(grads)
        np.testing.assert_array_equal(p.to_numpy(), before[0])
        after = opt.state_dict()
        for k, v in before[1]["state"][0].items():
            np.testing.assert_array_equal(after["state"][0][k], v)
    with pytest.raises(ValueError, match="read-only"):
        pyoptk.SGD([FakeCudaArray(p.data_ptr, (8,), readonly=True)], lr=0.1)


@needs_gpu
def test_torch_cuda_tensors_are_updated_in_place_through_dlpack():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(1000).astype(np.float32)
    grads = [rng.standard_normal(1000).astype(np.float32) for _ in range(5)]
    tp = torch.tensor(p0, device="cuda", requires_grad=True)
    ref = torch.optim.Adam([tp], lr=1e-2, fused=True)
    mine = torch.tensor(p0, device="cuda")
    opt = pyoptk.Adam([mine], lr=1e-2)
    for g in grads:
        tp.grad = torch.tensor(g, device="cuda")
        ref.step()
        opt.step([torch.tensor(g, device="cuda")])
    # torch's fused CUDA Adam divides by sqrt(bc2) where pyoptk multiplies by its reciprocal.
    np.testing.assert_allclose(mine.cpu().numpy(), tp.detach().cpu().numpy(), rtol=2e-6, atol=1e-7)
    assert isinstance(opt.state[mine]["exp_avg"], cuda.DeviceArray)
    assert torch.from_dlpack(opt.state[mine]["exp_avg"]).device.type == "cuda"
