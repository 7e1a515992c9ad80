// The per-ISA 4-bit searches against the reference's bucket search (quantize.h, quant_nearest) on
// every float32 v with |v| <= 1 and every NaN (v = x / absmax never leaves that range): the
// two-level search (nearest16) on both 4-bit maps, the arithmetic one (nearest_uniform) on the
// uniform map. Not part of the build (~30 s on one core); from the checkout root, after the
// editable build:
//
//   g++ -O3 -std=gnu++17 -mavx2 -mfma -mf16c -ffp-contract=off -fno-math-errno -fno-trapping-math \
//       -DPYOPTK_ISA_NS=avx2 -Icsrc/cpu -Icsrc/include -Ibuild/dev bench/quant_search_check.cpp \
//       csrc/cpu/quantize.cpp -o /tmp/quant_search_check && /tmp/quant_search_check
#include <cstdio>

#include "quantize_isa.cpp"  // its functions live in an anonymous namespace: compiled in here

using namespace pyoptk;

int main() {
  int failed = 0;
  for (int id : {kQuantSigned4, kQuantUnsigned4}) {
    const QuantMap& map = quant_map(id);
    const QuantSearch& s = quant_search(map);
    const avx2::Tree16 tree(s.threshold);
    const bool uniform = map.uniform_step != 0.0f;
    uint64_t checked = 0, tree_wrong = 0, uniform_wrong = 0;
    alignas(32) float v[8];
    alignas(32) int32_t by_tree[8], by_arithmetic[8];
    for (uint64_t bits = 0; bits < (uint64_t{1} << 32); bits += 8) {
      for (int k = 0; k < 8; ++k) {
        const uint32_t u = static_cast<uint32_t>(bits + k);
        std::memcpy(&v[k], &u, 4);
      }
      const __m256 lanes = _mm256_load_ps(v);
      _mm256_store_si256(reinterpret_cast<__m256i*>(by_tree), avx2::nearest16(tree, lanes));
      if (uniform) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(by_arithmetic),
                           avx2::nearest_uniform(1.0f / map.uniform_step, map.size, lanes));
      }
      for (int k = 0; k < 8; ++k) {
        if (std::fabs(v[k]) > 1.0f) continue;
        ++checked;
        const int want = quant_nearest(s, v[k]);
        tree_wrong += by_tree[k] != want;
        uniform_wrong += uniform && by_arithmetic[k] != want;
      }
    }
    std::printf("%s: %llu floats, two-level search wrong on %llu, arithmetic search %s%llu\n", map.name,
                static_cast<unsigned long long>(checked), static_cast<unsigned long long>(tree_wrong),
                uniform ? "wrong on " : "(not uniform) ", static_cast<unsigned long long>(uniform_wrong));
    failed |= tree_wrong != 0 || uniform_wrong != 0;
  }
  return failed;
}
