#!/usr/bin/env bash
# Reproduces the tables in bench/RESULTS.md (about 15 minutes on 2 cores; needs ~8 GB of RAM for
# the 1e8-element runs). Peers are used when installed: pip install torch==2.13.0 deepspeed
set -euo pipefail
out=${1:-bench/out}
mkdir -p "$out"
bench() { pyoptk-bench --quiet "$@"; }
# Adam against every peer: one array, many arrays, arenas (the reference table).
bench --algos adam --sizes 1e6,1e7 --layouts one,200,arena200 --threads 1,2 --reps 15 \
  --peers numpy,torch-fused,torch-foreach,deepspeed --json "$out/adam.json" > "$out/adam.md"
bench --algos adam --sizes 1e4 --layouts 200,arena200 --threads 1,2 --reps 15 \
  --peers numpy,torch-fused,torch-foreach,deepspeed --json "$out/adam_small.json" > "$out/adam_small.md"
bench --algos adam --sizes 1e6 --layouts 10000,arena10000 --threads 1,2 --reps 9 \
  --peers torch-fused,deepspeed --json "$out/adam_10k.json" > "$out/adam_10k.md"
bench --algos adam --sizes 1e8 --layouts one --threads 1,2 --reps 7 --min-time 0.2 \
  --peers torch-fused,deepspeed --json "$out/adam_1e8.json" > "$out/adam_1e8.md"
# Every element-wise algorithm against torch (fused where torch has it, else foreach).
bench --algos all --sizes 1e6 --layouts one --threads 1,2 --reps 9 \
  --peers torch-fused,torch-foreach --json "$out/all_1e6.json" > "$out/all_1e6.md"
bench --algos all --sizes 1e8 --layouts one --threads 1,2 --reps 5 --min-time 0.2 \
  --peers torch-fused,torch-foreach --json "$out/all_1e8.json" > "$out/all_1e8.md"
# The algorithms that are not one dense stream: against torch's (only) implementation.
bench --algos sparse_adam,muon,lbfgs --sizes 1e6 --layouts one,20 --threads 1,2 --reps 7 \
  --peers torch-forloop --json "$out/special.json" > "$out/special.md"
