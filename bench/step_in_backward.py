"""The step inside the backward (issue 25): whole training steps (zero_grad, forward, backward,
step) of AdamW on the three models of bench/torch_models.py and an embedding-dominated one, for

- torch fused: ``torch.optim.AdamW(fused=True)``, the ordinary loop;
- torch in-backward recipe: torch's documented one (one ``AdamW(foreach=False)`` per param,
  stepped and zeroed from ``register_post_accumulate_grad_hook``);
- pyoptk.torch: ``pyoptk.torch.AdamW``, the ordinary loop;
- pyoptk.torch in backward: ``pyoptk.torch.AdamW(step_in_backward=True)``;
- forward + backward alone (grads dropped, no optimizer): what the others add their step to.

Timings are interleaved round by round in one process (medians over rounds); the optimizer's
share of a training step is its time minus that of forward + backward alone. Peak RSS is each
implementation's own process (a fresh one per model and implementation: its VmHWM after 3
training steps). 1 and 2 threads. Run under the shared lock:

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
    x, setups = set_up(make_model, make_input, IMPLS, threads)
    times = {n: [] for n in IMPLS}
    for _ in range(rounds):
        for name, (model, opt) in setups.items():  # interleaved: one measurement of each per round
            t0 = time.perf_counter()
            training_step(model, opt, x)
            times[name].append(time.perf_counter() - t0)
    return {n: statistics.median(t) for n, t in times.items()}


def peak_rss(model_index, impl, threads, rows):
    """The peak resident memory (MiB) of a fresh process that builds the model and runs 3 training steps."""
    cmd = [sys.executable, os.path.abspath(__file__), "--rss", str(model_index), impl, str(threads), "--rows", str(rows)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def rss_child(model_index, impl, threads, rows):
    torch.set_num_threads(threads)
    pyoptk.set_num_threads(threads)
    label, make_model, make_input = all_models(rows)[model_index]
    torch.manual_seed(0)
    model = make_model()
    x = make_input()
    opt = IMPLS[impl](list(model.parameters()))
    for _ in range(3):
        training_step(model, opt, x)
    print(peak_of_this_process())


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
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--models", type=int, nargs="+", help="indices of the models to run (default: all)")
    ap.add_argument("--rss", nargs=3)
    args = ap.parse_args()
    if args.rss:
        return rss_child(int(args.rss[0]), args.rss[1], int(args.rss[2]), args.rows)
    print(f"torch {torch.__version__}, pyoptk ISA {pyoptk.isa()}, {args.rounds} rounds")
    out = []
    for index, (label, make_model, make_input) in enumerate(all_models(args.rows)):
        if args.models is not None and index not in args.models:
            continue
        m = make_model()
        tensors, elements = len(list(m.parameters())), sum(p.numel() for p in m.parameters())
        del m
        for threads in args.threads:
            res = measure(make_model, make_input, threads, args.rounds)
            rss = {n: None if args.no_rss else peak_rss(index, n, threads, args.rows) for n in IMPLS}
            base = res[BASE]
            print(f"\n{label}: {tensors} tensors, {elements} elements ({4 * elements / 2**20:.0f} MiB of float32 "
                  f"grads), {threads} thread(s)")
            print("| AdamW | training step (ms) | optimizer's share (ms) | vs pyoptk.torch | peak RSS (MiB) |")
            print("|---|---|---|---|---|")
            for name, t in res.items():
                share = "–" if name == BASE else f"{(t - base) * 1e3:.2f}"
                rss_text = "–" if rss[name] is None else f"{rss[name]:.0f}"
                print(f"| {name} | {t * 1e3:.2f} | {share} | {res['pyoptk.torch'] / t:.2f}x | {rss_text} |")
                out.append(dict(model=label, threads=threads, impl=name, train_s=t, peak_rss_mib=rss[name]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
