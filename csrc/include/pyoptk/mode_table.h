// The table from mode bits to a compiled kernel, for every op and dtype: built at compile time
// from the op's `valid(mode)`, shared by the CPU span functions and the CUDA launchers, so both
// instantiate exactly the same flag combinations.
#pragma once
#include <utility>

#include "pyoptk/dtype.h"
#include "pyoptk/ops/all.h"

// The kernels of each ISA (and of CUDA) are split into kKernelShards translation units, which
// compile in parallel (CMake's PYOPTK_KERNEL_SHARDS); shard k holds the ops whose
// id % kKernelShards == k. A new op or dtype lands in a shard by itself: no build-file edit.
#ifndef PYOPTK_KERNEL_SHARDS
#define PYOPTK_KERNEL_SHARDS 1
#endif

namespace pyoptk {
constexpr int kKernelShards = PYOPTK_KERNEL_SHARDS;

inline namespace PYOPTK_ISA_NS {

template <class Fn>
struct ModeTable {
  Fn fn[kMaxModes];
};

// Kernel<Op, kMode, T>::run is the entry for a mode the op instantiates; other modes get nullptr
// (and the kernel is never instantiated for them).
template <class Fn, template <class, int, class> class Kernel, class Op, class T, int kMode>
constexpr Fn mode_entry() {
  if constexpr (kMode < (1 << Op::kNumFlags) && Op::valid(kMode)) {
    return &Kernel<Op, kMode, T>::run;
  } else {
    return nullptr;
  }
}

template <class Fn, template <class, int, class> class Kernel, class Op, class T, int... kModes>
constexpr ModeTable<Fn> make_mode_table(std::integer_sequence<int, kModes...>) {
  return ModeTable<Fn>{{mode_entry<Fn, Kernel, Op, T, kModes>()...}};
}

template <class Fn, template <class, int, class> class Kernel, class Op, class T>
constexpr ModeTable<Fn> kModeTable = make_mode_table<Fn, Kernel, Op, T>(std::make_integer_sequence<int, kMaxModes>{});

// The kernels are compiled in shards, one translation unit each, so that they build in parallel:
// shard kShard of kNumShards holds the ops whose id % kNumShards == kShard (the others' tables
// are null and never instantiated). The whole op list is shard 0 of 1.
template <class Fn, template <class, int, class> class Kernel, int kShard, int kNumShards, class Op, int kId, class T>
constexpr const ModeTable<Fn>* shard_table() {
  if constexpr (kId % kNumShards == kShard) {
    return &kModeTable<Fn, Kernel, Op, T>;
  } else {
    return nullptr;
  }
}

// kModeTables<Fn, Kernel, shard, shards>[op][dtype]: every op of ops/all.h, float32 then float64.
template <class Fn, template <class, int, class> class Kernel, int kShard = 0, int kNumShards = 1>
constexpr const ModeTable<Fn>* kModeTables[kNumOps][kNumDtypes] = {
#define PYOPTK_OP_TABLES(Op)                                             \
  {shard_table<Fn, Kernel, kShard, kNumShards, Op, kOp##Op, float>(), \
   shard_table<Fn, Kernel, kShard, kNumShards, Op, kOp##Op, double>()},
    PYOPTK_FOR_EACH_OP(PYOPTK_OP_TABLES)
#undef PYOPTK_OP_TABLES
};

// The entry for (op, dtype, mode), nullptr when out of range, not in this shard or not instantiated.
template <class Fn, template <class, int, class> class Kernel, int kShard = 0, int kNumShards = 1>
constexpr Fn lookup_mode(int op, int dtype, int mode) {
  if (op < 0 || op >= kNumOps || dtype < 0 || dtype >= kNumDtypes || mode < 0 || mode >= kMaxModes) {
    return nullptr;
  }
  const ModeTable<Fn>* table = kModeTables<Fn, Kernel, kShard, kNumShards>[op][dtype];
  return table != nullptr ? table->fn[mode] : nullptr;
}

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
