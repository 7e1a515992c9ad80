// Compiled once per ISA next to convert.cpp: quantize.h's dequantize and quantize (nearest or
// stochastic codes) for the staging layer, vectorized on AVX2 (and AVX-512 through the same
// code), else quantize.cpp's scalar reference itself. Bit-identical to the reference: absmax is a max (exact in any order),
// v = x / absmax an IEEE division per lane, the code the count of rounded-down midpoints below v
// (the reference's bucket lookup for 8-bit maps; for 4-bit ones a two-level search over the 15
// thresholds held in registers, or arithmetic on a uniform map), a stochastic code the same
// float32 operations on the same random bits, the dequantized value the same float32 product.
//
// No gathers: Zen 3's 8-lane vpgatherdd costs ~15 cycles (bench/RESULTS.md), more than eight
// scalar loads. The 8-bit search's one lookup per element and the 8-bit map are read by scalar
// loads; the 4-bit map and thresholds are held in registers (permutes).
#include "kernel_table.h"
#include "quantize.h"

#if defined(__AVX2__)
#include <immintrin.h>

#include <cmath>
#include <limits>
#endif

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
namespace {

#if defined(__AVX2__)

// Eight 4-bit codes from element e (a multiple of 8) as int32 lanes.
inline __m256i load_nibbles(const uint8_t* codes, int64_t e) {
  uint32_t word;
  std::memcpy(&word, codes + (e >> 1), 4);
  const __m256i bytes = _mm256_set1_epi32(static_cast<int>(word));
  // lane i holds nibble i of the word: byte i / 2, low nibble for even i
  const __m256i shift = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  return _mm256_and_si256(_mm256_srlv_epi32(bytes, shift), _mm256_set1_epi32(15));
}

// Entries of a 16-entry map held in two registers: a permute of each, picked by the code's bit 3.
inline __m256 entry16(__m256 low, __m256 high, __m256i code) {
  return _mm256_blendv_ps(_mm256_permutevar8x32_ps(low, code), _mm256_permutevar8x32_ps(high, code),
                          _mm256_castsi256_ps(_mm256_slli_epi32(code, 28)));
}

void dequantize_isa(const QuantMap& map, const uint8_t* codes, const float* scales, int block, int64_t first, int64_t n,
                    float* out) {
  const float* m = map.values;
  const __m256 low = _mm256_loadu_ps(m), high = map.bits == 8 ? low : _mm256_loadu_ps(m + 8);
  for (int64_t b = 0; b < n; b += block) {
    const int64_t len = n - b < block ? n - b : block;
    const float scale = scales[(first + b) / block];
    const __m256 vscale = _mm256_set1_ps(scale);
    const int64_t at = first + b;
    int64_t i = 0;
    if (map.bits == 8) {
      for (; i + 8 <= len; i += 8) {  // eight codes in one load, eight scalar loads of the map, one product
        uint64_t w;
        std::memcpy(&w, codes + at + i, 8);
        const __m256 entries = _mm256_setr_ps(m[w & 255], m[(w >> 8) & 255], m[(w >> 16) & 255], m[(w >> 24) & 255],
                                              m[(w >> 32) & 255], m[(w >> 40) & 255], m[(w >> 48) & 255], m[w >> 56]);
        _mm256_storeu_ps(out + b + i, _mm256_mul_ps(entries, vscale));
      }
    } else {
      for (; i + 8 <= len; i += 8) {
        _mm256_storeu_ps(out + b + i, _mm256_mul_ps(entry16(low, high, load_nibbles(codes, at + i)), vscale));
      }
    }
    for (; i < len; ++i) out[b + i] = m[code_at(codes, map.bits, at + i)] * scale;
  }
}

// max |x| as block_absmax (quantize.cpp) finds it: the canonical quiet NaN if any x is NaN.
inline float absmax_of(const float* x, int64_t n) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 most = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i), magnitude);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    most = _mm256_max_ps(a, most);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, most);
  bool any_nan = _mm256_movemask_ps(nan) != 0;
  float out = 0.0f;
  for (float lane : lanes) out = lane > out ? lane : out;
  for (; i < n; ++i) {
    const float a = std::fabs(x[i]);
    any_nan |= a != a;
    out = a > out ? a : out;
  }
  return any_nan ? std::numeric_limits<float>::quiet_NaN() : out;
}

// table[index] for eight lanes by scalar loads inserted into the lanes: on Zen 3 a fifth faster
// than one vpgatherdd (bench/RESULTS.md, third session).
inline __m256i lookup8(const uint32_t* table, __m256i index) {
  const __m128i low = _mm256_castsi256_si128(index), high = _mm256_extracti128_si256(index, 1);
  const auto four = [table](__m128i i) {
    const uint64_t a = static_cast<uint64_t>(_mm_cvtsi128_si64(i)), b = static_cast<uint64_t>(_mm_extract_epi64(i, 1));
    __m128i w = _mm_cvtsi32_si128(static_cast<int>(table[static_cast<uint32_t>(a)]));
    w = _mm_insert_epi32(w, static_cast<int>(table[a >> 32]), 1);
    w = _mm_insert_epi32(w, static_cast<int>(table[static_cast<uint32_t>(b)]), 2);
    return _mm_insert_epi32(w, static_cast<int>(table[b >> 32]), 3);
  };
  return _mm256_setr_m128i(four(low), four(high));
}

// quant_nearest on eight lanes: the bucket's word by one lookup, one unsigned comparison of the
// low key bits (both below 2^16: a signed one is the same); NaN lanes code 0.
inline __m256i nearest8(const QuantSearch& s, __m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i key = _mm256_xor_si256(u, _mm256_or_si256(_mm256_srai_epi32(u, 31), _mm256_set1_epi32(int(0x80000000u))));
  const __m256i word = lookup8(s.bucket, _mm256_srli_epi32(key, 32 - kQuantKeyBits));
  const __m256i low = _mm256_set1_epi32(int(kQuantLowMask));
  const __m256i above = _mm256_cmpgt_epi32(_mm256_and_si256(key, low), _mm256_and_si256(word, _mm256_set1_epi32(0xffff)));
  const __m256i code = _mm256_sub_epi32(_mm256_srli_epi32(word, 16), above);
  return _mm256_and_si256(code, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_ORD_Q)));
}

// The 4-bit search: #{j : t[j] < v} over 15 ascending thresholds in two levels: three broadcast
// comparisons (t[3], t[7], t[11]) count the quadrants below v, q; then v against the quadrant's own
// three, t[4q], t[4q + 1], t[4q + 2], each an in-lane permute by q: the code is 4q plus those below
// v. Six comparisons at depth two rather than a binary search's dependent four (bench/RESULTS.md,
// fourth session; every float checked: bench/quant_search_check.cpp). NaN compares false
// everywhere: code 0, as the reference. A comparison's mask is -1: counts are subtracted.
struct Tree16 {
  __m256 t3, t7, t11, first, second, third;  // the last three: t[4q + k] for q = 0..3, in both lanes
  explicit Tree16(const float* t)
      : t3(_mm256_set1_ps(t[3])),
        t7(_mm256_set1_ps(t[7])),
        t11(_mm256_set1_ps(t[11])),
        first(_mm256_setr_ps(t[0], t[4], t[8], t[12], t[0], t[4], t[8], t[12])),
        second(_mm256_setr_ps(t[1], t[5], t[9], t[13], t[1], t[5], t[9], t[13])),
        third(_mm256_setr_ps(t[2], t[6], t[10], t[14], t[2], t[6], t[10], t[14])) {}
};

inline __m256i above(__m256 v, __m256 t) { return _mm256_castps_si256(_mm256_cmp_ps(v, t, _CMP_GT_OQ)); }

inline __m256i nearest16(const Tree16& tree, __m256 v) {
  const __m256i q = _mm256_sub_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), above(v, tree.t3)),
                                     _mm256_add_epi32(above(v, tree.t7), above(v, tree.t11)));
  const __m256i inside = _mm256_add_epi32(above(v, _mm256_permutevar_ps(tree.first, q)),
                                          _mm256_add_epi32(above(v, _mm256_permutevar_ps(tree.second, q)),
                                                           above(v, _mm256_permutevar_ps(tree.third, q))));
  return _mm256_sub_epi32(_mm256_slli_epi32(q, 2), inside);
}

// quant_nearest on a uniform map (QuantMap::uniform_step: entries (j + 1) * step, step = 2^-k, so
// midpoints (j + 1.5) * step, exact) by arithmetic: with w = v / step (exact), the count of
// midpoints below v is #{j <= size - 2 : j < w - 1.5} = ceil(w - 1.5) clamped to [0, size - 1].
// One fma gives w - 1.5 exactly for w >= 0.75 (Sterbenz up to 3; above, on w's own grid); below
// 0.75 its rounding stays under -0.75: code 0, as for every v under the first midpoint. NaN: the
// conversion's INT_MIN, clamped to 0. v = x / absmax, so |v| <= 1 (or NaN): every such float gives
// the reference's code (every one checked: bench/quant_search_check.cpp; tests/test_quantize_isa.py).
inline __m256i nearest_uniform(float inverse_step, int size, __m256 v) {
  const __m256 w = _mm256_fmsub_ps(v, _mm256_set1_ps(inverse_step), _mm256_set1_ps(1.5f));
  const __m256i up = _mm256_cvttps_epi32(_mm256_ceil_ps(w));
  return _mm256_min_epi32(_mm256_max_epi32(up, _mm256_setzero_si256()), _mm256_set1_epi32(size - 1));
}

// stochastic_code (quantize.h) on eight lanes, from their nearest codes: the entry at or below v
// (lo), then up with probability (v - m[lo]) / (m[lo+1] - m[lo]) by the lane's 24 random bits;
// below the map's first entry 0, at its last entry that one. NaN lanes: nearest code 0, every
// comparison false: 0, as the reference.
template <class Entry>
inline __m256i stochastic8(const Entry& entry, int size, __m256 v, __m256i nearest, const uint32_t* random24) {
  const __m256i lo = _mm256_add_epi32(nearest, _mm256_castps_si256(_mm256_cmp_ps(entry(nearest), v, _CMP_GT_OQ)));
  const __m256i below = _mm256_min_epi32(_mm256_max_epi32(lo, _mm256_setzero_si256()), _mm256_set1_epi32(size - 2));
  const __m256 low = entry(below), high = entry(_mm256_add_epi32(below, _mm256_set1_epi32(1)));
  const __m256 up = _mm256_div_ps(_mm256_sub_ps(v, low), _mm256_sub_ps(high, low));
  const __m256 draw = _mm256_mul_ps(
      _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(random24))), _mm256_set1_ps(0x1p-24f));
  const __m256i raised = _mm256_sub_epi32(lo, _mm256_castps_si256(_mm256_cmp_ps(draw, up, _CMP_LT_OQ)));
  const __m256i inside = _mm256_cmpgt_epi32(_mm256_set1_epi32(size - 1), lo);  // lo < size - 1
  return _mm256_max_epi32(_mm256_blendv_epi8(lo, raised, inside), _mm256_setzero_si256());  // lo = -1: 0
}

template <int kBits, bool kStochastic>
void quantize_bits(const QuantMap& map, const float* in, int block, int64_t first, int64_t n, uint8_t* codes,
                   float* scales, uint64_t key) {
  const QuantSearch& s = quant_search(map);
  const Tree16 tree(s.threshold);  // used by the 4-bit maps that are not uniform
  const bool uniform = map.uniform_step != 0.0f;
  const float inverse_step = uniform ? 1.0f / map.uniform_step : 0.0f;  // a power of two: exact
  const float* m = map.values;
  const __m256 low16 = _mm256_loadu_ps(m), high16 = kBits == 8 ? low16 : _mm256_loadu_ps(m + 8);
  const auto entry = [&](__m256i code) {
    if constexpr (kBits == 8) return _mm256_castsi256_ps(lookup8(reinterpret_cast<const uint32_t*>(m), code));
    else return entry16(low16, high16, code);
  };
  alignas(32) uint32_t random24[kMaxQuantBlock];
  for (int64_t b = 0; b < n; b += block) {
    const int64_t len = n - b < block ? n - b : block;
    const float* x = in + b;
    const float absmax = absmax_of(x, len);
    scales[(first + b) / block] = absmax;
    const bool zero = absmax == 0.0f;
    const int64_t at = first + b;
    const uint64_t block_key = kStochastic ? code_block_key(key, at) : 0;
    if (kStochastic) {
      for (int64_t i = 0; i < len; ++i) random24[i] = code_random24(block_key, at + i);
    }
    // v = x / absmax, or +0 for all when absmax is 0: a mask rather than a branch per vector
    const __m256 divisor = _mm256_set1_ps(zero ? 1.0f : absmax);
    const __m256 keep = _mm256_castsi256_ps(_mm256_set1_epi32(zero ? 0 : -1));
    const auto code8 = [&](int64_t i) {
      const __m256 v = _mm256_and_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), divisor), keep);
      __m256i c;
      if constexpr (kBits == 8) c = nearest8(s, v);
      else c = uniform ? nearest_uniform(inverse_step, map.size, v) : nearest16(tree, v);
      if constexpr (kStochastic) c = stochastic8(entry, map.size, v, c, random24 + i);
      return c;
    };
    int64_t i = 0;
    for (; i + 32 <= len; i += 32) {  // 32 codes: packed to bytes, in order
      const __m256i c0 = code8(i), c1 = code8(i + 8), c2 = code8(i + 16), c3 = code8(i + 24);
      const __m256i bytes = _mm256_permutevar8x32_epi32(
          _mm256_packus_epi16(_mm256_packus_epi32(c0, c1), _mm256_packus_epi32(c2, c3)),
          _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      if (kBits == 8) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + at + i), bytes);
      } else {  // 16-bit word j holds codes 2j (low byte) and 2j + 1: one byte, low nibble first
        const __m256i pairs = _mm256_and_si256(_mm256_or_si256(bytes, _mm256_srli_epi16(bytes, 4)), _mm256_set1_epi16(0xff));
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(pairs, pairs), 0x08);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + ((at + i) >> 1)), _mm256_castsi256_si128(packed));
      }
    }
    const auto code = [&](int64_t j) {  // the tail at the array's end: the reference's own functions
      const float v = zero ? 0.0f : x[j] / absmax;
      return uint8_t(kStochastic ? stochastic_code(map, s, v, random24[j]) : quant_nearest(s, v));
    };
    if (kBits == 8) {
      for (; i < len; ++i) codes[at + i] = code(i);
    } else {  // at + i is even: whole bytes, the last one maybe half (the array's end)
      for (; i < len; i += 2) codes[(at + i) >> 1] = uint8_t(code(i) | (i + 1 < len ? code(i + 1) << 4 : 0));
    }
  }
}

void quantize_isa(const QuantMap& map, const float* in, int block, int64_t first, int64_t n, uint8_t* codes,
                  float* scales, bool stochastic, uint64_t key) {
  const auto run = map.bits == 8 ? (stochastic ? quantize_bits<8, true> : quantize_bits<8, false>)
                                 : (stochastic ? quantize_bits<4, true> : quantize_bits<4, false>);
  run(map, in, block, first, n, codes, scales, key);
}

constexpr QuantFns kQuantFns = {&dequantize_isa, &quantize_isa};

#else

constexpr QuantFns kQuantFns = {&pyoptk::dequantize, &pyoptk::quantize};

#endif

}  // namespace

const QuantFns* quant_table() { return &kQuantFns; }

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
