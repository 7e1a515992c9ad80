// The table of storage dtypes: one row per kind an array may be stored in. Shared by the CPU
// driver, the bindings and the CUDA kernels; the kinds' element types and conversions are in
// storage_kinds.h.
#pragma once
#include <cstdint>

namespace pyoptk {

// The dtypes the kernels compute in come first (the span tables' second index, kNumDtypes of
// them); the kinds after them are storage only, computed in float32: the span loop converts them
// in registers (a fused layout, csrc/cpu/kernels_stored.cpp) or the staging layer converts them a
// block at a time (csrc/cpu/staging.h).
enum Dtype : int { kFloat32 = 0, kFloat64 = 1, kNumDtypes, kBFloat16 = kNumDtypes, kFloat16, kNumStorageDtypes };

// A new storage kind: its enum value above, its row below, and its element type and conversions
// (storage_kinds.h: a Stored<kDtype> specialisation with scalar widen / narrow / narrow_sr, plus
// lane versions in simd/<isa>.h where a fused kernel should read it in registers).
//
// Block-quantized kinds (8- and 4-bit state whose elements share a per-block scale) plug in as a
// row with `block` elements per scale: their conversions then take the block's scale as well
// (widen(src, scale, dst, n), narrow(src, dst, scale_out, n)), the scales live in a side array of
// numel / block floats that the plan carries next to the data pointer, and the staging layer,
// whose blocks are a multiple of any block size, converts them whole blocks at a time.
struct StorageKind {
  const char* name;  // as NumPy and torch spell it
  int8_t bytes;      // per element
  int8_t computes_in;  // the Dtype the kernels compute it in: itself, or kFloat32
};

constexpr StorageKind kStorageKinds[kNumStorageDtypes] = {
    {"float32", 4, kFloat32},
    {"float64", 8, kFloat64},
    {"bfloat16", 2, kFloat32},
    {"float16", 2, kFloat32},
};

// Bytes per element of a Dtype.
constexpr int item_size(int dtype) { return kStorageKinds[dtype].bytes; }

// Stored narrower than it computes: converted on the way in and rounded on the way out.
// False for -1 (not a storage kind).
constexpr bool is_narrow(int dtype) {
  return dtype >= 0 && dtype < kNumStorageDtypes && kStorageKinds[dtype].computes_in != dtype;
}

// The kinds a state of a param computing in `dtype` may be stored in (bit k: kind k): every kind
// that computes in it (float32: float32, bfloat16, float16; float64: float64).
constexpr unsigned kinds_computing_in(int dtype) {
  unsigned mask = 0;
  for (int k = 0; k < kNumStorageDtypes; ++k) mask |= kStorageKinds[k].computes_in == dtype ? 1u << k : 0u;
  return mask;
}

}  // namespace pyoptk
