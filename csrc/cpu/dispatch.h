// Run-time choice of the ISA build: the best one the CPU supports, which tests may lower. The ISAs
// are those CMake's pyoptk_isa entries compiled, lowest first, numbered 0 .. num_isas() - 1.
#pragma once

#include "kernel_table.h"

namespace pyoptk {

int num_isas();
const char* isa_name(int isa);
bool isa_available(int isa);  // compiled into this binary and supported by this CPU
// The CPU features the ISA needs, as its CMake entry names them ("avx2 fma f16c"; "": none).
const char* isa_cpu_features(int isa);
int best_isa();
int active_isa();
void set_active_isa(int isa);  // caller checks isa_available first

// Through the active ISA's table.
SpanFn lookup(int op, int dtype, int mode);
ReduceFn reduce_lookup(int kind, int dtype);
const ConvertFns* convert_fns();  // indexed by Dtype
const QuantFns* quant_fns();
SpanFn lookup_stored(int op, const StoredLayout& layout, int mode);  // nullptr: no fused kernel

}  // namespace pyoptk
