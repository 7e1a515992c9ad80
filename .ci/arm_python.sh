#!/usr/bin/env bash
# CI, ARM with Python: pyoptk's Python module cross-built for aarch64 and its bit-hash test
# (tests/test_step_bits.py, NumPy API: every element-wise algorithm x dtype x storage option, six
# steps, on every ISA and thread count) run by an arm64 CPython under qemu-aarch64, against the same
# recorded hashes x86 meets; flush mode (FPCR.FZ/FZ16 for the step, in the caller and the
# OpenMP workers, given back after: tests/test_float_env.py's flush tests); and block-quantized
# state (the quantizer and each algorithm's quantized step against the NumPy reference). The interpreter and its libraries are Debian's arm64 packages
# (unpacked, not installed); NumPy, ml_dtypes, threadpoolctl, pytest and hypothesis are PyPI's
# aarch64 wheels. qemu runs with 256-bit SVE, so the ISAs tested are scalar, neon and sve256.
# Needs .ci/arm.sh's cross compiler and qemu, and a venv with pybind11 active (its CMake files).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
work=$PWD/.ci-arm-py
root=$work/root
rm -rf "$work"
mkdir -p "$work/debs" "$root" "$work/site" "$work/run"

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
fi
$sudo apt-get update -qq
wanted="python3.11:arm64 libpython3.11-dev:arm64 libgomp1:arm64 libstdc++6:arm64"
# shellcheck disable=SC2086
debs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances $wanted | grep -E '^[a-z0-9].*:arm64$' | sort -u)
# shellcheck disable=SC2086
(cd "$work/debs" && apt-get download $debs >/dev/null 2>&1)
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$root"; done
python=$root/usr/bin/python3.11

# The run-time and test dependencies, as aarch64 wheels for CPython 3.11.
pip install -q --target "$work/site" --only-binary=:all: --python-version 3.11 --implementation cp \
  --abi cp311 --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
  --platform manylinux_2_28_aarch64 numpy ml_dtypes threadpoolctl pytest hypothesis

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
# pybind11 would run the target's interpreter directly for the module suffix: give it.
PYOPTK_ARM_ROOT=$root cmake -S . -B "$work/build" -G Ninja "${launcher[@]}" \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/.ci/aarch64-python.cmake" -DCMAKE_POLICY_DEFAULT_CMP0190=NEW \
  -DSKBUILD_PROJECT_NAME=pyoptk -DSKBUILD_PROJECT_VERSION=0.0 -DPython_EXECUTABLE="$python" \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" -DPYTHON_MODULE_EXTENSION=.cpython-311-aarch64-linux-gnu.so \
  -DPYTHON_MODULE_DEBUG_POSTFIX= -DPYTHON_IS_DEBUG=OFF -DPYOPTK_CUDA=OFF -DPYOPTK_OPENMP=ON \
  -DPYOPTK_SVE_BITS=256 >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/build"
git ls-files pyoptk | tar -cf - -T - | tar -xf - -C "$work/site"
cp "$work"/build/_core.cpython-311-aarch64-linux-gnu.so "$work/site/pyoptk/"
cp -r tests pyproject.toml "$work/run/"
built=$(date +%s)

# From outside the checkout, so the unpacked package is the one imported.
cd "$work/run"
PYTHONPATH=$work/site qemu-aarch64 -L "$root" -cpu max,sve-default-vector-length=32 "$python" -c \
  'import pyoptk; isas = pyoptk.available_isas(); print("ci/arm-python: ISAs", isas); assert isas == ["scalar", "neon", "sve256"], isas'
PYTHONPATH=$work/site qemu-aarch64 -L "$root" -cpu max,sve-default-vector-length=32 "$python" -m pytest \
  -q -p no:cacheprovider tests/test_step_bits.py tests/test_float_env.py tests/test_quantize_isa.py \
  tests/test_quantized_state.py \
  -k "step_bits_unchanged_on_every_isa or flush_mode or quantize_isa or dequantize_step_quantize or matches_reference"
echo "ci/arm-python: build $((built - started)) s, tests $(( $(date +%s) - built )) s"
