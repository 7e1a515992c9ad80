// Compiled once per ISA next to kernels.cpp: fused 16-bit layouts for the ops most used with them
// (torch's fused CPU optimizers, and the roofline probe that measures them). The span loop reads
// bfloat16/float16 params and grads (and states) and rounds its results back in registers, and
// likewise under master weights with float32 states; any other mixed layout, and these ops with a
// grad scale, float32 grads or stochastic rounding, go through the staging layer (staging.h) with
// the same bits.
#include <type_traits>

#include "pyoptk/apply.h"
#include "pyoptk/kernel_table.h"
#include "pyoptk/mode_table.h"
#include "pyoptk/ops/all.h"
#include "pyoptk/stored.h"

#define PYOPTK_CONCAT2(a, b) a##b
#define PYOPTK_CONCAT(a, b) PYOPTK_CONCAT2(a, b)
#ifndef PYOPTK_ISA_BF16
#define PYOPTK_ISA_BF16 0
#endif

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
namespace {

// (param, states, grad, master weights' 16-bit param or void) storage; the formula computes in
// float32.
template <class P, class S, class G = P, class M = void>
struct Layout {};

template <class Op, int kMode, class L>
struct StoredKernel;
template <class Op, int kMode, class P, class S, class G, class M>
struct StoredKernel<Op, kMode, Layout<P, S, G, M>> {
  static void run(char* const* ptrs, int64_t begin, int64_t n, const void* coeffs) {
    update_span<Op, kMode, float, P, S, G, M>(ptrs, begin, n, coeffs);
  }
};

// The table of one layout, or nullptr: master weights need the pointer slot after the op's states
// (none is left for an op using all of them); the avx512_bf16 build differs from avx512's in
// bfloat16 rounding only, so its float16 layouts are avx512's (dispatch.cpp falls back to them).
template <class Op, class P, class S, class G = P, class M = void>
constexpr const ModeTable<SpanFn>* layout_table() {
  constexpr bool kMirrorSlot = std::is_void<M>::value || Op::kNumStates < kMaxStates;
  constexpr bool kFloat16 = std::is_same<G, f16_t>::value;
  if constexpr (kMirrorSlot && !(kFloat16 && PYOPTK_ISA_BF16)) {
    return &kModeTable<SpanFn, StoredKernel, Op, Layout<P, S, G, M>>;
  } else {
    return nullptr;
  }
}

// Same order as StoredLayout (kernel_table.h); master weights: a float32 param and states, a
// 16-bit grad, and the 16-bit param written from the result.
template <class Op>
constexpr const ModeTable<SpanFn>* kStoredTables[kNumStoredLayouts] = {
    layout_table<Op, bf16_t, bf16_t>(),
    layout_table<Op, bf16_t, float>(),
    layout_table<Op, f16_t, f16_t>(),
    layout_table<Op, f16_t, float>(),
    layout_table<Op, float, float, bf16_t, bf16_t>(),
    layout_table<Op, float, float, f16_t, f16_t>(),
};

const ModeTable<SpanFn>* const* stored_tables(int op) {
  switch (op) {
    case kOpStream:
      return kStoredTables<Stream>;
    case kOpSgd:
      return kStoredTables<Sgd>;
    case kOpAdam:
      return kStoredTables<Adam>;
    case kOpAdagrad:
      return kStoredTables<Adagrad>;
    default:
      return nullptr;
  }
}

}  // namespace
}  // namespace PYOPTK_ISA_NS

SpanFn PYOPTK_CONCAT(lookup_stored_, PYOPTK_ISA_NS)(int op, int layout, int mode) {
  const ModeTable<SpanFn>* const* tables = stored_tables(op);
  if (tables == nullptr || layout < 0 || layout >= kNumStoredLayouts || mode < 0 || mode >= kMaxModes) return nullptr;
  return tables[layout] == nullptr ? nullptr : tables[layout]->fn[mode];
}

}  // namespace pyoptk
