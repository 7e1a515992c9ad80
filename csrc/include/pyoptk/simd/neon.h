// Vec<float>/Vec<double> over 128-bit AArch64 Advanced SIMD (NEON) registers, and 16-bit storage
// lanes. Only included by the builds whose lane header it is (CMake's pyoptk_isa HEADER: neon).
// NEON is the aarch64 baseline, so this ISA runs on every 64-bit ARM CPU. Tails go through a
// small buffer (NEON has no masked loads/stores); the formula still runs on the vector type.
#pragma once
#include <arm_neon.h>

#include <cstring>

#include "pyoptk/simd/scalar.h"
#include "pyoptk/storage_kinds.h"

// What this lane header provides beyond Vec (named, so shared headers test features, not ISAs):
// Half, load16/store16, widen_lanes/narrow_lanes for bf16_t and f16_t, narrow_sr_lanes for bf16_t.
#define PYOPTK_SIMD_HAS_HALF_LANES 1

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

// The first n lanes of p through a zeroed buffer (the lanes past n are +0, as x86's masked loads).
template <class R, class T, int kLanes, class Load>
R load_first(const T* p, int n, Load load) {
  T buf[kLanes] = {};
  std::memcpy(buf, p, sizeof(T) * static_cast<size_t>(n));
  return load(buf);
}
template <class T, int kLanes, class V, class Store>
void store_first(T* p, int n, V v, Store store) {
  T buf[kLanes];
  store(buf, v);
  std::memcpy(p, buf, sizeof(T) * static_cast<size_t>(n));
}

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using Mask = uint32x4_t;
  static constexpr int kLanes = 4;
  float32x4_t v;
  Vec() = default;
  Vec(float32x4_t x) : v(x) {}
  Vec(float x) : v(vdupq_n_f32(x)) {}
  static Vec load(const float* p) { return vld1q_f32(p); }
  static Vec load_n(const float* p, int n) { return load_first<Vec, float, kLanes>(p, n, load); }
  void store(float* p) const { vst1q_f32(p, v); }
  void store_n(float* p, int n) const { store_first<float, kLanes>(p, n, v, vst1q_f32); }
};

template <>
struct Vec<double> {
  using Mask = uint64x2_t;
  static constexpr int kLanes = 2;
  float64x2_t v;
  Vec() = default;
  Vec(float64x2_t x) : v(x) {}
  Vec(double x) : v(vdupq_n_f64(x)) {}
  static Vec load(const double* p) { return vld1q_f64(p); }
  static Vec load(const float* p) { return vcvt_f64_f32(vld1_f32(p)); }  // exact widening
  static Vec load_n(const double* p, int n) {
    return load_first<Vec, double, kLanes>(p, n, [](const double* q) { return load(q); });
  }
  void store(double* p) const { vst1q_f64(p, v); }
  void store_n(double* p, int n) const { store_first<double, kLanes>(p, n, v, vst1q_f64); }
};

template <class T>
struct Lanes<Vec<T>> {
  static constexpr int kCount = Vec<T>::kLanes;
};

inline uint32x4_t mask_not(uint32x4_t m) { return vmvnq_u32(m); }
inline uint64x2_t mask_not(uint64x2_t m) { return vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(m))); }

// S: the intrinsics' type suffix (f32, f64); U: the mask's (u32, u64).
#define PYOPTK_VEC_OPS(T, S, U)                                                                  \
  inline Vec<T> operator+(Vec<T> a, Vec<T> b) { return vaddq_##S(a.v, b.v); }                     \
  inline Vec<T> operator-(Vec<T> a, Vec<T> b) { return vsubq_##S(a.v, b.v); }                     \
  inline Vec<T> operator*(Vec<T> a, Vec<T> b) { return vmulq_##S(a.v, b.v); }                     \
  inline Vec<T> operator/(Vec<T> a, Vec<T> b) { return vdivq_##S(a.v, b.v); }                     \
  /* fneg flips the sign bit, as the scalar -a does (NaN included). */                          \
  inline Vec<T> operator-(Vec<T> a) { return vnegq_##S(a.v); }                                    \
  inline Vec<T> fma(Vec<T> a, Vec<T> b, Vec<T> c) { return vfmaq_##S(c.v, a.v, b.v); }            \
  inline Vec<T> sqrt(Vec<T> a) { return vsqrtq_##S(a.v); }                                        \
  inline Vec<T> abs(Vec<T> a) { return vabsq_##S(a.v); }                                          \
  inline Vec<T>::Mask operator<(Vec<T> a, Vec<T> b) { return vcltq_##S(a.v, b.v); }               \
  inline Vec<T>::Mask operator>(Vec<T> a, Vec<T> b) { return vcgtq_##S(a.v, b.v); }               \
  inline Vec<T>::Mask operator==(Vec<T> a, Vec<T> b) { return vceqq_##S(a.v, b.v); }              \
  /* Unordered is "not equal", as the scalar a != b. */                                          \
  inline Vec<T>::Mask operator!=(Vec<T> a, Vec<T> b) {                                            \
    return mask_not(vceqq_##S(a.v, b.v));                                                         \
  }                                                                                              \
  inline Vec<T> select(Vec<T>::Mask m, Vec<T> a, Vec<T> b) { return vbslq_##S(m, a.v, b.v); }     \
  /* scalar.h's max/min lane by lane: a if a is NaN or wins, else b (so ties -> b). fmax/fmin  \
     would differ: they order -0 below +0 and return a quieted NaN. */                          \
  inline Vec<T> max(Vec<T> a, Vec<T> b) { return select(vorrq_##U(a != a, a > b), a, b); }         \
  inline Vec<T> min(Vec<T> a, Vec<T> b) { return select(vorrq_##U(a != a, a < b), a, b); }

PYOPTK_VEC_OPS(float, f32, u32)
PYOPTK_VEC_OPS(double, f64, u64)
#undef PYOPTK_VEC_OPS

// ----- 16-bit storage lanes: Vec<float>::kLanes elements of bfloat16 / float16 -------------
// The same integer/IEEE operations as storage_kinds.h's scalar conversions, lane by lane.
using Half = uint16x4_t;

inline Half load16(const void* p, int n, bool tail) {
  const uint16_t* q = static_cast<const uint16_t*>(p);
  return tail ? load_first<Half, uint16_t, 4>(q, n, vld1_u16) : vld1_u16(q);
}
inline void store16(void* p, Half h, int n, bool tail) {
  uint16_t* q = static_cast<uint16_t*>(p);
  if (tail) {
    store_first<uint16_t, 4>(q, n, h, vst1_u16);
  } else {
    vst1_u16(q, h);
  }
}

inline Vec<float> widen_lanes(Half h, bf16_t) { return vreinterpretq_f32_u32(vshll_n_u16(h, 16)); }
// fcvtl/fcvtn (half <-> single) are baseline AArch64: exact widening (a signalling NaN quieted,
// as F16C and f16_to_f32 do), and narrowing in the FPCR's rounding mode, nearest even by default,
// subnormals kept (FZ off), NaN -> quiet NaN with the sign and top payload bits (f32_to_f16).
inline Vec<float> widen_lanes(Half h, f16_t) { return vcvt_f32_f16(vreinterpret_f16_u16(h)); }
inline Half narrow_lanes(Vec<float> v, f16_t) { return vreinterpret_u16_f16(vcvt_f16_f32(v.v)); }

// cvt::f32_to_bf16 / f32_to_bf16_sr lane by lane: `add` is the rounding increment per lane. The
// BF16 extension's bfcvtn is not used: it keeps a NaN's payload (bf16_nan drops it) and follows
// FPCR.FZ, and the integer form is a handful of instructions.
inline Half bf16_lanes(float32x4_t v, uint32x4_t add) {
  const uint32x4_t u = vreinterpretq_u32_f32(v);
  const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)), vdupq_n_u32(0x7f800000u));
  const uint32x4_t qnan = vorrq_u32(vandq_u32(u, vdupq_n_u32(0x80000000u)), vdupq_n_u32(0x7fc00000u));
  return vshrn_n_u32(vbslq_u32(nan, qnan, vaddq_u32(u, add)), 16);
}
inline Half narrow_lanes(Vec<float> v, bf16_t) {
  const uint32x4_t lsb = vandq_u32(vshrq_n_u32(vreinterpretq_u32_f32(v.v), 16), vdupq_n_u32(1));
  return bf16_lanes(v.v, vaddq_u32(vdupq_n_u32(0x7fffu), lsb));
}
inline uint32x4_t mix32_lanes(uint32x4_t x) {
  x = veorq_u32(x, vshrq_n_u32(x, 16));
  x = vmulq_u32(x, vdupq_n_u32(0x7feb352du));
  x = veorq_u32(x, vshrq_n_u32(x, 15));
  x = vmulq_u32(x, vdupq_n_u32(0x846ca68bu));
  return veorq_u32(x, vshrq_n_u32(x, 16));
}
// Lane j: cvt::narrow_sr of element index + j.
inline Half narrow_sr_lanes(Vec<float> v, uint32_t key, uint32_t index, bf16_t) {
  const uint32_t lane[4] = {0, 1, 2, 3};
  const uint32x4_t idx = vaddq_u32(vdupq_n_u32(index), vld1q_u32(lane));
  return bf16_lanes(v.v, vshrq_n_u32(mix32_lanes(veorq_u32(idx, vdupq_n_u32(key))), 16));
}

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
