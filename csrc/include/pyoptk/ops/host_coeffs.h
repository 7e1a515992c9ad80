// Host-side per-step coefficients: the one place each algorithm's coefficients are computed, for
// the Python layer (_core.coeffs) and the C API alike. An op that has them declares, host-only,
//   kNumHypers, kHyperNames[]            its hyper-parameters, in this order (torch's functional names)
//   coeffs(h, step, scalars, c)          the kernel's coefficients for step `step` (1 for the first)
// and, when its coefficients read per-param scalar state (NAdam's mu_product, ASGD's eta and mu):
//   kNumScalars, kScalarNames[]          that state
//   init_scalars(h, s)                   its value before the first step
//   advance_scalars(h, step, s)          optional: its update before the kernel runs (NAdam)
//   finish_scalars(h, step, s)           optional: its update after the kernel ran (ASGD)
// `coeffs` sees the scalars as they are while the step runs (after advance, before finish).
// Arithmetic is double, written as the Python layer wrote it: Python's `x ** y` is C's pow, so the
// results are bit-identical (tests/test_coeffs.py pins that against the former Python code).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace pyoptk {

using CoeffsFn = void (*)(const double* hyper, int64_t step, const double* scalars, double* coeffs);
using ScalarsFn = void (*)(const double* hyper, int64_t step, double* scalars);

// torch keeps some scalar states in 0-d float32 tensors and re-rounds them every step.
inline double round_f32(double x) { return static_cast<double>(static_cast<float>(x)); }

template <class Op, class = void>
struct OpHostCoeffs {
  static constexpr int kNumHypers = 0;
  static constexpr const char* const* kHyperNames = nullptr;
  static constexpr CoeffsFn kCoeffs = nullptr;
};
template <class Op>
struct OpHostCoeffs<Op, std::void_t<decltype(Op::kNumHypers)>> {
  static constexpr int kNumHypers = Op::kNumHypers;
  static constexpr const char* const* kHyperNames = Op::kHyperNames;
  static constexpr CoeffsFn kCoeffs = &Op::coeffs;
};

template <class Op, class = void>
struct OpScalars {
  static constexpr int kNum = 0;
  static constexpr const char* const* kNames = nullptr;
  static constexpr ScalarsFn kInit = nullptr;
};
template <class Op>
struct OpScalars<Op, std::void_t<decltype(Op::kNumScalars)>> {
  static constexpr int kNum = Op::kNumScalars;
  static constexpr const char* const* kNames = Op::kScalarNames;
  static void init(const double* h, int64_t, double* s) { Op::init_scalars(h, s); }
  static constexpr ScalarsFn kInit = &init;
};

template <class Op, class = void>
struct OpAdvance {
  static constexpr ScalarsFn kFn = nullptr;
};
template <class Op>
struct OpAdvance<Op, std::void_t<decltype(&Op::advance_scalars)>> {
  static constexpr ScalarsFn kFn = &Op::advance_scalars;
};
template <class Op, class = void>
struct OpFinish {
  static constexpr ScalarsFn kFn = nullptr;
};
template <class Op>
struct OpFinish<Op, std::void_t<decltype(&Op::finish_scalars)>> {
  static constexpr ScalarsFn kFn = &Op::finish_scalars;
};

}  // namespace pyoptk
