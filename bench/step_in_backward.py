"""The step inside the backward (issue 25): whole training steps (zero_grad, forward, backward,
step) of AdamW on the three models of bench/torch_models.py and an embedding-dominated one, for

- torch fused: ``torch.optim.AdamW(fused=True)``, the ordinary loop;
- torch in-backward recipe: torch's documented one (one ``AdamW(foreach=False)`` per param,
  stepped and zeroed from ``register_post_accumulate_grad_hook``);
- pyoptk.torch: ``pyoptk.torch.AdamW``, the ordinary loop;
- pyoptk.torch in backward: ``pyoptk.torch.AdamW(step_in_backward=True)``;
- forward + backward alone (grads dropped, no optimizer): what the others add their step to.

Each implementation trains in a process of its own, as a user's run does (default): per round,
one fresh process per implementation, in an order rotated round by round, warms up, then times
``--steps`` training steps; it reports their median, its peak RSS (VmHWM) and its page faults per
step. The table gives the medians over rounds. In one process the implementations would share
glibc's heap: one's freed grads would serve another's allocations, which no single training run
sees (``--in-process`` still measures that way, interleaved round by round, as the first tables
in bench/RESULTS.md did). The optimizer's share of a training step is its time minus that of
forward + backward alone. 1 and 2 threads. Run under the shared lock:

    flock /tmp/pyoptk-bench.lock python bench/step_in_backward.py [--rounds 7] [--json out.json]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

import pyoptk
import pyoptk.torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import models as torch_models, set_up, training_step  # noqa: E402

LR = 1e-3


class TorchRecipe:
    """torch's "optimizer in backward" recipe (pytorch.org tutorial
    "How to save memory by fusing the optimizer step into the backward pass")."""

    def __init__(self, params):
        self.opts = {}
        for p in params:
            self.opts[p] = torch.optim.AdamW([p], lr=LR, foreach=False)
            p.register_post_accumulate_grad_hook(self.hook)

    def hook(self, p):
        self.opts[p].step()
        self.opts[p].zero_grad()

    def step(self):
        pass

    def zero_grad(self, set_to_none=True):
        pass


class NoStep:
    """Forward + backward only: the grads are dropped, nothing is stepped."""

    def __init__(self, params):
        self.params = list(params)

    def step(self):
        pass

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None


class InBackward:
    def __init__(self, params):
        self.opt = pyoptk.torch.AdamW(params, lr=LR, step_in_backward=True)

    def step(self):  # the loop's step() and zero_grad() only mark the step boundary: skipped here
        pass

    def zero_grad(self, set_to_none=True):
        pass


BASE = "forward + backward alone"
IMPLS = {
    "torch fused": lambda ps: torch.optim.AdamW(ps, lr=LR, fused=True),
    "torch in-backward recipe": TorchRecipe,
    "pyoptk.torch": lambda ps: pyoptk.torch.AdamW(ps, lr=LR),
    "pyoptk.torch in backward": InBackward,
    BASE: NoStep,
}


class EmbeddingMLP(torch.nn.Module):
    """A model whose params are mostly one embedding table (dense grads, as nn.Embedding's default)."""

    def __init__(self, rows, dim=64):
        super().__init__()
        self.emb = torch.nn.Embedding(rows, dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, 256), torch.nn.ReLU(), torch.nn.Linear(256, dim))

    def forward(self, x):
        return self.mlp(self.emb(x).mean(1))


def all_models(rows):
    out = [(label, make, inp) for label, make, inp in torch_models()]
    gen = torch.Generator().manual_seed(0)
    out.append((f"Embedding {rows:.0e} x 64 + MLP", lambda: EmbeddingMLP(rows),
                lambda: torch.randint(0, rows, (64, 16), generator=gen)))
    return out


def measure(make_model, make_input, threads, rounds):
    """In one process: the implementations interleaved round by round (``--in-process``)."""
    x, setups = set_up(make_model, make_input, IMPLS, threads)
    times = {n: [] for n in IMPLS}
    for _ in range(rounds):
        for name, (model, opt) in setups.items():  # interleaved: one measurement of each per round
            t0 = time.perf_counter()
            training_step(model, opt, x)
            times[name].append(time.perf_counter() - t0)
    return {n: statistics.median(t) for n, t in times.items()}


def isolated(model_index, threads, rounds, steps, rows):
    """Per implementation: the medians over rounds of its own processes' (median step time, peak
    RSS, page faults per step)."""
    names = list(IMPLS)
    runs = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs[name].append(run_child(model_index, name, threads, steps, rows))
    return {n: {k: statistics.median(run[k] for run in rs) for k in rs[0]} for n, rs in runs.items()}


def run_child(model_index, impl, threads, steps, rows):
    """``child`` in a fresh process: its report."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(model_index), impl, str(threads),
           "--steps", str(steps), "--rows", str(rows)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(model_index, impl, threads, steps, rows):
    """One implementation's training run: a fresh model, 3 steps to warm up, then ``steps`` timed."""
    torch.set_num_threads(threads)
    pyoptk.set_num_threads(threads)
    label, make_model, make_input = all_models(rows)[model_index]
    torch.manual_seed(0)
    model = make_model()
    x = make_input()
    opt = IMPLS[impl](list(model.parameters()))
    for _ in range(3):
        training_step(model, opt, x)
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        t0 = time.perf_counter()
        training_step(model, opt, x)
        times.append(time.perf_counter() - t0)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / max(steps, 1)
    print(json.dumps(dict(train_s=statistics.median(times) if times else None, peak_rss_mib=peak_of_this_process(),
                          faults=faults)))


def in_process(model_index, make_model, make_input, threads, rounds, rows, rss):
    """``--in-process``: the timings interleaved in this process; peak RSS from a process each."""
    times = measure(make_model, make_input, threads, rounds)
    return {n: dict(train_s=t, peak_rss_mib=peak_rss(model_index, n, threads, rows) if rss else None, faults=None)
            for n, t in times.items()}


def peak_rss(model_index, impl, threads, rows):
    """The peak resident memory (MiB) of a fresh process that builds the model and runs 3 training steps."""
    return run_child(model_index, impl, threads, 0, rows)["peak_rss_mib"]


def peak_of_this_process():
    """VmHWM (MiB): this process's peak resident memory. Not ru_maxrss, which Linux carries over
    exec from the parent (every child would report the benchmark's own peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per process")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--in-process", action="store_true", help="time all implementations in this process")
    ap.add_argument("--no-rss", action="store_true", help="with --in-process: no peak RSS processes")
    ap.add_argument("--json")
    ap.add_argument("--models", type=int, nargs="+", help="indices of the models to run (default: all)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(int(args.child[0]), args.child[1], int(args.child[2]), args.steps, args.rows)
    how = "in one process" if args.in_process else f"a process per implementation and round, {args.steps} steps each"
    print(f"torch {torch.__version__}, pyoptk ISA {pyoptk.isa()}, {args.rounds} rounds, {how}")
    out = []
    for index, (label, make_model, make_input) in enumerate(all_models(args.rows)):
        if args.models is not None and index not in args.models:
            continue
        m = make_model()
        tensors, elements = len(list(m.parameters())), sum(p.numel() for p in m.parameters())
        del m
        for threads in args.threads:
            if args.in_process:
                res = in_process(index, make_model, make_input, threads, args.rounds, args.rows, not args.no_rss)
            else:
                res = isolated(index, threads, args.rounds, args.steps, args.rows)
            base = res[BASE]["train_s"]
            print(f"\n{label}: {tensors} tensors, {elements} elements ({4 * elements / 2**20:.0f} MiB of float32 "
                  f"grads), {threads} thread(s)")
            print("| AdamW | training step (ms) | optimizer's share (ms) | vs pyoptk.torch | peak RSS (MiB) "
                  "| page faults per step |")
            print("|---|---|---|---|---|---|")
            for name, r in res.items():
                t = r["train_s"]
                share = "–" if name == BASE else f"{(t - base) * 1e3:.2f}"
                rss_text = "–" if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']:.0f}"
                faults = "–" if r["faults"] is None else f"{r['faults']:.0f}"
                print(f"| {name} | {t * 1e3:.2f} | {share} | {res['pyoptk.torch']['train_s'] / t:.2f}x | {rss_text} "
                      f"| {faults} |")
                out.append(dict(model=label, threads=threads, impl=name, **r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
