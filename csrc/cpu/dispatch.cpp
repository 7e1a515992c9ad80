// Compiled with baseline flags only: this code runs before we know what the CPU can do.
#include "dispatch.h"

#include <atomic>

// PYOPTK_FOR_EACH_ISA(X): X(isa, CPU test, CPU features) per compiled ISA, lowest first, generated
// by CMake from its pyoptk_isa entries; the test names the features through PYOPTK_CPU_HAS, and
// the last field lists them ("avx2 fma f16c"; "": none).
#include "pyoptk_isas.h"

#if defined(__x86_64__) || defined(__i386__)
#define PYOPTK_CPU_HAS(feature) __builtin_cpu_supports(feature)
#elif defined(__aarch64__)
#include "arm_cpu.h"
#define PYOPTK_CPU_HAS(feature) arm_cpu_has(feature)
#else
#define PYOPTK_CPU_HAS(feature) false
#endif

namespace pyoptk {

// Each ISA's row (csrc/cpu/isa_table.cpp).
#define PYOPTK_DECLARE_ISA(isa, cpu_test, cpu_features) const IsaTable* isa_table_##isa();
PYOPTK_FOR_EACH_ISA(PYOPTK_DECLARE_ISA)
#undef PYOPTK_DECLARE_ISA

namespace {

struct Isa {
  const IsaTable* (*table)();
  bool (*cpu_supports)();
  const char* cpu_features;
};
constexpr Isa kIsas[] = {
#define PYOPTK_ISA_ENTRY(isa, cpu_test, cpu_features) {&isa_table_##isa, [] { return bool(cpu_test); }, cpu_features},
    PYOPTK_FOR_EACH_ISA(PYOPTK_ISA_ENTRY)
#undef PYOPTK_ISA_ENTRY
};
constexpr int kNumIsas = sizeof(kIsas) / sizeof(kIsas[0]);

// The active ISA's table; null until the first use picks the best one.
std::atomic<const IsaTable*> g_active{nullptr};

const IsaTable* active() {
  const IsaTable* t = g_active.load(std::memory_order_relaxed);
  if (t == nullptr) {
    t = kIsas[best_isa()].table();
    g_active.store(t, std::memory_order_relaxed);
  }
  return t;
}

}  // namespace

int num_isas() { return kNumIsas; }

const char* isa_name(int isa) { return kIsas[isa].table()->name; }

bool isa_available(int isa) { return isa >= 0 && isa < kNumIsas && kIsas[isa].cpu_supports(); }

const char* isa_cpu_features(int isa) { return kIsas[isa].cpu_features; }

int best_isa() {
  for (int i = kNumIsas - 1; i > 0; --i) {
    if (isa_available(i)) return i;
  }
  return 0;
}

int active_isa() {
  const IsaTable* t = active();
  for (int i = 0; i < kNumIsas; ++i) {
    if (kIsas[i].table() == t) return i;
  }
  return 0;
}

void set_active_isa(int isa) { g_active.store(kIsas[isa].table(), std::memory_order_relaxed); }

SpanFn lookup(int op, int dtype, int mode) {
  if (op < 0) return nullptr;  // the shard's lookup checks the upper bound
  return active()->span[op % kKernelShards](op, dtype, mode);
}

ReduceFn reduce_lookup(int kind, int dtype) { return active()->reduce(kind, dtype); }

const ConvertFns* convert_fns() { return active()->convert(); }

const QuantFns* quant_fns() { return active()->quant(); }

SpanFn lookup_stored(int op, const StoredLayout& layout, int mode) { return active()->stored(op, layout, mode); }

}  // namespace pyoptk
