// Mixed precision without a second copy of any formula or loop: a task whose arrays are not all
// float32 runs its span in L1-sized blocks; each 16-bit array (and a scaled grad) is converted
// into a float32 scratch block, the op's float32 span function runs on the scratch pointers, and
// the written blocks are rounded back (to nearest even, or stochastically).
#pragma once
#include <cstdint>

#include "kernel_table.h"
#include "quantize.h"

namespace pyoptk {

struct Task;

// A block-quantized slot (quantize.h): its codes are the task's pointer, its per-block absmax here.
struct QuantSlot {
  const QuantMap* map = nullptr;  // null: not quantized
  float* scales = nullptr;
  int block = 0;
};

struct Staging {
  const ConvertFns* cvt;              // of the ISA the step runs on, indexed by Dtype
  const QuantFns* qfn = nullptr;      // of that ISA: the quantized slots' (de)quantization
  int8_t dtype[2 + kMaxStates];       // storage dtype per slot {param, grad, states}; not is_narrow: in place
  char* mirror = nullptr;             // master weights: the narrow param, rounded from slot 0's result
  int8_t mirror_dtype = kFloat32;
  const float* grad_divisor = nullptr;  // grad_scale: the grad is divided by it as it is read (any dtype)
  bool stochastic = false;            // narrow params/states/mirror rounded stochastically
  uint64_t sr_key = 0;                // (seed, rounding step, param index), mixed
  QuantSlot quant[2 + kMaxStates];    // states kept as block-quantized codes (dtype[k] is float32)
  bool stochastic_codes = false;      // their codes rounded stochastically, keyed by code_key
  uint64_t code_key = 0;              // (seed, rounding step, param index), mixed
};

// Elements per staged block: six float32 slots of it fit in L1 with room to spare. A multiple of
// every quantization block (quantize.h), so a staged block holds whole ones.
constexpr int64_t kStageBlock = 512;
static_assert(kStageBlock % kMaxQuantBlock == 0, "a staged block holds whole quantization blocks");

// Runs task elements [begin, begin + n) through task.stage.
void run_staged(const Task& task, int64_t begin, int64_t n);

// mix64, the mixer of every rounding key: quantize.h.

}  // namespace pyoptk
