// Compiled once per ISA (CMake: PYOPTK_ISA_LEVEL, PYOPTK_ISA_NS, PYOPTK_LOOKUP and the -m flags).
// Instantiates update_span for every op x valid mode x dtype and reduce_block for every reduction
// kind x dtype, and exports a lookup over each.
// No static initializers and no STL code here: everything below is constant data.
#include <utility>

#include "pyoptk/apply.h"
#include "pyoptk/kernel_table.h"
#include "pyoptk/ops/all.h"
#include "pyoptk/reduce.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
namespace {

struct ModeTable {
  SpanFn fn[kMaxModes];
};

template <class Op, class T, int kMode>
constexpr SpanFn entry() {
  if constexpr (kMode < (1 << Op::kNumFlags) && Op::valid(kMode)) {
    return &update_span<Op, kMode, T>;
  } else {
    return nullptr;
  }
}

template <class Op, class T, int... kModes>
constexpr ModeTable make_table(std::integer_sequence<int, kModes...>) {
  return ModeTable{{entry<Op, T, kModes>()...}};
}

template <class Op, class T>
constexpr ModeTable kModeTable = make_table<Op, T>(std::make_integer_sequence<int, kMaxModes>{});

constexpr const ModeTable* kTables[kNumOps][kNumDtypes] = {
#define PYOPTK_OP_TABLES(Op) {&kModeTable<Op, float>, &kModeTable<Op, double>},
    PYOPTK_FOR_EACH_OP(PYOPTK_OP_TABLES)
#undef PYOPTK_OP_TABLES
};

// Same order as ReduceKind.
constexpr ReduceFn kReduceTable[kNumReduceKinds][kNumDtypes] = {
#define PYOPTK_REDUCE_ENTRY(R) {&reduce_block<R, float>, &reduce_block<R, double>},
    PYOPTK_REDUCE_ENTRY(SumSquares) PYOPTK_REDUCE_ENTRY(Dot) PYOPTK_REDUCE_ENTRY(SumAbs)
    PYOPTK_REDUCE_ENTRY(MaxAbs) PYOPTK_REDUCE_ENTRY(MinAbs) PYOPTK_REDUCE_ENTRY(SumPow)
    PYOPTK_REDUCE_ENTRY(CountNonzero)
#undef PYOPTK_REDUCE_ENTRY
};

}  // namespace
}  // namespace PYOPTK_ISA_NS

SpanFn PYOPTK_LOOKUP(int op, int dtype, int mode) {
  if (op < 0 || op >= kNumOps || dtype < 0 || dtype >= kNumDtypes || mode < 0 || mode >= kMaxModes) {
    return nullptr;
  }
  return kTables[op][dtype]->fn[mode];
}

ReduceFn PYOPTK_REDUCE_LOOKUP(int kind, int dtype) {
  if (kind < 0 || kind >= kNumReduceKinds || dtype < 0 || dtype >= kNumDtypes) return nullptr;
  return kReduceTable[kind][dtype];
}

}  // namespace pyoptk
