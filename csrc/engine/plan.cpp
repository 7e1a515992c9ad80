#include "plan.h"

#include <algorithm>
#include <array>

#include "../cpu/dispatch.h"
#include "errors.h"
#include "names.h"

namespace pyoptk {
namespace {

// Bytes per element of each pointer slot of a task.
using SlotSizes = std::array<int8_t, 2 + kMaxStates>;

// Joins a task to the one before it when every array continues where the other's ends (same span
// function and coefficients): a group whose params, grads and states are views into flat buffers
// ("arena") runs as one long span. Element-wise math: same result.
void coalesce(std::vector<Task>& tasks, const std::vector<SlotSizes>& itemsizes) {
  size_t out = 0;
  for (size_t k = 0; k < tasks.size(); ++k) {
    if (out > 0) {
      Task& last = tasks[out - 1];
      const Task& next = tasks[k];
      // Staged tasks keep their own extents: stochastic rounding is keyed by each param's index.
      bool joins = last.fn == next.fn && last.coeffs == next.coeffs && last.stage == nullptr && next.stage == nullptr;
      for (int j = 0; joins && j < 2 + kMaxStates; ++j) {
        joins = (last.ptrs[j] == nullptr && next.ptrs[j] == nullptr) ||
                (last.ptrs[j] != nullptr && itemsizes[k][j] == itemsizes[k - 1][j] &&
                 last.ptrs[j] + last.numel * itemsizes[k][j] == next.ptrs[j]);
      }
      if (joins) {
        last.numel += next.numel;
        continue;
      }
    }
    tasks[out++] = tasks[k];
  }
  tasks.resize(out);
}

// A quantized state of a float32-computing param of `numel` elements: codes of 1-byte items,
// exactly as many bytes as the map's codes take; scales float32, one per block; both flat
// (C-contiguous), aligned and writeable.
QuantSlot check_quant_state(const ArrayRef& codes, const QuantRef& q, int64_t numel, int compute, int64_t index,
                            const char* role, const OpInfo& info) {
  if (q.map < 0 || q.map >= kNumQuantMaps) throw ValueError(who(index, role, &info) + ": unknown quantization map");
  if (!valid_quant_block(q.block)) {
    throw ValueError(who(index, role, &info) + ": block_size " + std::to_string(q.block) + " is not a power of two in [" +
                     std::to_string(kMinQuantBlock) + ", " + std::to_string(kMaxQuantBlock) + "]");
  }
  if (compute != kFloat32) {
    throw TypeError(who(index, role, &info) + " is quantized; quantized state is for float32, bfloat16 and float16 params");
  }
  const QuantMap& map = quant_map(q.map);
  const int64_t bytes = quant_code_bytes(map.bits, numel), blocks = quant_blocks(numel, q.block);
  if (codes.itemsize != 1 || codes.numel != bytes) {
    throw ValueError(who(index, role, &info) + " holds " + std::to_string(codes.numel) + " items of " +
                     std::to_string(codes.itemsize) + " bytes; " + std::to_string(map.bits) + "-bit codes of " +
                     std::to_string(numel) + " elements take " + std::to_string(bytes) + " bytes (uint8)");
  }
  if (q.scales.dtype != kFloat32 || q.scales.numel != blocks) {
    throw ValueError(who(index, role, &info) + ": its scales must be " + std::to_string(blocks) +
                     " float32 values (one per block of " + std::to_string(q.block) + "), got " +
                     std::to_string(q.scales.numel) + " of dtype " + dtype_str(q.scales));
  }
  for (const ArrayRef* a : {&codes, &q.scales}) {
    if (!a->contiguous) throw ValueError(who(index, role, &info) + ": its codes and scales must be C-contiguous");
    if (!a->aligned) refuse_unaligned(a->itemsize, who(index, role, &info));
    if (!a->writeable) throw ValueError(who(index, role, &info) + " is read-only");
  }
  return {&map, reinterpret_cast<float*>(q.scales.data), q.block};
}

}  // namespace

// The fused kernel of the entry's (param, grad, states, master weights) storage kinds, whose
// states share one kind (none: the param's); nullptr when there is none (the staging layer runs it).
SpanFn StepPlan::fused_layout(int op, const Entry& e, int grad_dtype) {
  const int p = e.slot_dtype[0];
  int states = -1;
  for (int k : e.state_ids) {
    if (states >= 0 && e.slot_dtype[2 + k] != states) return nullptr;
    states = e.slot_dtype[2 + k];
  }
  return lookup_stored(op, {p, grad_dtype, states < 0 ? p : states, e.mirror ? int(e.mirror_dtype) : kNoMaster}, e.mode);
}

void StepPlan::add(const EntrySpec& spec) {
  const OpInfo& info = op();
  Entry e;
  e.index = spec.index;
  e.mode = spec.mode;
  e.slot = spec.slot;
  std::fill(std::begin(e.ptrs), std::end(e.ptrs), nullptr);
  const ArrayRef& param = spec.param;
  check_array(param, e.index, info.slot_names[0], nullptr, true, &info);
  const int storage = param.dtype;
  e.dtype = storage == kFloat64 ? kFloat64 : kFloat32;
  e.numel = param.numel;
  std::fill(std::begin(e.slot_dtype), std::end(e.slot_dtype), static_cast<int8_t>(e.dtype));
  e.slot_dtype[0] = static_cast<int8_t>(storage);
  e.staged = storage != e.dtype;
  if (lookup(op_, e.dtype, e.mode) == nullptr) {
    throw ValueError(std::string(info.name) + ": unsupported flag combination " + std::to_string(e.mode));
  }
  e.ptrs[0] = param.data;
  const bool any_bytes = param.nbytes() > 0;
  if (any_bytes) written_.push_back(extent_of(param, e.index, info.slot_names[0], true));
  // States: any kind that computes in the param's compute dtype (float32: float32 / bfloat16 /
  // float16; the caller picks: state_dtype, or the 16-bit param's dtype under master weights).
  const unsigned also = kinds_computing_in(e.dtype);
  for (int k = 0; k < info.num_states; ++k) {
    check_state_given(info, e.index, k, e.mode, spec.given[k]);
    if (!spec.given[k]) continue;
    const ArrayRef& s = spec.states[k];
    if (spec.quant[k].map >= 0) {
      e.quant[2 + k] = check_quant_state(s, spec.quant[k], e.numel, e.dtype, e.index, info.state_names[k], info);
      e.grain = std::max<int64_t>(e.grain, spec.quant[k].block);
      e.staged = true;
      if (any_bytes) written_.push_back(extent_of(spec.quant[k].scales, e.index, info.state_names[k], true));
    } else {
      check_array(s, e.index, info.state_names[k], &param, true, &info, also);
      e.slot_dtype[2 + k] = static_cast<int8_t>(s.dtype);
      e.staged = e.staged || s.dtype != e.dtype;
    }
    e.ptrs[2 + k] = s.data;
    e.state_ids.push_back(k);
    if (any_bytes) written_.push_back(extent_of(s, e.index, info.state_names[k], true));
  }
  // Master weights: `param` is the float32 master copy; the 16-bit param is written from it.
  if (spec.has_mirror) {
    const ArrayRef& m = spec.mirror;
    check_array(m, e.index, info.slot_names[0], nullptr, true, &info);
    if (!is_narrow(m.dtype)) {
      throw TypeError(who(e.index, info.slot_names[0], &info) + " has dtype " + dtype_str(m) +
                      "; master weights are kept for bfloat16 and float16 params");
    }
    if (param.dtype != kFloat32 || !same_shape(m, param)) {
      throw ValueError(who(e.index, "master_param", &info) + " must be a float32 array of the param's shape " +
                       shape_str(m) + ", got " + dtype_str(param) + " " + shape_str(param));
    }
    e.mirror = m.data;
    e.mirror_dtype = static_cast<int8_t>(m.dtype);
    e.staged = true;
    if (m.nbytes() > 0) written_.push_back(extent_of(m, e.index, info.slot_names[0], true));
  }
  for (int k = 0; k < 2 + kMaxStates; ++k) e.slot_size[k] = static_cast<int8_t>(item_size(e.slot_dtype[k]));
  entries_.push_back(std::move(e));
}

void StepPlan::seal() { refuse_overlaps(written_, &op()); }  // sorted: prepare() binary-searches them

void StepPlan::begin(const CoeffBlock* coeffs, size_t num_coeffs, const StepOptions& options,
                     PreparedStep& out) const {
  const OpInfo& info = op();
  if (options.scaled && !info.reads_grad) throw ValueError(std::string(info.name) + " reads no grad to unscale");
  out.coeffs = coeffs;
  out.num_coeffs = num_coeffs;
  out.options = options;
  out.divisor = options.grad_scale;
  out.cvt = convert_fns();
  out.fn_dtype = out.fn_mode = -1;  // the active ISA may have changed since the last step
  out.tasks.clear();
  out.tasks.reserve(entries_.size());
  out.itemsizes.clear();
  out.itemsizes.reserve(entries_.size());
  out.stages.clear();
  out.stages.reserve(entries_.size());  // tasks point into it: it must not reallocate
}

void StepPlan::take(size_t i, const GradRef& g, PreparedStep& out) {
  const OpInfo& info = op();
  const StepOptions& options = out.options;
  Entry& e = entries_[i];
  if (e.slot < 0 || e.slot >= static_cast<int64_t>(out.num_coeffs)) throw ValueError("coefficient slot out of range");
  const char* data = nullptr;  // ops that read no grad take none
  int grad_dtype = e.dtype;
  if (info.reads_grad) {
    if (!g.given) throw ValueError(who(e.index, info.slot_names[1], &info) + " is missing");
    if (g.dtype < 0 || !((e.grad_dtypes() >> g.dtype) & 1u)) {
      throw TypeError(who(e.index, info.slot_names[1], &info) + " has dtype " + dtype_name(g.dtype) + ", expected " +
                      dtype_name(e.grad_dtype()) + (e.grad_dtypes() != (1u << e.grad_dtype()) ? " or float32" : ""));
    }
    if (g.numel != e.numel) {
      throw ValueError(who(e.index, info.slot_names[1], &info) + " has " + std::to_string(g.numel) +
                       " elements, expected " + std::to_string(e.numel));
    }
    data = g.data;
    grad_dtype = g.dtype;
    const int64_t nbytes = e.numel * item_size(grad_dtype);
    // The written arrays are fixed for the plan's life, so a grad buffer found clear of them
    // once (same address, same size) stays clear: frameworks reuse grad buffers.
    if (nbytes > 0 && (data != e.checked_grad || grad_dtype != e.checked_grad_dtype)) {
      // A grad may alias other grads, never a written array.
      refuse_overlap_with(written_, {data, data + nbytes, false, e.index, info.slot_names[1]}, &info);
      e.checked_grad = data;
      e.checked_grad_dtype = grad_dtype;
    }
  } else if (g.given) {
    throw ValueError(std::string(info.name) + " takes no second array (pass None)");
  }
  out.tasks.emplace_back();
  Task& task = out.tasks.back();
  out.itemsizes.emplace_back();
  SlotSizes& sizes = out.itemsizes.back();
  std::copy(std::begin(e.ptrs), std::end(e.ptrs), task.ptrs);
  task.ptrs[1] = const_cast<char*>(data);
  if (e.dtype != out.fn_dtype || e.mode != out.fn_mode) {
    out.fn = lookup(op_, e.dtype, e.mode);  // the active ISA may have changed since the plan
    out.fn_dtype = e.dtype;
    out.fn_mode = e.mode;
  }
  task.fn = out.fn;
  task.numel = e.numel;
  task.coeffs = out.coeffs[e.slot].get(e.dtype);
  std::copy(std::begin(e.slot_size), std::end(e.slot_size), sizes.begin());
  sizes[1] = static_cast<int8_t>(item_size(grad_dtype));
  const bool plain_rounding = !options.scaled && !options.stochastic;
  const bool quantized = e.grain > 1;  // staged: the fused layouts read no codes
  const SpanFn fused = ((e.staged || e.mirror) && plain_rounding && !quantized) ? fused_layout(op_, e, grad_dtype) : nullptr;
  e.path = KernelPath::kDirect;
  if (fused != nullptr) {
    e.path = KernelPath::kFused;
    task.fn = fused;  // converts in registers: no staging
    if (e.mirror) {
      task.ptrs[2 + info.num_states] = e.mirror;  // where the master-weights kernels write it
      sizes[2 + info.num_states] = 2;
    }
  } else if (e.staged || grad_dtype != e.dtype || options.scaled) {
    Staging st;
    st.cvt = out.cvt;
    st.qfn = quant_fns();
    std::copy(std::begin(e.slot_dtype), std::end(e.slot_dtype), st.dtype);
    st.dtype[1] = static_cast<int8_t>(grad_dtype);
    if (e.mirror) {
      st.mirror = e.mirror;
      st.mirror_dtype = e.mirror_dtype;
    }
    st.grad_divisor = options.scaled ? &out.divisor : nullptr;
    st.stochastic = options.stochastic;
    st.sr_key = mix64(options.rounding_key ^ mix64(static_cast<uint64_t>(e.index)));
    std::copy(std::begin(e.quant), std::end(e.quant), st.quant);
    st.stochastic_codes = options.stochastic_codes;
    st.code_key = mix64(options.code_key ^ mix64(static_cast<uint64_t>(e.index)));
    e.path = options.stochastic   ? KernelPath::kStagedRounding
             : options.scaled     ? KernelPath::kStagedScaled
             : quantized          ? KernelPath::kStagedQuantized
             : e.staged || e.mirror ? KernelPath::kStagedNoLayout
                                  : KernelPath::kStaged;  // only the grad's dtype differs
    out.stages.push_back(st);
    task.stage = &out.stages.back();
    task.grain = e.grain;
  }
}

const char* kernel_path_name(KernelPath path) {
  switch (path) {
    case KernelPath::kDirect: return "direct";
    case KernelPath::kFused: return "fused";
    case KernelPath::kStaged:
    case KernelPath::kStagedRounding:
    case KernelPath::kStagedScaled:
    case KernelPath::kStagedQuantized:
    case KernelPath::kStagedNoLayout: return "staged";
  }
  return "";
}

const char* kernel_path_text(KernelPath path) {
  switch (path) {
    case KernelPath::kDirect: return "every array in the dtype the kernel computes in";
    case KernelPath::kFused: return "16-bit arrays converted in registers by the layout's own kernel";
    case KernelPath::kStaged: return "the grad comes in another dtype than the param";
    case KernelPath::kStagedRounding: return "stochastic rounding draws per element in the scratch block";
    case KernelPath::kStagedScaled: return "the grads are divided by grad_scale as they are read";
    case KernelPath::kStagedQuantized: return "block-quantized state, dequantized and requantized per block";
    case KernelPath::kStagedNoLayout: return "no fused kernel for this layout on the active ISA";
  }
  return "";
}

size_t StepPlan::finish(PreparedStep& out) const {
  coalesce(out.tasks, out.itemsizes);
  return out.tasks.size();
}

size_t StepPlan::prepare(const GradRef* grads, const CoeffBlock* coeffs, size_t num_coeffs,
                         const StepOptions& options, PreparedStep& out) {
  begin(coeffs, num_coeffs, options, out);
  for (size_t i = 0; i < entries_.size(); ++i) take(i, grads[i], out);
  return finish(out);
}

}  // namespace pyoptk
