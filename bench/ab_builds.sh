#!/usr/bin/env bash
# Kernel speed and per-array fixed cost of two installs of pyoptk, in alternating processes
# (A, B, A, B, ...), so that drift hits both alike: compare medians across the rounds.
#   bash bench/ab_builds.sh VENV_A VENV_B [ROUNDS] [OUT]
set -euo pipefail
a=$(cd "$1" && pwd); b=$(cd "$2" && pwd); rounds=${3:-3}; out=${4:-$(mktemp -d)}
fixed=$(cd "$(dirname "$0")" && pwd)/fixed_cost.py
mkdir -p "$out"; cd "$out"   # outside any source tree: the installed pyoptk is imported
for r in $(seq "$rounds"); do
  for v in a b; do
    venv=$a; [[ $v == b ]] && venv=$b
    "$venv/bin/pyoptk-bench" --quiet --algos adam,sgd-momentum --sizes 1e5,1e7 --layouts one,200 \
      --threads 1,2 --reps 5 --peers numpy --json "$out/bench_${v}_$r.json" > "$out/bench_${v}_$r.md"
    "$venv/bin/python" "$fixed" > "$out/fixed_${v}_$r.md"
  done
done
echo "$out"
