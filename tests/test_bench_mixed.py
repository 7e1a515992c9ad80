"""pyoptk-bench --dtype / --state-dtype and pyoptk.bench.mixed_adam wiring (tiny sizes: not speed)."""
import importlib.util
import json

import pytest

from pyoptk import bench


@pytest.mark.parametrize("dtype,state,want", [("bfloat16", "float32", 22), ("bfloat16", None, 14), ("float16", None, 14),
                                              ("float32", "bfloat16", 20)])
def test_cli_runs_16bit_layouts_with_their_byte_counts(tmp_path, capsys, dtype, state, want):
    out = tmp_path / "rows.json"
    # A peer named in --peers must be installed (the CLI refuses it up front otherwise).
    peer = "torch-fused" if importlib.util.find_spec("torch") is not None else "numpy"
    args = ["--algos", "adam", "--sizes", "1000", "--layouts", "one", "--threads", "1", "--reps", "2",
            "--min-time", "0", "--peers", peer, "--dtype", dtype, "--json", str(out), "--quiet"]
    bench.main(args + (["--state-dtype", state] if state else []))
    assert "| adam |" in capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    mine = {r["impl"]: r for r in rows}
    assert mine["pyoptk"]["bytes_per_element"] == mine["roofline"]["bytes_per_element"] == want
    assert mine["pyoptk"]["dtype"] == dtype and mine["pyoptk"]["state_dtype"] == (state or dtype)
    torch = pytest.importorskip("torch")
    # 16-bit params: torch's fused kernel keeps its state in the param dtype, so it runs beside
    # pyoptk only in that layout; float32 params keep their usual peers.
    assert ("torch-fused" in mine) == (dtype == "float32" or state is None), torch.__version__


def test_bytes_per_element():
    assert bench.bytes_per_element("adam", 4) == 28
    assert bench.bytes_per_element("adam", 2, 4) == 22
    assert bench.bytes_per_element("adam", 2) == 14
    assert bench.bytes_per_element("sgd-momentum", 2, 4) == 14


def _mixed_adam():
    from pyoptk.bench import mixed_adam

    return mixed_adam


def test_checkout_runner_runs_the_library_module():
    """bench/mixed_adam.py (bench/RESULTS.md's command) is a runner of pyoptk.bench.mixed_adam."""
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "mixed_adam.py"
    spec = importlib.util.spec_from_file_location("mixed_adam_runner", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main is _mixed_adam().main


def test_mixed_adam_skips_deepspeed_with_its_reason(monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    monkeypatch.setitem(__import__("sys").modules, "deepspeed.ops.adam", None)  # its import: ImportError
    assert _mixed_adam().deepspeed_steppers(torch, 100) == {}
    out = capsys.readouterr().out
    assert out.startswith("deepspeed peer skipped: ModuleNotFoundError: ") and out.endswith("(pip install deepspeed)\n"), out


def test_mixed_adam_deepspeed_peer_in_its_three_layouts():
    """DeepSpeed's CPU Adam in the layouts it has kernels for, each a working step (it JIT-builds
    its op on first use: slow once)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("deepspeed")
    steps = _mixed_adam().deepspeed_steppers(torch, 1000)
    assert sorted(steps) == ["deepspeed all-bf16", "deepspeed bf16+fp32-state", "deepspeed fp32"]
    for step in steps.values():
        step()
    import numpy as np

    rows = bench.make_steppers("adam", 1000, "one", bench.dtype_of("bfloat16"), ["deepspeed"], state_dtype="float32")
    assert "deepspeed" in rows and np.dtype(bench.dtype_of("bfloat16")).itemsize == 2
    rows["deepspeed"]()


def test_mixed_adam_runs_every_16bit_layout_against_its_probe(tmp_path, monkeypatch, capsys):
    """Every layout (float16 ones included), its bytes, a probe for each layout without master
    weights, and the ratio to float32; --no-peers runs pyoptk alone (issue #23's before/after)."""
    import sys

    module = _mixed_adam()
    out = tmp_path / "rows.json"
    monkeypatch.setattr(sys, "argv", ["mixed_adam", "--size", "1000", "--threads", "1", "--reps", "1", "--no-peers",
                                      "--json", str(out)])
    module.main()
    rows = {r["impl"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {f"pyoptk {n}" for n in module.LAYOUTS} | \
        {f"roofline {n}" for n, (_, _, master, _) in module.LAYOUTS.items() if not master}
    for name, (_, _, master, nbytes) in module.LAYOUTS.items():
        r = rows[f"pyoptk {name}"]
        assert r["bytes_per_element"] == nbytes
        assert (r["pct_of_roofline"] is None) == master, name  # master weights: no probe
    assert rows["pyoptk fp32"]["speedup_vs_pyoptk_fp32"] == 1.0
    assert "| pyoptk all-f16 | 14 |" in capsys.readouterr().out


def test_mixed_adam_refuses_an_unknown_layout(monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys, "argv", ["mixed_adam", "--layouts", "all-bf16,bf8"])
    with pytest.raises(SystemExit):
        _mixed_adam().main()
    assert "unknown layout(s) ['bf8']" in capsys.readouterr().err
