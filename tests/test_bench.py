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


def test_pyoptk_help_explains_and_runs_nothing(capsys):
    from pyoptk import __main__ as job

    with pytest.raises(SystemExit) as done:
        job.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "usage: pyoptk" in out and "--no-bench" in out and "Least squares" not in out


def test_pyoptk_bench_help(capsys):
    with pytest.raises(SystemExit) as done:
        bench.main(["--help"])
    assert done.value.code == 0 and "--shapes" in capsys.readouterr().out


def test_pyoptk_command_line_help_in_a_subprocess(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pyoptk", "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "usage: pyoptk" in done.stdout


def test_table_is_explained_and_noisy_rows_and_missing_peers_are_named(capsys, monkeypatch):
    monkeypatch.setattr(bench, "missing_peers", lambda peers: {p: "torch" for p in peers if p.startswith("torch")})
    monkeypatch.setattr(bench, "NOISY_IQR_PCT", -1.0)  # every row counts as noisy
    bench.main(["--algos", "sgd", "--sizes", "100", "--layouts", "one", "--threads", "1", "--reps", "2",
                "--min-time", "0", "--quiet"])
    out = capsys.readouterr().out
    assert "> 1: pyoptk is faster" in out and "% roofline" in out and "'arenaN'" in out
    assert "noisy |" in out and "rows noisy" in out
    assert "not run: torch-fused, torch-foreach, torch-forloop (torch is not installed; add it with: pip install torch" in out


def test_progress_lines_when_not_a_terminal(capsys):
    bench.run(["sgd"], [100], ["one", "2"], [1], reps=1, peers=["numpy"], min_time=0.0, progress=True)
    err = capsys.readouterr().err
    assert err.splitlines() == ["[1/2] sgd 1e+02 one 1 thread(s)", "[2/2] sgd 1e+02 2 1 thread(s)"]


def test_a_list_of_shapes_is_a_layout(tmp_path, capsys):
    shapes = [(3, 5), (7,), (2, 2, 2)]
    rows = bench.run(["adam"], [10 ** 6], [shapes], [1], reps=1, peers=["numpy"], min_time=0.0, progress=False)
    assert {r["layout"] for r in rows} == {"shapes3"} and {r["elements"] for r in rows} == {15 + 7 + 8}
    assert [a.shape for a in bench.make_arrays(0, shapes, np.float32, 0)] == shapes
    assert bench.parse_shapes("3x5,7,2x2x2") == shapes
    path = tmp_path / "shapes.json"
    path.write_text(json.dumps([list(s) for s in shapes]))
    out = tmp_path / "rows.json"
    bench.main(["--algos", "sgd", "--layouts", "", "--shapes", f"@{path}", "--threads", "1", "--reps", "1",
                "--min-time", "0", "--peers", "numpy", "--json", str(out), "--quiet"])
    saved = json.loads(out.read_text())
    assert {r["layout"] for r in saved["rows"]} == {"shapes3"}
    env = saved["environment"]
    assert env["pyoptk"] and env["numpy"] == np.__version__ and env["cpu"] and env["isa"] in env["available_isas"]
    assert env["default_threads"] >= 1 and env["date"]


def test_optional_dependencies_are_checked_before_running(monkeypatch):
    real = bench.importlib.util.find_spec
    monkeypatch.setattr(bench.importlib.util, "find_spec",
                        lambda name: None if name in ("matplotlib", "torch") else real(name))
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("ran before refusing"))
    for argv in (["--plot", "x.png"], ["--peers", "numpy,torch-fused"], ["--model", "torch.nn:Linear"]):
        with pytest.raises(SystemExit):
            bench.main(argv)


def test_torch_forloop_is_a_default_peer():
    assert "torch-forloop" in bench.DEFAULT_PEERS and bench.parser().get_default("peers").count("torch") == 3
