// The step engine: a plan over the arrays of a fused update (params, states, master copies),
// checked once (dtypes, shapes, layout, modes, no written array overlapping another), then run
// step after step with only the grads and coefficients new, as one multi-tensor call. Plain C++:
// callers describe their arrays as ArrayRefs (array.h) and catch errors.h's exceptions.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "../cpu/multi_tensor.h"
#include "../cpu/registry.h"
#include "array.h"
#include "coeffs.h"
#include "extents.h"

namespace pyoptk {

// A state kept block-quantized (quantize.h): `states[k]` holds its codes (uint8, one per element
// or two per byte), `scales` one float32 absmax per block of `block` elements, in map `map`.
struct QuantRef {
  int map = -1;  // a QuantMapId; -1: the state is a plain array
  int block = 0;
  ArrayRef scales;
};

// One param's arrays, as a step takes them.
struct EntrySpec {
  int64_t index = 0;  // the param's number in messages and in stochastic rounding keys
  int mode = 0;
  int64_t slot = 0;   // its coefficient set
  ArrayRef param;     // under master weights: the float32 master copy the op updates
  ArrayRef states[kMaxStates];
  bool given[kMaxStates] = {};  // state k given (exactly the mode's states must be)
  QuantRef quant[kMaxStates];
  ArrayRef mirror;              // master weights: the 16-bit param written from `param`
  bool has_mirror = false;
};

// A grad as one step reads it (ops that read none take none given).
struct GradRef {
  bool given = false;
  const char* data = nullptr;
  int dtype = -1;
  int64_t numel = 0;
};

struct StepOptions {
  bool scaled = false;  // grads are divided by grad_scale as they are read (torch's fused unscale)
  float grad_scale = 1.0f;
  bool stochastic = false;  // 16-bit arrays written with stochastic rounding keyed by rounding_key
  uint64_t rounding_key = 0;
  bool stochastic_codes = false;  // quantized states' codes rounded stochastically, keyed by code_key
  uint64_t code_key = 0;
  int threads = 0;  // 0: pyoptk's setting
};

// How the last step ran an entry (kernel_path_name names the kernel, kernel_path_text says why).
enum class KernelPath : uint8_t {
  kDirect,         // every array in the dtype the op computes in: its span function as is
  kFused,          // 16-bit arrays converted in registers by a fused layout's span function
  kStaged,         // converted a block at a time through a float32 scratch (staging.h), because:
  kStagedRounding,   // stochastic rounding
  kStagedScaled,     // the grads are divided by grad_scale as they are read
  kStagedQuantized,  // a block-quantized state
  kStagedNoLayout,   // the active ISA has no fused kernel for this (param, grad, states, master) layout
};
const char* kernel_path_name(KernelPath path);  // "direct", "fused" or "staged"
const char* kernel_path_text(KernelPath path);  // why, in words

// The checked tasks of one step, ready to run (they point into it: it stays where it is made).
struct PreparedStep {
  PreparedStep() = default;
  PreparedStep(const PreparedStep&) = delete;
  PreparedStep& operator=(const PreparedStep&) = delete;
  std::vector<Task> tasks;
  std::vector<Staging> stages;
  std::vector<std::array<int8_t, 2 + kMaxStates>> itemsizes;  // bytes per element of each task's slots
  const CoeffBlock* coeffs = nullptr;
  size_t num_coeffs = 0;
  StepOptions options;
  float divisor = 1.0f;
  const ConvertFns* cvt = nullptr;
  // The span function of the last (dtype, mode) looked up: the entries of a group share one.
  int fn_dtype = -1, fn_mode = -1;
  SpanFn fn = nullptr;
  void run() const { run_tasks(tasks.data(), static_cast<int64_t>(tasks.size()), options.threads); }
};

class StepPlan {
 public:
  struct Entry {
    int64_t index;
    int mode;
    int64_t slot;
    int dtype;  // the dtype the op computes in: float64 for float64 params, else float32
    int64_t numel;
    char* ptrs[2 + kMaxStates];  // {param, grad (per step), states...}
    std::vector<int> state_ids;  // the op state index of each present state
    // Mixed precision: the storage dtype of each slot (the grad's set per step), and the 16-bit
    // param written from the float32 master copy (master weights), if any.
    int8_t slot_dtype[2 + kMaxStates];
    int8_t slot_size[2 + kMaxStates];  // their bytes per element (the grad's set per step)
    bool staged = false;  // some array is not in the compute dtype
    QuantSlot quant[2 + kMaxStates];  // block-quantized states (their slot_dtype is float32)
    int64_t grain = 1;                // the largest quantization block: threads split at its multiples
    char* mirror = nullptr;
    int8_t mirror_dtype = -1;
    KernelPath path = KernelPath::kDirect;  // as of the last take()
    const char* checked_grad = nullptr;  // a grad buffer already found clear of every written array
    int checked_grad_dtype = -1;
    // The storage dtype its grad comes in: the 16-bit param's with master weights, else the param's.
    int grad_dtype() const { return mirror ? mirror_dtype : slot_dtype[0]; }
    // The grad dtypes accepted: grad_dtype(), or float32 for a float32-computing param.
    unsigned grad_dtypes() const { return (1u << grad_dtype()) | (dtype == kFloat32 ? 1u << kFloat32 : 0u); }
  };

  explicit StepPlan(int op) : op_(op) {}
  // Checks one param's arrays and adds them; every entry is added before seal().
  void add(const EntrySpec& spec);
  // Refuses any overlap of a written array with another.
  void seal();

  // Checks the grads (grads[i] for entry i) and the coefficient sets and turns the step into
  // tasks; nothing is written. Returns the number of contiguous spans it runs as (arrays that
  // continue each other in memory are merged). The same as begin(), take() for each entry in
  // order, finish(): callers that read each grad as they go (one pass over the entries) call those.
  size_t prepare(const GradRef* grads, const CoeffBlock* coeffs, size_t num_coeffs, const StepOptions& options,
                 PreparedStep& out);
  void begin(const CoeffBlock* coeffs, size_t num_coeffs, const StepOptions& options, PreparedStep& out) const;
  void take(size_t i, const GradRef& grad, PreparedStep& out);  // entry i's grad checked, its task made
  size_t finish(PreparedStep& out) const;

  const OpInfo& op() const { return kOpInfo[op_]; }
  size_t size() const { return entries_.size(); }
  const Entry& entry(size_t i) const { return entries_[i]; }

 private:
  static SpanFn fused_layout(int op, const Entry& e, int grad_dtype);
  int op_;
  std::vector<Entry> entries_;
  std::vector<Extent> written_;  // sorted by begin, pairwise disjoint once sealed
};

}  // namespace pyoptk
