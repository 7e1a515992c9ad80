// Block-quantized state (8- and 4-bit codes, one float32 absmax per block): the quantizer that
// defines every bit, written once and compiled once (plain scalar C++, outside the per-ISA
// units): the reference. The staging layer (staging.h) dequantizes a block of codes into its
// float32 scratch, runs the op's float32 span, and requantizes it while it is still in L1: one
// pass over memory, through the ISA's QuantFns (quantize_isa.cpp: the same search and the same
// float32 operations, vectorized, the same codes; tests/test_quantize_isa.py).
//
// Definition (README, "Quantized state"): for each block of `block` consecutive elements (the
// last one may be shorter) absmax = max |x| (the quiet NaN 0x7fc00000 if any x is NaN); v = x / absmax (float32
// division; v = 0 when absmax is 0); the code is the nearest entry of the map to v, found as the
// number of midpoints (m[j] + m[j+1]) / 2 (exact in double) strictly below v: a tie goes to the
// lower entry, NaN codes as 0. Dequantized: m[code] * absmax (a float32 product). 4-bit codes
// pack two per byte, element 2i in the low nibble of byte i.
#pragma once
#include <cstdint>
#include <cstring>

namespace pyoptk {

enum QuantMapId : int { kQuantSigned8 = 0, kQuantUnsigned8, kQuantSigned4, kQuantUnsigned4, kNumQuantMaps };

// Block sizes: powers of two in [kMinQuantBlock, kMaxQuantBlock]; the upper bound is a staging
// block (kStageBlock), so a quantization block never straddles two staging blocks or threads.
constexpr int kMinQuantBlock = 32;
constexpr int kMaxQuantBlock = 512;

struct QuantMap {
  const float* values;  // ascending
  int size;             // 256 or 16
  int bits;             // 8 or 4
  const char* name;
  // Not 0 for a uniform map whose entries are (j + 1) * uniform_step, a power of two (checked
  // against `values` when its search is made): the per-ISA units find its nearest code by
  // arithmetic instead of a search (quantize_isa.cpp, nearest_uniform).
  float uniform_step;
};
const QuantMap& quant_map(int id);  // id in [0, kNumQuantMaps)

constexpr bool valid_quant_block(int64_t block) {
  return block >= kMinQuantBlock && block <= kMaxQuantBlock && (block & (block - 1)) == 0;
}
// Bytes of codes for n elements.
inline int64_t quant_code_bytes(int map_bits, int64_t n) { return map_bits == 8 ? n : (n + 1) / 2; }
inline int64_t quant_blocks(int64_t n, int64_t block) { return (n + block - 1) / block; }

// The code of element e: 8-bit codes one per byte, 4-bit ones two per byte, element 2i in the low
// nibble of byte i.
inline int code_at(const uint8_t* codes, int bits, int64_t e) {
  return bits == 8 ? codes[e] : (codes[e >> 1] >> ((e & 1) * 4)) & 15;
}

// Elements [first, first + n) of a quantized array (first a multiple of block; the range ends
// on a block boundary or at the array's end): out = dequantized values.
void dequantize(const QuantMap& map, const uint8_t* codes, const float* scales, int block, int64_t first, int64_t n,
                float* out);
// The inverse: codes and scales of those elements from in. stochastic: the code is drawn between
// the two entries around v, up with probability (v - m[lo]) / (m[lo+1] - m[lo]) (unbiased inside
// the map's range; outside it, the end entry), from 24 random bits of element e:
// splitmix64(block_key ^ e) >> 40, where block_key = splitmix64(key ^ (e >> 32)).
void quantize(const QuantMap& map, const float* in, int block, int64_t first, int64_t n, uint8_t* codes,
              float* scales, bool stochastic = false, uint64_t key = 0);

// The nearest-entry search: code(v) = #{j : mid[j] < v}, branch-free, one table lookup. The
// thresholds are the midpoints rounded down to float32: for a float32 v, v > t[j] exactly when
// v > mid[j] (mid[j] is exact in double). v's order-preserving 32-bit key (below) compares as v
// does; its top kQuantKeyBits pick a bucket, which holds at most one threshold (checked when the
// table is made; no threshold is +-0, where keys and floats disagree). The bucket's word is the
// count of thresholds in the buckets below it (high 16 bits) and the low 16 key bits of its own
// threshold (0xffff: none, which no key exceeds), so the code is that count plus one comparison.
// Written once here; the per-ISA units (quantize_isa.cpp) run the same lookup lane by lane.
constexpr int kQuantKeyBits = 16;
constexpr int kQuantBuckets = 1 << kQuantKeyBits;
constexpr uint32_t kQuantLowMask = (uint32_t{1} << (32 - kQuantKeyBits)) - 1;

struct QuantSearch {
  uint32_t bucket[kQuantBuckets];
  float threshold[255];  // t[j], ascending, map.size - 1 of them (the per-ISA 4-bit search compares with these)
};
const QuantSearch& quant_search(const QuantMap& map);

// An unsigned key in the order of the float values (for non-NaN floats; -0 just below +0).
inline uint32_t quant_order_key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The 64-bit mixer (splitmix64's finaliser) that folds seeds, counters and indices into keys.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline int quant_nearest(const QuantSearch& s, float v) {
  const uint32_t key = quant_order_key(v);
  const uint32_t word = s.bucket[key >> (32 - kQuantKeyBits)];
  const int code = int(word >> 16) + int((key & kQuantLowMask) > (word & 0xffffu));
  return v == v ? code : 0;  // NaN: 0
}

// Stochastic codes (quantize's definition above): the key of a block starting at element `at`,
// and element e's 24 random bits from it.
inline uint64_t code_block_key(uint64_t key, int64_t at) {
  return mix64(key ^ (static_cast<uint64_t>(at) >> 32));  // a block never crosses 2^32
}
inline uint32_t code_random24(uint64_t block_key, int64_t e) {
  return static_cast<uint32_t>(mix64(block_key ^ static_cast<uint64_t>(e)) >> 40);
}

// The code of v rounded stochastically with 24 random bits: between the entries around it.
inline int stochastic_code(const QuantMap& map, const QuantSearch& s, float v, uint32_t random24) {
  if (v != v) return 0;
  const int c = quant_nearest(s, v);
  const int lo = map.values[c] > v ? c - 1 : c;  // the entry at or below v
  if (lo < 0) return 0;
  if (lo == map.size - 1) return lo;
  const float up = (v - map.values[lo]) / (map.values[lo + 1] - map.values[lo]);
  return float(random24) * 0x1p-24f < up ? lo + 1 : lo;
}

}  // namespace pyoptk
