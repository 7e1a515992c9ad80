// Run-time choice of the ISA build: the best one the CPU supports, which tests may lower.
#pragma once

#include "pyoptk/kernel_table.h"

namespace pyoptk {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
constexpr int kNumIsas = 3;

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
