"""pyoptk.distributed over MPI on localhost: the checks themselves run in tests/distributed_worker.py
under ``mpiexec -n 2`` / ``-n 3``, each launch with a timeout so a bug can fail but never hang.
Skipped (with the reason) where mpi4py or mpiexec is missing; CI installs both (pyoptk[mpi])."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
WORKER = HERE / "distributed_worker.py"
EXAMPLE = HERE.parent / "examples" / "distributed" / "train.py"
TIMEOUT = 240  # per launch; each takes a few seconds here (more under the sanitizers)


def _mpiexec() -> str | None:
    beside = pathlib.Path(sys.executable).parent / "mpiexec"  # pip's mpich installs it in the venv
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def launch(ranks: int | None, script: pathlib.Path, *args: str, cwd: pathlib.Path = HERE,
           runner: bool = True) -> subprocess.CompletedProcess:
    """``mpiexec -n ranks python -m mpi4py script args`` (``-m mpi4py``: one rank's uncaught
    exception aborts the job; runner False: plain ``python``); ranks None: a plain single process."""
    pytest.importorskip("mpi4py", reason="pyoptk.distributed needs mpi4py (pip install 'pyoptk[mpi]')")
    mpiexec = _mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec (pip install mpich, or a system MPI)")
    python = [sys.executable, *(["-m", "mpi4py"] if runner else []), str(script), *args]
    cmd = python if ranks is None else [mpiexec, "-n", str(ranks), *python]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


def ran_ok(done: subprocess.CompletedProcess, ranks: int, mode: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    for r in range(ranks):
        assert f"rank {r} ok: {mode}" in done.stdout, output[-6000:]


@pytest.mark.parametrize("ranks", [2, 3])
def test_every_element_wise_algorithm_matches_one_process_bit_for_bit_and_faults_raise_everywhere(ranks):
    """parity: 15 algorithms x (float32, bf16 + master weights, bf16 + float32 state), two groups
    with their own lr, StepLR, uneven shards, params split across ranks, one bucket or many,
    mean and sum: params and consolidated state equal to one process's, state split 1/N.
    faults: mismatched param count / shape / dtype, an invalid lr on one rank, LAMB, a grad of
    the wrong shape, a None grad or an lr on one rank only: the same error on every rank,
    nothing changed, and the next good step still matches; a param whose grad is None on every
    rank is skipped as on one process."""
    ran_ok(launch(ranks, WORKER, "parity+faults"), ranks, "parity+faults")


def test_checkpoint_saved_on_2_ranks_loads_on_3_then_into_one_plain_optimizer(tmp_path):
    for ranks in (2, 3):
        ran_ok(launch(ranks, WORKER, "ckpt", str(tmp_path)), ranks, "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt-3").iterdir()) == [
        f"rank{r}-of-3.{ext}" for r in range(3) for ext in ("index.pkl", "npz")]
    ran_ok(launch(None, WORKER, "ckpt-single", str(tmp_path)), 1, "ckpt-single")


@pytest.mark.parametrize("runner", [True, False], ids=["python-m-mpi4py", "plain-python"])
@pytest.mark.parametrize("how", ["exit", "raise"])
def test_a_rank_that_dies_ends_the_job_instead_of_hanging(how, runner):
    """The last rank exits (as a crash would) or raises before the second step, the others block
    in it: mpiexec (MPICH's hydra) kills them and exits non-zero (printing its "BAD TERMINATION
    OF ONE OF YOUR APPLICATION PROCESSES" banner); no rank finishes the step. An exception ends
    the job under ``python -m mpi4py`` (which calls MPI_Abort) and under plain ``python`` too:
    ShardedOptimizer installs an excepthook that aborts (without it the others would wait in the
    step forever: the launch's timeout would fail this test)."""
    done = launch(3, WORKER, "die", how, runner=runner)
    assert done.returncode != 0
    assert "unreachable" not in done.stdout
    if how == "raise":
        # The raising rank's traceback is shown. Not asserted: its last line (the message), which
        # hydra sometimes drops, forwarding output no more once MPI_Abort has ended the job.
        assert "Traceback (most recent call last)" in done.stderr and "distributed_worker.py" in done.stderr


def test_the_readme_example_trains_on_2_ranks(tmp_path):
    done = launch(2, EXAMPLE, str(tmp_path / "ckpt"), cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "fitted on 2 ranks" in done.stdout
    assert (tmp_path / "ckpt" / "rank1-of-2.npz").exists()


def test_pyoptk_never_imports_mpi4py_and_distributed_says_what_to_install():
    code = ("import sys; import pyoptk; assert 'mpi4py' not in sys.modules, 'import pyoptk imported mpi4py'\n"
            "sys.modules['mpi4py'] = None  # as if it were not installed\n"
            "try:\n    import pyoptk.distributed\nexcept ImportError as e:\n    print(e)\n"
            "else:\n    raise SystemExit('no ImportError')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=HERE)
    assert done.returncode == 0, done.stderr
    assert "pip install 'pyoptk[mpi]'" in done.stdout and "mpi4py" in done.stdout


def test_layout_balances_bytes_and_covers_every_element_once():
    pytest.importorskip("mpi4py", reason="pyoptk.distributed needs mpi4py (pip install 'pyoptk[mpi]')")
    import ml_dtypes
    import numpy as np
    from pyoptk.distributed._layout import Layout

    sizes = [21, 1, 50, 32, 33, 1000]
    dtypes = [np.float32, np.float32, ml_dtypes.bfloat16, np.float64, np.float32, ml_dtypes.bfloat16]
    for world in (1, 2, 3, 7):
        for bucket_bytes in (64, 1000, 1 << 20):
            layout = Layout(sizes, dtypes, world, bucket_bytes)
            covered = {i: [] for i in range(len(sizes))}
            shard_bytes = []
            for r in range(world):
                pieces = layout.shard(r)
                shard_bytes.append(sum(p.size * np.dtype(dtypes[p.index]).itemsize for p in pieces))
                for p in pieces:
                    covered[p.index].append((p.lo, p.hi))
            for i, spans in covered.items():
                spans.sort()
                assert spans[0][0] == 0 and spans[-1][1] == sizes[i]
                assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
            # Balanced to within one element (8 bytes at most) of an equal split.
            assert max(shard_bytes) - min(shard_bytes) <= 2 * 8, (world, shard_bytes)
