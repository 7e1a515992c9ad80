"""The benchmark harness runs end to end (tiny sizes: this checks wiring, not speed)."""
import json

import numpy as np
import pytest

from pyoptk import bench


def test_every_algorithm_and_layout_runs_with_its_roofline():
    rows = bench.run(list(bench.ALGOS), [300], ["one", "3", "arena3"], [1], reps=2, peers=["numpy"],
                     min_time=0.0, progress=False)
    seen = {(r["algo"], r["layout"], r["impl"]) for r in rows}
    for algo, spec in bench.ALGOS.items():
        for layout in ("one", "3", "arena3"):
            assert (algo, layout, "pyoptk") in seen and ((algo, layout, "roofline") in seen) == spec.roofline
    assert all(r["ns_per_element"] > 0 for r in rows)
    for r in rows:  # LAMB and LARS add norm passes: no single-stream probe describes them
        has_roofline = r["pct_of_roofline"] is not None and np.isfinite(r["pct_of_roofline"])
        assert has_roofline == bench.ALGOS[r["algo"]].roofline, r["algo"]
    assert all(r["speedup_of_pyoptk"] == 1.0 for r in rows if r["impl"] == "pyoptk")


def test_special_algorithms_run_against_torch_without_a_roofline():
    pytest.importorskip("torch")
    rows = bench.run(list(bench.SPECIAL), [4096], ["2"], [1], reps=2, peers=["torch-forloop"], min_time=0.0,
                     progress=False)
    for algo in bench.SPECIAL:
        impls = {r["impl"]: r for r in rows if r["algo"] == algo}
        assert set(impls) == {"pyoptk", "torch-forloop"}
        assert impls["pyoptk"]["pct_of_roofline"] is None and impls["torch-forloop"]["speedup_of_pyoptk"] > 0
    assert "| lbfgs |" in bench.format_table(rows)


@pytest.mark.parametrize("package", ["pytorch_optimizer", "schedulefree"])
def test_package_peers_run(package):
    pytest.importorskip("torch")
    pytest.importorskip(package)
    algos = [a for a, spec in bench.ALGOS.items() if spec.peer and spec.peer.startswith(package + ":")]
    rows = bench.run(algos, [1000], ["2"], [1], reps=2, peers=[package], min_time=0.0, progress=False)
    for algo in algos:
        assert {r["impl"] for r in rows if r["algo"] == algo} >= {"pyoptk", package}, algo


def test_arena_layout_is_views_of_one_buffer():
    arrays = bench.make_arrays(10, "arena3", np.float32, 0)
    assert [a.size for a in arrays] == [4, 3, 3] and all(a.base is arrays[0].base for a in arrays)


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "rows.json"
    bench.main(["--algos", "sgd", "--sizes", "100", "--layouts", "one", "--threads", "1", "--reps", "2",
                "--min-time", "0", "--peers", "numpy", "--json", str(out), "--quiet"])
    assert "| sgd |" in capsys.readouterr().out
    assert {r["impl"] for r in json.loads(out.read_text())["rows"]} == {"pyoptk", "roofline", "numpy"}


def test_cli_refuses_unknown_names():
    with pytest.raises(SystemExit):
        bench.main(["--algos", "adamz"])
    with pytest.raises(SystemExit):
        bench.main(["--peers", "jax"])
