// Vec<float>/Vec<double> over SVE registers of one vector length, and 16-bit storage lanes. Only
// included by the builds whose lane header it is (CMake's pyoptk_isa HEADER: sve<bits>, compiled
// with -msve-vector-bits=<bits>).
//
// Why one build per vector length, not one vector-length-agnostic build: the kernels hold lanes
// in structs and arrays (Vec<T>::v, apply.h's pv[kVectors], sv[h][k], reduce.h's acc[kVecs]) and
// size loops by the constant Lanes<Vec<T>>::kCount, and C++ forbids sizeless types (svfloat32_t)
// in all three. The arm_sve_vector_bits attribute gives the same registers a size fixed at
// compile time, so the formulas compile unchanged; the CPU test (csrc/cpu/arm_cpu.h) runs the
// build whose length equals the CPU's, and a CPU of another length runs NEON.
//
// Tails use predicated loads/stores (whilelt), so the formula runs on the same vector type to the
// last element; the 16-bit lanes live in 32-bit containers (ld1h/st1h widen and narrow them).
#pragma once
#include <arm_sve.h>

#include "pyoptk/simd/scalar.h"
#include "pyoptk/storage_kinds.h"

#ifndef __ARM_FEATURE_SVE_BITS
#error "sve.h needs -msve-vector-bits=<bits>"
#endif

// What this lane header provides beyond Vec (named, so shared headers test features, not ISAs):
// Half, load16/store16, widen_lanes/narrow_lanes for bf16_t and f16_t, narrow_sr_lanes for bf16_t.
#define PYOPTK_SIMD_HAS_HALF_LANES 1

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

namespace sve {
constexpr int kBits = __ARM_FEATURE_SVE_BITS;
typedef svfloat32_t f32 __attribute__((arm_sve_vector_bits(__ARM_FEATURE_SVE_BITS)));
typedef svfloat64_t f64 __attribute__((arm_sve_vector_bits(__ARM_FEATURE_SVE_BITS)));
typedef svuint32_t u32 __attribute__((arm_sve_vector_bits(__ARM_FEATURE_SVE_BITS)));
typedef svbool_t mask __attribute__((arm_sve_vector_bits(__ARM_FEATURE_SVE_BITS)));
}  // namespace sve

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using Mask = sve::mask;
  static constexpr int kLanes = sve::kBits / 32;
  sve::f32 v;
  Vec() = default;
  Vec(svfloat32_t x) : v(x) {}
  Vec(float x) : v(svdup_n_f32(x)) {}
  static svbool_t all() { return svptrue_b32(); }
  static Vec load(const float* p) { return svld1_f32(all(), p); }
  static Vec load_n(const float* p, int n) { return svld1_f32(svwhilelt_b32(0, n), p); }
  void store(float* p) const { svst1_f32(all(), p, v); }
  void store_n(float* p, int n) const { svst1_f32(svwhilelt_b32(0, n), p, v); }
};

template <>
struct Vec<double> {
  using Mask = sve::mask;
  static constexpr int kLanes = sve::kBits / 64;
  sve::f64 v;
  Vec() = default;
  Vec(svfloat64_t x) : v(x) {}
  Vec(double x) : v(svdup_n_f64(x)) {}
  static svbool_t all() { return svptrue_b64(); }
  static Vec load(const double* p) { return svld1_f64(all(), p); }
  // Exact widening: each float32 into the low half of a 64-bit container, then fcvt.
  static Vec load(const float* p) {
    const svuint64_t w = svld1uw_u64(all(), reinterpret_cast<const uint32_t*>(p));
    return svcvt_f64_f32_x(all(), svreinterpret_f32_u64(w));
  }
  static Vec load_n(const double* p, int n) { return svld1_f64(svwhilelt_b64(0, n), p); }
  void store(double* p) const { svst1_f64(all(), p, v); }
  void store_n(double* p, int n) const { svst1_f64(svwhilelt_b64(0, n), p, v); }
};

template <class T>
struct Lanes<Vec<T>> {
  static constexpr int kCount = Vec<T>::kLanes;
};

// S: the intrinsics' type suffix (f32, f64); B: the predicate width (b32, b64).
#define PYOPTK_VEC_OPS(T, S, B)                                                                  \
  inline Vec<T> operator+(Vec<T> a, Vec<T> b) { return svadd_##S##_x(sv##B(), a.v, b.v); }        \
  inline Vec<T> operator-(Vec<T> a, Vec<T> b) { return svsub_##S##_x(sv##B(), a.v, b.v); }        \
  inline Vec<T> operator*(Vec<T> a, Vec<T> b) { return svmul_##S##_x(sv##B(), a.v, b.v); }        \
  inline Vec<T> operator/(Vec<T> a, Vec<T> b) { return svdiv_##S##_x(sv##B(), a.v, b.v); }        \
  /* fneg flips the sign bit, as the scalar -a does (NaN included). */                          \
  inline Vec<T> operator-(Vec<T> a) { return svneg_##S##_x(sv##B(), a.v); }                       \
  inline Vec<T> fma(Vec<T> a, Vec<T> b, Vec<T> c) { return svmla_##S##_x(sv##B(), c.v, a.v, b.v); } \
  inline Vec<T> sqrt(Vec<T> a) { return svsqrt_##S##_x(sv##B(), a.v); }                           \
  inline Vec<T> abs(Vec<T> a) { return svabs_##S##_x(sv##B(), a.v); }                             \
  inline Vec<T>::Mask operator<(Vec<T> a, Vec<T> b) { return svcmplt_##S(sv##B(), a.v, b.v); }    \
  inline Vec<T>::Mask operator>(Vec<T> a, Vec<T> b) { return svcmpgt_##S(sv##B(), a.v, b.v); }    \
  inline Vec<T>::Mask operator==(Vec<T> a, Vec<T> b) { return svcmpeq_##S(sv##B(), a.v, b.v); }   \
  /* Unordered is "not equal", as the scalar a != b: the complement of ==. */                    \
  inline Vec<T>::Mask operator!=(Vec<T> a, Vec<T> b) {                                            \
    return svnot_b_z(sv##B(), svcmpeq_##S(sv##B(), a.v, b.v));                                   \
  }                                                                                              \
  inline Vec<T> select(Vec<T>::Mask m, Vec<T> a, Vec<T> b) { return svsel_##S(m, a.v, b.v); }     \
  /* scalar.h's max/min lane by lane: a if a is NaN or wins, else b (so ties -> b). */          \
  inline Vec<T> max(Vec<T> a, Vec<T> b) { return select(svorr_b_z(sv##B(), a != a, a > b), a, b); } \
  inline Vec<T> min(Vec<T> a, Vec<T> b) { return select(svorr_b_z(sv##B(), a != a, a < b), a, b); }

inline svbool_t svb32() { return svptrue_b32(); }
inline svbool_t svb64() { return svptrue_b64(); }
PYOPTK_VEC_OPS(float, f32, b32)
PYOPTK_VEC_OPS(double, f64, b64)
#undef PYOPTK_VEC_OPS

// ----- 16-bit storage lanes: Vec<float>::kLanes elements of bfloat16 / float16 -------------
// The same integer/IEEE operations as storage_kinds.h's scalar conversions, lane by lane; each
// 16-bit element sits in the low half of a 32-bit lane.
using Half = sve::u32;

inline Half load16(const void* p, int n, bool tail) {
  return svld1uh_u32(tail ? svwhilelt_b32(0, n) : svptrue_b32(), static_cast<const uint16_t*>(p));
}
inline void store16(void* p, Half h, int n, bool tail) {
  svst1h_u32(tail ? svwhilelt_b32(0, n) : svptrue_b32(), static_cast<uint16_t*>(p), h);
}

inline Vec<float> widen_lanes(Half h, bf16_t) {
  return svreinterpret_f32_u32(svlsl_n_u32_x(svptrue_b32(), h, 16));
}
// fcvt (half <-> single) as neon.h's fcvtl/fcvtn: exact widening, narrowing to nearest even.
inline Vec<float> widen_lanes(Half h, f16_t) {
  return svcvt_f32_f16_x(svptrue_b32(), svreinterpret_f16_u32(h));
}
inline Half narrow_lanes(Vec<float> v, f16_t) {
  return svreinterpret_u32_f16(svcvt_f16_f32_x(svptrue_b32(), v.v));
}

// cvt::f32_to_bf16 / f32_to_bf16_sr lane by lane: `add` is the rounding increment per lane.
inline Half bf16_lanes(svfloat32_t v, svuint32_t add) {
  const svbool_t all = svptrue_b32();
  const svuint32_t u = svreinterpret_u32_f32(v);
  const svbool_t nan = svcmpgt_n_u32(all, svand_n_u32_x(all, u, 0x7fffffffu), 0x7f800000u);
  const svuint32_t qnan = svorr_n_u32_x(all, svand_n_u32_x(all, u, 0x80000000u), 0x7fc00000u);
  return svlsr_n_u32_x(all, svsel_u32(nan, qnan, svadd_u32_x(all, u, add)), 16);
}
inline Half narrow_lanes(Vec<float> v, bf16_t) {
  const svbool_t all = svptrue_b32();
  const svuint32_t lsb = svand_n_u32_x(all, svlsr_n_u32_x(all, svreinterpret_u32_f32(v.v), 16), 1);
  return bf16_lanes(v.v, svadd_n_u32_x(all, lsb, 0x7fffu));
}
inline svuint32_t mix32_lanes(svuint32_t x) {
  const svbool_t all = svptrue_b32();
  x = sveor_u32_x(all, x, svlsr_n_u32_x(all, x, 16));
  x = svmul_n_u32_x(all, x, 0x7feb352du);
  x = sveor_u32_x(all, x, svlsr_n_u32_x(all, x, 15));
  x = svmul_n_u32_x(all, x, 0x846ca68bu);
  return sveor_u32_x(all, x, svlsr_n_u32_x(all, x, 16));
}
// Lane j: cvt::narrow_sr of element index + j.
inline Half narrow_sr_lanes(Vec<float> v, uint32_t key, uint32_t index, bf16_t) {
  const svbool_t all = svptrue_b32();
  const svuint32_t idx = svindex_u32(index, 1);
  return bf16_lanes(v.v, svlsr_n_u32_x(all, mix32_lanes(sveor_n_u32_x(all, idx, key)), 16));
}

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
