// Compiled with baseline flags only: this code runs before we know what the CPU can do.
#include "dispatch.h"

#include <atomic>
#include <utility>

namespace pyoptk {
namespace {

bool cpu_supports(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Isa::kAvx512Bf16:
      return cpu_supports(Isa::kAvx512) && __builtin_cpu_supports("avx512bf16");
  }
  return false;
#else
  return isa == Isa::kScalar;
#endif
}

bool compiled(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
#ifdef PYOPTK_HAVE_AVX2
      return true;
#else
      return false;
#endif
    case Isa::kAvx512:
#ifdef PYOPTK_HAVE_AVX512
      return true;
#else
      return false;
#endif
    case Isa::kAvx512Bf16:
#ifdef PYOPTK_HAVE_AVX512_BF16
      return true;
#else
      return false;
#endif
  }
  return false;
}

std::atomic<int> g_active{-1};

// Per ISA, the lookups of its kernel shards, indexed by shard (kernel_table.h).
using ShardLookup = SpanFn (*)(int op, int dtype, int mode);
#define PYOPTK_SHARD_LOOKUPS(isa)                                                   \
  template <int... kShards>                                                         \
  constexpr ShardLookup isa##_shards(std::integer_sequence<int, kShards...>, int s) { \
    constexpr ShardLookup kTable[] = {&lookup_##isa<kShards>...};                   \
    return kTable[s];                                                               \
  }
PYOPTK_SHARD_LOOKUPS(scalar)
#ifdef PYOPTK_HAVE_AVX2
PYOPTK_SHARD_LOOKUPS(avx2)
#endif
#ifdef PYOPTK_HAVE_AVX512
PYOPTK_SHARD_LOOKUPS(avx512)
#endif
#undef PYOPTK_SHARD_LOOKUPS
constexpr auto kShardSeq = std::make_integer_sequence<int, kKernelShards>{};

}  // namespace

const char* isa_name(Isa isa) {
  static const char* const kNames[kNumIsas] = {"scalar", "avx2", "avx512", "avx512_bf16"};
  return kNames[static_cast<int>(isa)];
}

bool isa_available(Isa isa) { return compiled(isa) && cpu_supports(isa); }

Isa best_isa() {
  for (int i = kNumIsas - 1; i > 0; --i) {
    if (isa_available(static_cast<Isa>(i))) return static_cast<Isa>(i);
  }
  return Isa::kScalar;
}

Isa active_isa() {
  int a = g_active.load(std::memory_order_relaxed);
  if (a < 0) {
    a = static_cast<int>(best_isa());
    g_active.store(a, std::memory_order_relaxed);
  }
  return static_cast<Isa>(a);
}

void set_active_isa(Isa isa) { g_active.store(static_cast<int>(isa), std::memory_order_relaxed); }

SpanFn lookup(int op, int dtype, int mode) {
  if (op < 0) return nullptr;  // the shard's lookup checks the upper bound
  const int shard = op % kKernelShards;
  switch (active_isa()) {
#ifdef PYOPTK_HAVE_AVX512
    case Isa::kAvx512:
    case Isa::kAvx512Bf16:
      return avx512_shards(kShardSeq, shard)(op, dtype, mode);
#endif
#ifdef PYOPTK_HAVE_AVX2
    case Isa::kAvx2:
      return avx2_shards(kShardSeq, shard)(op, dtype, mode);
#endif
    default:
      return scalar_shards(kShardSeq, shard)(op, dtype, mode);
  }
}

ReduceFn reduce_lookup(int kind, int dtype) {
  switch (active_isa()) {
#ifdef PYOPTK_HAVE_AVX512
    case Isa::kAvx512:
    case Isa::kAvx512Bf16:
      return reduce_lookup_avx512(kind, dtype);
#endif
#ifdef PYOPTK_HAVE_AVX2
    case Isa::kAvx2:
      return reduce_lookup_avx2(kind, dtype);
#endif
    default:
      return reduce_lookup_scalar(kind, dtype);
  }
}

const ConvertFns* convert_fns() {
  switch (active_isa()) {
#ifdef PYOPTK_HAVE_AVX512_BF16
    case Isa::kAvx512Bf16:
      return convert_fns_avx512_bf16();
#endif
#ifdef PYOPTK_HAVE_AVX512
    case Isa::kAvx512:
      return convert_fns_avx512();
#endif
#ifdef PYOPTK_HAVE_AVX2
    case Isa::kAvx2:
      return convert_fns_avx2();
#endif
    default:
      return convert_fns_scalar();
  }
}

SpanFn lookup_stored(int op, int layout, int mode) {
  switch (active_isa()) {
#ifdef PYOPTK_HAVE_AVX512_BF16
    case Isa::kAvx512Bf16:
      if (SpanFn fn = lookup_stored_avx512_bf16(op, layout, mode)) return fn;
      return lookup_stored_avx512(op, layout, mode);  // its float16 layouts
#endif
#ifdef PYOPTK_HAVE_AVX512
    case Isa::kAvx512:
      return lookup_stored_avx512(op, layout, mode);
#endif
#ifdef PYOPTK_HAVE_AVX2
    case Isa::kAvx2:
      return lookup_stored_avx2(op, layout, mode);
#endif
    default:
      return lookup_stored_scalar(op, layout, mode);
  }
}

}  // namespace pyoptk
