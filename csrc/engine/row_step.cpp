#include "row_step.h"

#include <algorithm>
#include <string>

#include "../cpu/dispatch.h"
#include "errors.h"
#include "names.h"

namespace pyoptk {
namespace {

// One param's rows to update, checked. Slots {param, values, states...} may be stored in 16 bits
// (mixed precision): slot_dtype says which, and staged tasks widen and round them as the dense
// step does. mirror: the 16-bit param written from the float32 master copy `param`, or null.
struct RowItem {
  SpanFn fn;
  const void* coeffs;
  char* param;
  const char* values;
  char* states[kMaxStates];
  const int64_t* rows;
  int64_t nrows;
  int64_t row_numel;
  int8_t slot_dtype[2 + kMaxStates];
  bool staged;
  char* mirror;
  int8_t mirror_dtype;
  uint64_t sr_key;  // stochastic rounding: the key of this param (mixed with each row's index)
};

// Indices into the leading axis, strictly increasing.
void check_rows(const RowEntrySpec& e) {
  const int64_t extent0 = e.param.shape[0];
  for (int64_t i = 0; i < e.nrows; ++i) {
    if (e.rows[i] < 0 || e.rows[i] >= extent0) {
      throw IndexError(who(e.index, "rows") + ": index " + std::to_string(e.rows[i]) +
                       " is out of range for a param with " + std::to_string(extent0) + " rows");
    }
    if (i > 0 && e.rows[i] <= e.rows[i - 1]) {
      throw ValueError(who(e.index, "rows") + " must be strictly increasing (coalesced)");
    }
  }
}

// values: shape (nrows,) + like.shape[1:], like's dtype (or float32 for a 16-bit like), C-contiguous.
void check_values(const ArrayRef& values, int64_t index, const ArrayRef& like, int64_t nrows) {
  const std::string name = who(index, "grad values");
  const bool narrow = is_narrow(like.dtype);
  if (!(values.dtype >= 0 && values.dtype == like.dtype) && !(narrow && values.dtype == kFloat32)) {
    throw TypeError(name + " have dtype " + dtype_str(values) + ", expected " + dtype_str(like) +
                    " (the param's dtype)" + (narrow ? " or float32" : ""));
  }
  bool ok = values.ndim == like.ndim && values.shape[0] == nrows;
  for (int d = 1; ok && d < like.ndim; ++d) ok = values.shape[d] == like.shape[d];
  if (!ok) {
    throw ValueError(name + " have shape " + shape_str(values) + ", expected (" + std::to_string(nrows) +
                     ",) + the param's shape " + shape_str(like) + "[1:]");
  }
  if (!values.contiguous) throw ValueError(name + " are not C-contiguous");
  if (!values.aligned) refuse_unaligned(values.itemsize, name);
}

RowItem checked_item(int op, const RowEntrySpec& e, const CoeffBlock* coeffs, size_t num_coeffs, uint64_t round_key,
                     std::vector<Extent>& extents) {
  const OpInfo& info = kOpInfo[op];
  const int64_t index = e.index;
  if (e.slot < 0 || e.slot >= static_cast<int64_t>(num_coeffs)) throw ValueError("coefficient slot out of range");
  check_array(e.param, index, "param", nullptr, true);
  if (e.param.ndim < 1) throw ValueError(who(index, "param") + " is 0-d; row updates need a leading axis to index");
  RowItem r;
  const int storage = e.param.dtype;
  const int compute = storage == kFloat64 ? kFloat64 : kFloat32;  // 16-bit: float32 arithmetic
  r.fn = lookup(op, compute, e.mode);
  if (r.fn == nullptr) throw ValueError(std::string(info.name) + ": unsupported flag combination " + std::to_string(e.mode));
  std::fill(std::begin(r.slot_dtype), std::end(r.slot_dtype), static_cast<int8_t>(compute));
  r.slot_dtype[0] = static_cast<int8_t>(storage);
  r.mirror = nullptr;
  r.mirror_dtype = -1;
  const ArrayRef* like = &e.param;  // the array the grad values match: the 16-bit param under master weights
  if (e.has_mirror) {
    check_array(e.mirror, index, "param", nullptr, true);
    if (!is_narrow(e.mirror.dtype)) {
      throw TypeError(who(index, "param") + " has dtype " + dtype_str(e.mirror) +
                      "; master weights are kept for bfloat16 and float16 params");
    }
    if (storage != kFloat32 || !same_shape(e.mirror, e.param)) {
      throw ValueError(who(index, "master_param") + " must be a float32 array of the param's shape " +
                       shape_str(e.mirror) + ", got " + dtype_str(e.param) + " " + shape_str(e.param));
    }
    r.mirror = e.mirror.data;
    r.mirror_dtype = static_cast<int8_t>(e.mirror.dtype);
    extents.push_back(extent_of(e.mirror, index, "param", true));
    like = &e.mirror;
  }
  check_rows(e);
  check_values(e.values, index, *like, e.nrows);
  r.slot_dtype[1] = static_cast<int8_t>(e.values.dtype);
  r.coeffs = compute == kFloat32 ? static_cast<const void*>(coeffs[e.slot].f32) : coeffs[e.slot].f64;
  r.param = e.param.data;
  r.values = e.values.data;
  r.rows = e.rows;
  r.nrows = e.nrows;
  r.row_numel = e.param.shape[0] > 0 ? e.param.numel / e.param.shape[0] : 0;
  extents.push_back(extent_of(e.param, index, "param", true));
  extents.push_back(extent_of(e.values, index, "grad values", false));
  // States: any kind that computes in the param's compute dtype (float32 / bfloat16 / float16).
  const unsigned also = kinds_computing_in(compute);
  for (int k = 0; k < kMaxStates; ++k) {
    r.states[k] = nullptr;
    if (k >= info.num_states) continue;
    check_state_given(info, index, k, e.mode, e.given[k]);
    if (!e.given[k]) continue;
    check_array(e.states[k], index, info.state_names[k], &e.param, true, nullptr, also);
    extents.push_back(extent_of(e.states[k], index, info.state_names[k], true));
    r.states[k] = e.states[k].data;
    r.slot_dtype[2 + k] = static_cast<int8_t>(e.states[k].dtype);
  }
  r.staged = r.mirror != nullptr;
  for (int8_t d : r.slot_dtype) r.staged = r.staged || d != compute;
  r.sr_key = mix64(round_key ^ mix64(static_cast<uint64_t>(index)));
  return r;
}

}  // namespace

void prepare_rows(int op, const std::vector<RowEntrySpec>& entries, const CoeffBlock* coeffs, size_t num_coeffs,
                  const StepOptions& options, PreparedStep& out) {
  const uint64_t round_key = options.stochastic ? options.rounding_key : 0;
  std::vector<RowItem> items;
  std::vector<Extent> extents;
  for (const RowEntrySpec& e : entries) items.push_back(checked_item(op, e, coeffs, num_coeffs, round_key, extents));
  std::vector<Extent> nonempty;
  for (const Extent& e : extents) {
    if (e.end > e.begin) nonempty.push_back(e);
  }
  refuse_overlaps(nonempty);

  out.options = options;
  out.tasks.clear();
  out.stages.clear();
  size_t staged_rows = 0;
  for (const RowItem& r : items) staged_rows += r.staged ? static_cast<size_t>(r.nrows) : 0;
  out.stages.reserve(staged_rows);  // one per staged row (its mirror row and rounding key); tasks point into it
  const ConvertFns* cvt = convert_fns();
  for (const RowItem& r : items) {
    const int64_t n = r.row_numel;
    for (int64_t i = 0; i < r.nrows; ++i) {
      const int64_t row = r.rows[i];
      Task task;
      task.fn = r.fn;
      task.ptrs[0] = r.param + row * n * item_size(r.slot_dtype[0]);
      task.ptrs[1] = const_cast<char*>(r.values) + i * n * item_size(r.slot_dtype[1]);
      for (int k = 0; k < kMaxStates; ++k) {
        task.ptrs[2 + k] = r.states[k] ? r.states[k] + row * n * item_size(r.slot_dtype[2 + k]) : nullptr;
      }
      task.numel = n;
      task.coeffs = r.coeffs;
      if (r.staged) {
        Staging st;
        st.cvt = cvt;
        st.qfn = quant_fns();
        std::copy(std::begin(r.slot_dtype), std::end(r.slot_dtype), st.dtype);
        if (r.mirror != nullptr) {
          st.mirror = r.mirror + row * n * 2;
          st.mirror_dtype = r.mirror_dtype;
        }
        st.stochastic = options.stochastic;
        st.sr_key = mix64(r.sr_key ^ static_cast<uint64_t>(row));  // rows: each its own stream
        out.stages.push_back(st);
        task.stage = &out.stages.back();
      }
      out.tasks.push_back(task);
    }
  }
}

}  // namespace pyoptk
