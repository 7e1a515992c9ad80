// Compiled once per ISA (CMake: PYOPTK_ISA_LEVEL, PYOPTK_ISA_NS, PYOPTK_LOOKUP and the -m flags).
// Instantiates update_span for every op x valid mode x dtype and reduce_block for every reduction
// kind x dtype, and exports a lookup over each.
// No static initializers and no STL code here: everything below is constant data.
#include "pyoptk/apply.h"
#include "pyoptk/kernel_table.h"
#include "pyoptk/mode_table.h"
#include "pyoptk/ops/all.h"
#include "pyoptk/reduce.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
namespace {

// The span function of (op, mode, dtype), as mode_table.h wants it.
template <class Op, int kMode, class T>
struct SpanKernel {
  static void run(char* const* ptrs, int64_t begin, int64_t n, const void* coeffs) {
    update_span<Op, kMode, T>(ptrs, begin, n, coeffs);
  }
};

// Same order as ReduceKind.
constexpr ReduceFn kReduceTable[kNumReduceKinds][kNumDtypes] = {
#define PYOPTK_REDUCE_ENTRY(R) {&reduce_block<R, float>, &reduce_block<R, double>},
    PYOPTK_REDUCE_ENTRY(SumSquares) PYOPTK_REDUCE_ENTRY(Dot) PYOPTK_REDUCE_ENTRY(SumAbs)
    PYOPTK_REDUCE_ENTRY(MaxAbs) PYOPTK_REDUCE_ENTRY(MinAbs) PYOPTK_REDUCE_ENTRY(SumPow)
    PYOPTK_REDUCE_ENTRY(CountNonzero) PYOPTK_REDUCE_ENTRY(SumSquaresAxpy)
#undef PYOPTK_REDUCE_ENTRY
};

}  // namespace
}  // namespace PYOPTK_ISA_NS

SpanFn PYOPTK_LOOKUP(int op, int dtype, int mode) {
  return lookup_mode<SpanFn, SpanKernel>(op, dtype, mode);
}

ReduceFn PYOPTK_REDUCE_LOOKUP(int kind, int dtype) {
  if (kind < 0 || kind >= kNumReduceKinds || dtype < 0 || dtype >= kNumDtypes) return nullptr;
  return kReduceTable[kind][dtype];
}

}  // namespace pyoptk
