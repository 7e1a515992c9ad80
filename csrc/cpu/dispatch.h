// Run-time choice of the ISA build: the best one the CPU supports, which tests may lower.
#pragma once

#include "pyoptk/kernel_table.h"

namespace pyoptk {

// kAvx512Bf16: AVX-512 plus its BF16 conversions (Zen 4+, Cooper Lake, Sapphire Rapids+). Only
// the 16-bit units (kernels_stored.cpp, convert.cpp) are built for it; its other kernels are
// kAvx512's.
enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3 };
constexpr int kNumIsas = 4;

const char* isa_name(Isa isa);
bool isa_available(Isa isa);  // compiled into this binary and supported by this CPU
Isa best_isa();
Isa active_isa();
void set_active_isa(Isa isa);  // caller checks isa_available first

SpanFn lookup(int op, int dtype, int mode);  // through the active ISA
ReduceFn reduce_lookup(int kind, int dtype);  // through the active ISA
const ConvertFns* convert_fns();               // through the active ISA
SpanFn lookup_stored(int op, int layout, int mode);  // through the active ISA; may be nullptr

}  // namespace pyoptk
