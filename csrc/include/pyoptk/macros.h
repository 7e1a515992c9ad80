// Portability macros shared by the CPU kernels and (later) the CUDA kernels.
#pragma once

// Per-element math is marked host+device so a CUDA kernel can call the very same formula.
#if defined(__CUDACC__)
#define PYOPTK_HD __host__ __device__ __forceinline__
#else
#define PYOPTK_HD inline __attribute__((always_inline))
#endif

#define PYOPTK_RESTRICT __restrict__

// Each ISA translation unit defines its own namespace (scalar, avx2, avx512) so that the
// linker can never merge an AVX-512 instance of an inline function into the scalar path.
#ifndef PYOPTK_ISA_NS
#define PYOPTK_ISA_NS generic
#endif
