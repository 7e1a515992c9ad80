// Compiled once per ISA next to kernels.cpp: fused layouts for the ops most used with 16-bit
// storage (torch's fused CPU optimizers, and the roofline probe that measures them). The span
// loop reads the storage kinds of kFusedKinds (params and grads, states, or both) and rounds its
// results back in registers, and likewise under master weights with float32 states; any other
// mixed layout, and these ops with a grad scale, float32 grads or stochastic rounding, go through
// the staging layer (staging.h) with the same bits.
#include <type_traits>

#include "kernel_table.h"
#include "pyoptk/apply.h"
#include "pyoptk/mode_table.h"
#include "pyoptk/ops/all.h"
#include "pyoptk/stored.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
namespace {

// The storage kinds with fused layouts: each has lane conversions in every lane header.
template <int... kDtypes>
struct Kinds {};
using FusedKinds = Kinds<kBFloat16, kFloat16>;

// (param, states, grad, master weights' 16-bit param or void) storage; the formula computes in
// float32.
template <class P, class S, class G, class M>
struct Layout {};

template <class Op, int kMode, class L>
struct StoredKernel;
template <class Op, int kMode, class P, class S, class G, class M>
struct StoredKernel<Op, kMode, Layout<P, S, G, M>> {
  static void run(char* const* ptrs, int64_t begin, int64_t n, const void* coeffs) {
    update_span<Op, kMode, float, P, S, G, M>(ptrs, begin, n, coeffs);
  }
};

// The storage kind of a layout's element type (void: no master weights).
template <class T>
struct Kind {
  static_assert(std::is_same<T, float>::value, "a layout holds float32 or a storage kind");
  static constexpr int kValue = kFloat32;
};
template <int kDtype>
struct Kind<Stored<kDtype>> {
  static constexpr int kValue = kDtype;
};
template <>
struct Kind<void> {
  static constexpr int kValue = kNoMaster;
};

// The span function of (op, layout, mode) if L is that layout: master weights need the pointer
// slot after the op's states (none is left for an op using all of them); an ISA with a base
// (PYOPTK_ISA_BASE) builds only the layouts its lanes change, those holding bfloat16 (the rest
// are its base's: isa_table.cpp falls back to them).
template <class Op, class P, class S, class G, class M>
SpanFn match(const StoredLayout& l, int mode) {
  constexpr bool kMirrorSlot = std::is_void<M>::value || Op::kNumStates < kMaxStates;
#ifdef PYOPTK_ISA_BASE
  constexpr bool kOwn = std::is_same<P, bf16_t>::value || std::is_same<S, bf16_t>::value ||
                       std::is_same<G, bf16_t>::value || std::is_same<M, bf16_t>::value;
#else
  constexpr bool kOwn = true;
#endif
  if constexpr (kMirrorSlot && kOwn) {
    if (l.param == Kind<P>::kValue && l.state == Kind<S>::kValue && l.grad == Kind<G>::kValue &&
        l.master == Kind<M>::kValue) {
      return kModeTable<SpanFn, StoredKernel, Op, Layout<P, S, G, M>>.fn[mode];
    }
  }
  return nullptr;
}

// Per fused kind R: R everywhere; R param and grad with float32 states; float32 param and grad
// with R states (state_dtype); master weights (a float32 param and states, an R grad, and the R
// param written from the result).
template <class Op, int... kDtypes>
SpanFn find_layout(Kinds<kDtypes...>, const StoredLayout& l, int mode) {
  SpanFn fn = nullptr;
  ((fn = fn ? fn : match<Op, Stored<kDtypes>, Stored<kDtypes>, Stored<kDtypes>, void>(l, mode)), ...);
  ((fn = fn ? fn : match<Op, Stored<kDtypes>, float, Stored<kDtypes>, void>(l, mode)), ...);
  ((fn = fn ? fn : match<Op, float, Stored<kDtypes>, float, void>(l, mode)), ...);
  ((fn = fn ? fn : match<Op, float, float, Stored<kDtypes>, Stored<kDtypes>>(l, mode)), ...);
  return fn;
}

}  // namespace

SpanFn find_stored(int op, const StoredLayout& layout, int mode) {
  if (mode < 0 || mode >= kMaxModes) return nullptr;
  switch (op) {
    case kOpStream:
      return find_layout<Stream>(FusedKinds{}, layout, mode);
    case kOpSgd:
      return find_layout<Sgd>(FusedKinds{}, layout, mode);
    case kOpAdam:
      return find_layout<Adam>(FusedKinds{}, layout, mode);
    case kOpAdagrad:
      return find_layout<Adagrad>(FusedKinds{}, layout, mode);
    default:
      return nullptr;
  }
}

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
