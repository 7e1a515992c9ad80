// Compiled once per (ISA, shard) (CMake: pyoptk_isa, PYOPTK_ISA_NS, PYOPTK_SIMD_HEADER,
// PYOPTK_SHARD and the -m flags). Instantiates update_span for every op of the shard x valid mode
// x dtype, and (shard 0) reduce_block for every reduction kind x dtype, and exports a lookup over
// each, which the ISA's row (isa_table.cpp) points to.
// No static initializers and no STL code here: everything below is constant data.
#include "kernel_table.h"
#include "pyoptk/apply.h"
#include "pyoptk/mode_table.h"
#include "pyoptk/ops/all.h"
#include "pyoptk/reduce.h"

#ifndef PYOPTK_SHARD
#define PYOPTK_SHARD 0
#endif
static_assert(PYOPTK_SHARD >= 0 && PYOPTK_SHARD < pyoptk::kKernelShards, "PYOPTK_SHARD out of range");

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

#if PYOPTK_SHARD == 0
// Same order as ReduceKind.
constexpr ReduceFn kReduceTable[kNumReduceKinds][kNumDtypes] = {
#define PYOPTK_REDUCE_ENTRY(R) {&reduce_block<R, float>, &reduce_block<R, double>},
    PYOPTK_REDUCE_ENTRY(SumSquares) PYOPTK_REDUCE_ENTRY(Dot) PYOPTK_REDUCE_ENTRY(SumAbs)
    PYOPTK_REDUCE_ENTRY(MaxAbs) PYOPTK_REDUCE_ENTRY(MinAbs) PYOPTK_REDUCE_ENTRY(SumPow)
    PYOPTK_REDUCE_ENTRY(CountNonzero) PYOPTK_REDUCE_ENTRY(SumSquaresAxpy)
#undef PYOPTK_REDUCE_ENTRY
};
#endif

}  // namespace

template <int kShard>
SpanFn find_span(int op, int dtype, int mode) {
  return lookup_mode<SpanFn, SpanKernel, kShard, kKernelShards>(op, dtype, mode);
}
template SpanFn find_span<PYOPTK_SHARD>(int op, int dtype, int mode);

#if PYOPTK_SHARD == 0
ReduceFn find_reduce(int kind, int dtype) {
  if (kind < 0 || kind >= kNumReduceKinds || dtype < 0 || dtype >= kNumDtypes) return nullptr;
  return kReduceTable[kind][dtype];
}
#endif

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
