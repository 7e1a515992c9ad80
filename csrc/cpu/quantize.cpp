#include "quantize.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "quant_maps.h"

namespace pyoptk {
namespace {

void make_search(const QuantMap& map, QuantSearch& s) {
  static_assert(32 - kQuantKeyBits <= 16, "a threshold's low key bits fit the bucket word's low half");
  const int last = map.size - 1;
  std::vector<uint32_t> word(kQuantBuckets, 0xffffu);  // per bucket: its threshold's low key bits, or 0xffff
  std::vector<uint8_t> count(kQuantBuckets, 0);
  for (int j = 0; j < last; ++j) {
    const double mid = (double(map.values[j]) + double(map.values[j + 1])) / 2;
    float t = static_cast<float>(mid);
    if (double(t) > mid) t = std::nextafter(t, -std::numeric_limits<float>::infinity());
    s.threshold[j] = t;
    const uint32_t key = quant_order_key(t);
    const uint32_t b = key >> (32 - kQuantKeyBits);
    if (t == 0.0f || count[b] != 0) std::abort();  // a map whose buckets need more comparisons
    word[b] = key & kQuantLowMask;
    ++count[b];
  }
  if (map.uniform_step != 0.0f) {  // the arithmetic search's premise, entry by entry and midpoint by midpoint
    const float step = map.uniform_step;
    int exponent;
    if (std::frexp(step, &exponent) != 0.5f) std::abort();
    for (int j = 0; j < map.size; ++j) {
      const bool midpoint_off = j < last && s.threshold[j] != (float(j) + 1.5f) * step;
      if (map.values[j] != float(j + 1) * step || midpoint_off) std::abort();
    }
  }
  int below = 0;
  for (int b = 0; b < kQuantBuckets; ++b) {
    s.bucket[b] = (uint32_t(below) << 16) | word[b];
    below += count[b];
  }
}

const QuantMap kMaps[kNumQuantMaps] = {
    {qmaps::kSigned8, 256, 8, "signed 8-bit dynamic", 0.0f},
    {qmaps::kUnsigned8, 256, 8, "unsigned 8-bit dynamic", 0.0f},
    {qmaps::kSigned4, 16, 4, "signed 4-bit dynamic", 0.0f},
    {qmaps::kUnsigned4, 16, 4, "unsigned 4-bit linear without zero", 0x1p-4f},
};

}  // namespace

const QuantSearch& quant_search(const QuantMap& map) {
  static const std::vector<QuantSearch> searches = [] {
    std::vector<QuantSearch> out(kNumQuantMaps);  // 256 KiB each: on the heap, not a thread's stack
    for (int id = 0; id < kNumQuantMaps; ++id) make_search(kMaps[id], out[id]);
    return out;
  }();
  return searches[&map - kMaps];
}

namespace {

// max |x|; a block holding a NaN has the canonical quiet NaN (whatever its NaNs' payloads). Eight
// running maxima (max is exact, so their order changes nothing) let the compiler vectorize it.
inline float block_absmax(const float* x, int64_t n) {
  constexpr int kWays = 8;
  float m[kWays] = {};
  int nan[kWays] = {};
  int64_t i = 0;
  for (; i + kWays <= n; i += kWays) {
    for (int j = 0; j < kWays; ++j) {
      const float a = std::fabs(x[i + j]);
      nan[j] |= a != a;
      m[j] = a > m[j] ? a : m[j];
    }
  }
  for (; i < n; ++i) {
    const float a = std::fabs(x[i]);
    nan[0] |= a != a;
    m[0] = a > m[0] ? a : m[0];
  }
  float out = 0.0f;
  int any_nan = 0;
  for (int j = 0; j < kWays; ++j) {
    out = m[j] > out ? m[j] : out;
    any_nan |= nan[j];
  }
  return any_nan ? std::numeric_limits<float>::quiet_NaN() : out;
}

}  // namespace

const QuantMap& quant_map(int id) { return kMaps[id]; }

void dequantize(const QuantMap& map, const uint8_t* codes, const float* scales, int block, int64_t first, int64_t n,
                float* out) {
  const float* m = map.values;
  for (int64_t b = 0; b < n; b += block) {
    const int64_t len = n - b < block ? n - b : block;
    const float scale = scales[(first + b) / block];
    const int64_t at = first + b;
    for (int64_t i = 0; i < len; ++i) out[b + i] = m[code_at(codes, map.bits, at + i)] * scale;
  }
}

void quantize(const QuantMap& map, const float* in, int block, int64_t first, int64_t n, uint8_t* codes,
              float* scales, bool stochastic, uint64_t key) {
  const QuantSearch& s = quant_search(map);
  alignas(64) float v[kMaxQuantBlock];
  alignas(64) uint8_t c[kMaxQuantBlock];
  for (int64_t b = 0; b < n; b += block) {
    const int64_t len = n - b < block ? n - b : block;
    const float* x = in + b;
    const float absmax = block_absmax(x, len);
    scales[(first + b) / block] = absmax;
    if (absmax == 0.0f) {
      for (int64_t i = 0; i < len; ++i) v[i] = 0.0f;
    } else {
      for (int64_t i = 0; i < len; ++i) v[i] = x[i] / absmax;
    }
    const int64_t at = first + b;
    if (stochastic) {
      const uint64_t block_key = code_block_key(key, at);
      for (int64_t i = 0; i < len; ++i) c[i] = uint8_t(stochastic_code(map, s, v[i], code_random24(block_key, at + i)));
    } else {
      for (int64_t i = 0; i < len; ++i) c[i] = uint8_t(quant_nearest(s, v[i]));
    }
    if (map.bits == 8) {
      for (int64_t i = 0; i < len; ++i) codes[at + i] = c[i];
    } else {
      // first and block are even: whole bytes, but a block may end on an odd element (the array's end).
      for (int64_t i = 0; i < len; i += 2) codes[(at + i) >> 1] = uint8_t(c[i] | (i + 1 < len ? c[i + 1] << 4 : 0));
    }
  }
}

}  // namespace pyoptk
