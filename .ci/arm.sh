#!/usr/bin/env bash
# CI, ARM: the C++ core (tests/core: the kernels of every ISA and the CPU driver, no Python)
# cross-built for aarch64 and run under qemu-aarch64 for scalar, NEON and SVE at 128, 256, 512, 1024
# and 2048 bits; each run's hashes (every op x mode x dtype x storage option x odd size x 1 and 2 threads,
# six steps, and every reduction) must equal, byte for byte, those of the same program built for
# x86-64 here and run on its scalar path. The x86 build is also CI's build without OpenMP (the
# automatic fallback: its 2-thread lines run on one thread); the aarch64 build has OpenMP.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends g++-aarch64-linux-gnu qemu-user >/dev/null
fi

rm -rf .ci-core-x86 .ci-core-arm .ci-core-x86.log
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
# x86: a compiler without OpenMP (as Apple's clang), simulated; PYOPTK_OPENMP=AUTO must fall back.
cmake -S tests/core -B .ci-core-x86 -G Ninja "${launcher[@]}" -DCMAKE_DISABLE_FIND_PACKAGE_OpenMP=ON \
  -DPYOPTK_ISAS=avx2 >.ci-core-x86.log 2>&1 || { cat .ci-core-x86.log >&2; exit 1; }
if ! grep -q "pyoptk: OpenMP threads OFF (PYOPTK_OPENMP=AUTO)" .ci-core-x86.log ||
   ! grep -q "brew install libomp" .ci-core-x86.log; then
  echo "ci/arm: no fallback message without OpenMP:" >&2
  cat .ci-core-x86.log >&2
  exit 1
fi
cmake --build .ci-core-x86
if ldd .ci-core-x86/step_hashes | grep -q gomp; then
  echo "ci/arm: the build without OpenMP links OpenMP" >&2
  exit 1
fi
cmake -S tests/core -B .ci-core-arm -G Ninja "${launcher[@]}" -DCMAKE_TOOLCHAIN_FILE="$PWD/tests/core/aarch64-linux-gnu.cmake" \
  -DPYOPTK_OPENMP=ON -DPYOPTK_ISAS="neon;sve128;sve256;sve512;sve1024;sve2048" >/dev/null
cmake --build .ci-core-arm
built=$(date +%s)

out=.ci-core-arm/hashes
mkdir -p "$out"
.ci-core-x86/step_hashes scalar >"$out/reference"
.ci-core-x86/step_hashes avx2 >"$out/x86-avx2" || true  # absent on a CPU without AVX2: reported below
# qemu's -cpu max has SVE; sve-default-vector-length (bytes) is the length a linux-user process
# starts with, which the CPU test reads (prctl), so each run picks the SVE build of that length.
arm="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max"
run() {  # name, qemu options..., isa
  local name=$1 isa=${*: -1}
  $arm"${2:+,$2}" .ci-core-arm/step_hashes "$isa" >"$out/$name"
}
run arm-scalar "" scalar &
run arm-neon "" neon &
wait
run arm-sve128 sve-default-vector-length=16 sve128 &
run arm-sve256 sve-default-vector-length=32 sve256 &
wait
run arm-sve512 sve-default-vector-length=64 sve512 &
run arm-sve1024 sve-default-vector-length=128 sve1024 &
wait
run arm-sve2048 sve-default-vector-length=256 sve2048

cases=$(wc -l <"$out/reference")
failed=0
for name in x86-avx2 arm-scalar arm-neon arm-sve128 arm-sve256 arm-sve512 arm-sve1024 arm-sve2048; do
  if cmp -s "$out/reference" "$out/$name"; then
    echo "ci/arm: $name: $cases cases bit-identical to x86 scalar"
  else
    echo "ci/arm: $name differs from x86 scalar in $(diff "$out/reference" "$out/$name" | grep -c '^>') of $cases cases:" >&2
    diff "$out/reference" "$out/$name" | head -20 >&2
    failed=1
  fi
done
ops=$(grep -v '^reduce' "$out/reference" | cut -d' ' -f1 | sort -u | wc -l)
combos=$(grep -v '^reduce' "$out/reference" | cut -d' ' -f1-4 | sort -u | wc -l)
echo "ci/arm: $ops ops, $combos op x dtype x mode x storage combinations (x 4 sizes x 2 thread counts)," \
  "$(grep -c '^reduce' "$out/reference") reductions; build $((built - started)) s, runs $(( $(date +%s) - built )) s"
exit $failed
