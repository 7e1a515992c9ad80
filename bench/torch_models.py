"""pyoptk.torch.AdamW against torch.optim.AdamW (fused / foreach / for-loop) on real models:
(a) 200 x Linear(64, 64), (b) TransformerEncoder, 6 layers, d_model 256, (c) a small ResNet-style
CNN. Two figures each: the optimizer step alone (grads from one backward, kept), and the whole
training step (zero_grad(set_to_none=True), forward, backward, step). 1 and 2 threads.

Implementations are interleaved round by round in one process; medians over rounds, and the
ratio to torch fused. Beside them runs the memory roofline of the same step: pyoptk's stream
probe over arrays shaped like the model's, with AdamW's bytes. Its time bounds every
implementation's (the % column), and torch fused's time over it is the largest ratio to torch
fused that any step with these bytes can reach on this machine. The line above each table counts
the grads that are subnormal and those whose squares are (or underflow): IEEE arithmetic on them
costs extra on x86 (bench/subnormal.py measures it on this model's grads), the probe's 1e-3 grads do not.
Usage: python bench/torch_models.py [--rounds 7] [--json out.json]
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch

import pyoptk
import pyoptk.bench
import pyoptk.torch

class NumpyGlue:
    """What a user writes without pyoptk.torch: pyoptk.AdamW over NumPy views of the params,
    fed ``[p.grad.numpy() ...]`` every step (the glue the issue measured at ~1.6 us per tensor)."""

    def __init__(self, params):
        self.params = list(params)
        self.opt = pyoptk.AdamW([p.detach().numpy() for p in self.params], lr=1e-3)

    def step(self):
        self.opt.step([None if p.grad is None else p.grad.numpy() for p in self.params])

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None


class Roofline:
    """The memory ceiling of an AdamW step on these params: the stream probe (ops/stream.h) reads
    param, grad and two states and writes param and the states, the bytes AdamW moves, through
    the same driver and plans as the optimizers (so the NumPy API's fixed cost per tensor is in
    it). Its own arrays (NumPy copies), so it starts each round as cold as the others do. No
    training step: it has none."""

    def __init__(self, params):
        arrays = [p.detach().numpy().copy() for p in params]
        # Grads written, not np.zeros: untouched zero pages read from one cached page, not memory.
        self.step = pyoptk.bench._stream(2, arrays, [np.full_like(a, 1e-3) for a in arrays])


ROOFLINE = "roofline (stream probe, AdamW's bytes)"
IMPLS = {
    "pyoptk.torch": lambda ps: pyoptk.torch.AdamW(ps, lr=1e-3),
    "pyoptk NumPy API + glue": NumpyGlue,
    "torch fused": lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True),
    "torch foreach": lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True),
    "torch for-loop": lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=False),
    ROOFLINE: Roofline,
}


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)
        self.conv2, self.bn2 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


def models():
    """(name, model factory, input batch, tensors, elements)."""
    def linears():
        return torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(200)])

    def transformer():
        layer = torch.nn.TransformerEncoderLayer(256, 8, dim_feedforward=1024, dropout=0.0, batch_first=True)
        return torch.nn.TransformerEncoder(layer, 6, enable_nested_tensor=False)

    def cnn():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), Block(32), Block(32),
                                   torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.ReLU(), Block(64),
                                   Block(64), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10))
    return [("200 x Linear(64,64)", linears, lambda: torch.randn(32, 64)),
            ("TransformerEncoder 6 x 256", transformer, lambda: torch.randn(4, 32, 256)),
            ("ResNet-style CNN", cnn, lambda: torch.randn(8, 3, 32, 32))]


def grads_of_one_backward(make_model, make_input):
    """The grads of a fresh model (seed 0) after one backward on its input, flattened into one tensor."""
    torch.manual_seed(0)
    model, x = make_model(), make_input()
    model(x).square().mean().backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def subnormal_grads(make_model, make_input):
    """Percent of the grads of one backward that are subnormal, and whose squares are (or underflow
    to zero): where IEEE arithmetic meets subnormal numbers in AdamW's exp_avg and exp_avg_sq."""
    g = grads_of_one_backward(make_model, make_input).abs()
    tiny = torch.finfo(torch.float32).tiny
    return 100 * ((g > 0) & (g < tiny)).float().mean().item(), 100 * ((g > 0) & (g * g < tiny)).float().mean().item()


def training_step(model, opt, x):
    opt.zero_grad(set_to_none=True)
    model(x).square().mean().backward()
    opt.step()


def set_up(make_model, make_input, impls, threads):
    """The input and, per implementation, a fresh model (same seed) and its optimizer after one
    backward and step (state and plans built), at ``threads`` threads for torch and pyoptk."""
    torch.set_num_threads(threads)
    pyoptk.set_num_threads(threads)
    torch.manual_seed(0)
    x = make_input()
    setups = {}
    for name, make_opt in impls.items():
        torch.manual_seed(0)
        model = make_model()
        opt = make_opt(list(model.parameters()))
        model(x).square().mean().backward()  # no zero_grad: the roofline probe has none
        opt.step()
        setups[name] = (model, opt)
    return x, setups


def measure(make_model, make_input, threads, rounds, step_reps):
    x, setups = set_up(make_model, make_input, IMPLS, threads)
    step_t = {n: [] for n in IMPLS}
    train_t = {n: [] for n in IMPLS}
    for _ in range(rounds):
        for name, (model, opt) in setups.items():  # interleaved: one measurement of each per round
            t0 = time.perf_counter()
            for _ in range(step_reps):
                opt.step()
            step_t[name].append((time.perf_counter() - t0) / step_reps)
            if name == ROOFLINE:
                continue
            t0 = time.perf_counter()
            training_step(model, opt, x)
            train_t[name].append(time.perf_counter() - t0)
    return {n: (statistics.median(step_t[n]), statistics.median(train_t[n]) if train_t[n] else None)
            for n in IMPLS}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--step-reps", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json")
    args = ap.parse_args()
    out = []
    for label, make_model, make_input in models():
        m = make_model()
        tensors, elements = len(list(m.parameters())), sum(p.numel() for p in m.parameters())
        subnormal, squares = subnormal_grads(make_model, make_input)
        for threads in args.threads:
            res = measure(make_model, make_input, threads, args.rounds, args.step_reps)
            fused, roof = res["torch fused"], res[ROOFLINE][0]
            print(f"\n{label}: {tensors} tensors, {elements} elements, {threads} thread(s); "
                  f"roofline {28 * elements / roof / 1e9:.1f} GB/s, so at most {fused[0] / roof:.2f}x torch fused; "
                  f"grads {subnormal:.1f}% subnormal, {squares:.1f}% with squares below the normal range")
            print("| AdamW | step alone (ms) | vs torch fused | % of roofline | training step (ms) | vs torch fused |")
            print("|---|---|---|---|---|---|")
            for name, (s, t) in res.items():
                train = "– | –" if t is None else f"{t * 1e3:.2f} | {fused[1] / t:.2f}x"
                print(f"| {name} | {s * 1e3:.3f} | {fused[0] / s:.2f}x | {100 * roof / s:.0f}% | {train} |")
                out.append(dict(model=label, threads=threads, impl=name, step_s=s, train_s=t))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
