// Compiled once per ISA with its 16-bit units (CMake's pyoptk_isa): the ISA's row of the ISA
// table, isa_table_<isa>(), which dispatch.cpp lists. Constant data only: no static initializer.
// An ISA with a base (PYOPTK_ISA_BASE) runs its base's spans and reductions, and its base's
// fused layouts where it builds none of its own (kernels_stored.cpp).
#include <utility>

#include "kernel_table.h"

#define PYOPTK_CONCAT2(a, b) a##b
#define PYOPTK_CONCAT(a, b) PYOPTK_CONCAT2(a, b)
#define PYOPTK_STR2(a) #a
#define PYOPTK_STR(a) PYOPTK_STR2(a)
#ifndef PYOPTK_ISA_BASE
#define PYOPTK_ISA_BASE PYOPTK_ISA_NS
#define PYOPTK_OWN_KERNELS 1
#endif

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
SpanFn find_stored(int op, const StoredLayout& layout, int mode);  // kernels_stored.cpp
const ConvertFns* convert_table();                                 // convert.cpp
const QuantFns* quant_table();                                     // quantize_isa.cpp
}  // namespace PYOPTK_ISA_NS

namespace PYOPTK_ISA_BASE {
template <int kShard>
SpanFn find_span(int op, int dtype, int mode);  // kernels.cpp, shard kShard
ReduceFn find_reduce(int kind, int dtype);      // kernels.cpp, shard 0
SpanFn find_stored(int op, const StoredLayout& layout, int mode);
}  // namespace PYOPTK_ISA_BASE

inline namespace PYOPTK_ISA_NS {
namespace {

#ifndef PYOPTK_OWN_KERNELS
SpanFn find_stored_or_base(int op, const StoredLayout& layout, int mode) {
  if (SpanFn fn = find_stored(op, layout, mode)) return fn;
  return PYOPTK_ISA_BASE::find_stored(op, layout, mode);
}
#endif

template <int... kShards>
constexpr IsaTable make_table(std::integer_sequence<int, kShards...>) {
#ifdef PYOPTK_OWN_KERNELS
  return {PYOPTK_STR(PYOPTK_ISA_NS), {&find_span<kShards>...}, &find_reduce, &convert_table, &quant_table,
          &find_stored};
#else
  return {PYOPTK_STR(PYOPTK_ISA_NS), {&PYOPTK_ISA_BASE::find_span<kShards>...}, &PYOPTK_ISA_BASE::find_reduce,
          &convert_table, &quant_table, &find_stored_or_base};
#endif
}

}  // namespace
}  // namespace PYOPTK_ISA_NS

namespace {
constexpr IsaTable kTable = make_table(std::make_integer_sequence<int, kKernelShards>{});
}  // namespace

const IsaTable* PYOPTK_CONCAT(isa_table_, PYOPTK_ISA_NS)() { return &kTable; }

}  // namespace pyoptk
