// The quantized step's parts on one core, per element and state, on L1-resident blocks of 512
// (what the staging layer hands them): the AVX2 dequantize and quantize (nearest and stochastic
// codes) of each map, beside the scalar reference. Not part of the build; from the checkout root,
// after the editable build (build/dev holds the generated pyoptk_ops.h):
//
//   g++ -O3 -std=gnu++17 -mavx2 -mfma -mf16c -ffp-contract=off -fno-math-errno -fno-trapping-math \
//       -DPYOPTK_ISA_NS=avx2 -Icsrc/cpu -Icsrc/include -Ibuild/dev bench/quant_parts.cpp csrc/cpu/quantize.cpp \
//       -o /tmp/quant_parts && flock /tmp/pyoptk-bench.lock /tmp/quant_parts
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "quantize_isa.cpp"  // its functions live in an anonymous namespace: compiled in here

using namespace pyoptk;

namespace {

double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best of 15 rounds of `reps` calls, in ns per element.
template <class F>
double ns_per_element(F f, int64_t n, int reps = 3000) {
  double best = 1e30;
  for (int round = 0; round < 15; ++round) {
    const double start = seconds();
    for (int i = 0; i < reps; ++i) {
      f();
      asm volatile("" ::: "memory");
    }
    best = std::min(best, (seconds() - start) / reps / n * 1e9);
  }
  return best;
}

}  // namespace

int main() {
  constexpr int64_t n = 512;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  alignas(64) static float signed_x[n], unsigned_x[n], out[n], scales[n / 32];
  alignas(64) static uint8_t codes[n];
  for (int64_t i = 0; i < n; ++i) {
    signed_x[i] = normal(rng);  // exp_avg-like
    unsigned_x[i] = signed_x[i] * signed_x[i];  // exp_avg_sq-like
  }
  const QuantFns& isa = *avx2::quant_table();
  std::printf("ns per element and state, blocks of %lld in L1\n", static_cast<long long>(n));
  std::printf("%-32s %10s %10s %10s %10s %10s\n", "map", "dequant", "quant", "quant SR", "ref quant", "ref SR");
  for (int id = 0; id < kNumQuantMaps; ++id) {
    const QuantMap& map = quant_map(id);
    const int block = map.bits == 8 ? 256 : 128;
    const float* x = id == kQuantSigned8 || id == kQuantSigned4 ? signed_x : unsigned_x;
    isa.quantize(map, x, block, 0, n, codes, scales, false, 0);
    const double dequant = ns_per_element([&] { isa.dequantize(map, codes, scales, block, 0, n, out); }, n);
    const double nearest = ns_per_element([&] { isa.quantize(map, x, block, 0, n, codes, scales, false, 0); }, n);
    const double sr = ns_per_element([&] { isa.quantize(map, x, block, 0, n, codes, scales, true, 7); }, n);
    const double ref = ns_per_element([&] { quantize(map, x, block, 0, n, codes, scales, false, 0); }, n, 1000);
    const double ref_sr = ns_per_element([&] { quantize(map, x, block, 0, n, codes, scales, true, 7); }, n, 300);
    std::printf("%-32s %10.3f %10.3f %10.3f %10.3f %10.3f\n", map.name, dequant, nearest, sr, ref, ref_sr);
  }
}
