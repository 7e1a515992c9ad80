"""The flushing mode (FTZ/DAZ) of the calling thread is the one every worker thread steps in.

OpenMP workers inherit the FP control word once, when the pool starts. Before the fix, a caller
that had flushing on for its first multi-threaded step (torch.set_flush_denormal(True)) left the
workers flushing for good: later 2-thread steps in the default (IEEE) mode flushed the workers'
part of the arrays and differed from 1-thread ones. Run in a fresh process, so that the step
under test is the one that starts the pool.
"""
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")

SCRIPT = textwrap.dedent("""
    import numpy as np
    import torch
    import pyoptk
    from pyoptk import _core

    _core._set_min_parallel(0)
    n = 1 << 14
    tiny = np.float32(1e-41)  # subnormal: flushed to 0 under FTZ/DAZ
    def run(threads, isa):
        pyoptk.set_isa(isa)
        pyoptk.set_num_threads(threads)
        p = np.full(n, tiny, np.float32)
        g = np.full(n, tiny, np.float32)
        opt = pyoptk.SGD([p], lr=0.5, momentum=0.5)
        opt.step([g]); opt.step([g])
        norm = pyoptk.clip.clip_grad_norm_([g.copy()], max_norm=1e30)
        return p, opt.state[p]["momentum_buffer"], float(norm)

    for isa in pyoptk.available_isas():
        torch.set_flush_denormal(True)      # the caller flushes: so does every worker
        p_ftz, m_ftz, n_ftz = run(2, isa)
        p1, m1, n1 = run(1, isa)
        assert not p_ftz.any() and not m_ftz.any(), isa
        assert np.array_equal(p_ftz.view(np.uint32), p1.view(np.uint32)), isa
        torch.set_flush_denormal(False)     # back to IEEE: so is every worker
        p2, m2, n2 = run(2, isa)
        p1, m1, n1 = run(1, isa)
        assert p1.any() and m1.any(), isa   # subnormals kept
        assert np.array_equal(p2.view(np.uint32), p1.view(np.uint32)), f"{isa}: 2 threads differ from 1"
        assert np.array_equal(m2.view(np.uint32), m1.view(np.uint32)), f"{isa}: 2 threads differ from 1"
        assert n2 == n1 and n1 > 0, (isa, n1, n2)
    print("ok")
""")


def test_workers_step_in_the_callers_flushing_mode():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
