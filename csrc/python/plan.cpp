#include "plan.h"

#include <algorithm>
#include <array>

#include "../cpu/dispatch.h"
#include "../cpu/registry.h"
#include "checks.h"
#include "grad_list.h"
#include "host_arrays.h"
#include "plan_book.h"

namespace py = pybind11;

namespace pyoptk {
namespace {

constexpr int kLaidOut = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
constexpr int kWritable = kLaidOut | py::detail::npy_api::NPY_ARRAY_WRITEABLE_;

// The common case of a grad check, read straight from NumPy's array struct (no wrapper objects):
// an exact ndarray with the param's descriptor and shape, C-contiguous and aligned. Returns its
// data, or nullptr when anything differs, and then the full check gives the verdict and message.
const char* plain_grad_data(PyObject* obj, const py::array& param) {
  if (Py_TYPE(obj) != reinterpret_cast<PyTypeObject*>(py::detail::npy_api::get().PyArray_Type_)) return nullptr;
  const auto* g = py::detail::array_proxy(obj);
  const auto* p = py::detail::array_proxy(param.ptr());
  if (g->descr != p->descr || g->nd != p->nd || (g->flags & kLaidOut) != kLaidOut) return nullptr;
  for (int d = 0; d < g->nd; ++d) {
    if (g->dimensions[d] != p->dimensions[d]) return nullptr;
  }
  return g->data;
}

// True while `a` still covers the bytes it was checked with: same data, dtype, element count,
// and the flags (C-contiguous, aligned; writeable for written arrays). NumPy updates the flags
// on `a.resize(n, refcheck=False)` (which frees or moves the buffer), `a.strides = ...` and
// `a.shape = ...`; a reshape in place to the same count keeps the bytes, so it may stay.
bool still_laid_out(py::handle a, const char* data, int64_t numel, PyObject* descr, int flags) {
  const auto* s = py::detail::array_proxy(a.ptr());
  if (s->data != data || s->descr != descr || (s->flags & flags) != flags) return false;
  int64_t n = 1;
  for (int d = 0; d < s->nd; ++d) n *= s->dimensions[d];
  return n == numel;
}

template <class Entry>
bool moved(const Entry& e) {
  if (!still_laid_out(e.param, e.ptrs[0], e.numel, e.descr, kLaidOut)) return true;
  if (e.mirror && !still_laid_out(e.mirror, e.mirror_ptr, e.numel, e.mirror_descr, kLaidOut)) return true;
  for (size_t k = 0; k < e.states.size(); ++k) {
    if (!still_laid_out(e.states[k], e.ptrs[2 + e.state_ids[k]], e.numel, e.state_descrs[k], kLaidOut)) return true;
  }
  return false;
}

bool writeable(const py::array& a) {
  return (py::detail::array_proxy(a.ptr())->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_) != 0;
}

// Bytes per element of each pointer slot of a task.
using SlotSizes = std::array<int8_t, 2 + kMaxStates>;

// Joins a task to the one before it when every array continues where the other's ends.
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

}  // namespace

// The fused kernel of the entry's (param, grad, states, master weights) storage kinds, whose
// states share one kind (none: the param's); nullptr when there is none (the staging layer runs it).
SpanFn Plan::fused_layout(int op, const Entry& e, int grad_dtype) {
  const int p = e.slot_dtype[0];
  int states = -1;
  for (int k : e.state_ids) {
    if (states >= 0 && e.slot_dtype[2 + k] != states) return nullptr;
    states = e.slot_dtype[2 + k];
  }
  return lookup_stored(op, {p, grad_dtype, states < 0 ? p : states, e.mirror ? int(e.mirror_dtype) : kNoMaster}, e.mode);
}

Plan::Plan(const std::string& op_name, py::sequence items, py::object state_dicts) : op_(op_id(op_name)) {
  const OpInfo& info = kOpInfo[op_];
  state_keys_ = state_keys(info);
  auto on_param = [&](Entry& e, py::handle param) {
    e.param = checked(param, e.index, info.slot_names[0], nullptr, true, &info);
    const int storage = dtype_of(e.param);
    e.dtype = storage == kFloat64 ? kFloat64 : kFloat32;
    e.numel = e.param.size();
    e.descr = py::detail::array_proxy(e.param.ptr())->descr;
    std::fill(std::begin(e.slot_dtype), std::end(e.slot_dtype), static_cast<int8_t>(e.dtype));
    e.slot_dtype[0] = static_cast<int8_t>(storage);
    e.staged = storage != e.dtype;
    if (lookup(op_, e.dtype, e.mode) == nullptr) {
      throw py::value_error(std::string(info.name) + ": unsupported flag combination " + std::to_string(e.mode));
    }
    e.ptrs[0] = static_cast<char*>(e.param.mutable_data());
    if (e.param.nbytes() > 0) written_.push_back(extent_of(e.param, e.index, info.slot_names[0], true));
  };
  // States: the param's dtype, or for a float32-computing param any of float32 / bfloat16 /
  // float16 (the Python layer picks: state_dtype, or the 16-bit param's dtype under master weights).
  auto on_state = [&](Entry& e, int k, py::handle state) {
    const unsigned also = e.dtype == kFloat32 ? (1u << kFloat32) | (1u << kBFloat16) | (1u << kFloat16) : 0u;
    e.states.push_back(checked(state, e.index, info.state_names[k], &e.param, true, &info, also));
    e.slot_dtype[2 + k] = static_cast<int8_t>(dtype_of(e.states.back()));
    e.staged = e.staged || e.slot_dtype[2 + k] != e.dtype;
    e.ptrs[2 + k] = static_cast<char*>(e.states.back().mutable_data());
    e.state_descrs.push_back(py::detail::array_proxy(e.states.back().ptr())->descr);
    if (e.param.nbytes() > 0) written_.push_back(extent_of(e.states.back(), e.index, info.state_names[k], true));
  };
  // Master weights: `param` is the float32 master copy; the 16-bit param is written from it.
  auto on_mirror = [&](Entry& e, py::handle obj) {
    py::array mirror = checked(obj, e.index, info.slot_names[0], nullptr, true, &info);
    const int dtype = dtype_of(mirror);
    if (dtype != kBFloat16 && dtype != kFloat16) {
      throw py::type_error(who(e.index, info.slot_names[0], &info) + " has dtype " + dtype_str(mirror) +
                           "; master weights are kept for bfloat16 and float16 params");
    }
    if (dtype_of(e.param) != kFloat32 || !same_shape(mirror, e.param)) {
      throw py::value_error(who(e.index, "master_param", &info) + " must be a float32 array of the param's shape " +
                            shape_str(mirror) + ", got " + dtype_str(e.param) + " " + shape_str(e.param));
    }
    e.mirror = mirror;
    e.mirror_dtype = static_cast<int8_t>(dtype);
    e.mirror_ptr = static_cast<char*>(mirror.mutable_data());
    e.mirror_descr = py::detail::array_proxy(mirror.ptr())->descr;
    e.staged = true;
    if (mirror.nbytes() > 0) written_.push_back(extent_of(mirror, e.index, info.slot_names[0], true));
  };
  read_items(info, items, state_dicts, entries_, on_param, on_state, on_mirror);
  refuse_overlaps(written_, &info);  // leaves them sorted: run() binary-searches them
}

// Starts loading the objects the checks of entry e will read (its arrays, state dict and grad
// tensor): with many small arrays the checks wait on memory, not on arithmetic.
template <class Entry>
void prefetch_entry(const Entry& e, torch_abi::Handle grad) {
  __builtin_prefetch(e.param.ptr());
  for (const py::array& s : e.states) __builtin_prefetch(s.ptr());
  if (!e.state_dict.is_none()) __builtin_prefetch(e.state_dict.ptr());
  if (grad != nullptr) torch_abi::prefetch(grad);
}

size_t Plan::run(py::sequence grads_in, py::sequence coeff_sets, py::object param_lists, py::object scalars,
                 py::object grad_scale, py::object rounding_key) {
  const OpInfo& info = kOpInfo[op_];
  GradList grads(grads_in);
  check_still_current(entries_, state_keys_, grads, param_lists, info.reads_grad);
  std::vector<CoeffBlock> coeffs;
  for (py::handle values : coeff_sets) coeffs.push_back(read_coeffs(info, values));
  const bool scaled = !grad_scale.is_none();
  const float divisor = scaled ? static_cast<float>(grad_scale.cast<double>()) : 1.0f;
  if (scaled && !info.reads_grad) throw py::value_error(std::string(info.name) + " reads no grad to unscale");
  const bool stochastic = !rounding_key.is_none();
  const uint64_t round_key = stochastic ? rounding_key.cast<uint64_t>() : 0;
  std::vector<Staging> stages;
  stages.reserve(entries_.size());  // tasks point into it: it must not reallocate
  const ConvertFns* cvt = convert_fns();

  std::vector<Task> tasks(entries_.size());
  std::vector<SlotSizes> itemsizes(entries_.size());
  // Per grad, the NumPy array that was checked (the grad, or its host view; null for a torch
  // tensor, read through its own methods) and its dtype object, for the last look below.
  std::vector<PyObject*> grad_arrays(entries_.size(), nullptr);
  std::vector<PyObject*> grad_descrs(entries_.size(), nullptr);
  // Each param, master-weights mirror and state is re-read from NumPy's struct: still the bytes
  // and flags it was checked with (a resize frees or moves its buffer), writeable
  // (arr.flags.writeable = False).
  auto verify_arrays = [&](const Entry& e) {
    if (!still_laid_out(e.param, e.ptrs[0], e.numel, e.descr, kWritable)) {
      if (!writeable(e.param)) throw py::value_error(who(e.index, info.slot_names[0], &info) + " is read-only");
      throw StalePlan("a param was resized or relaid");
    }
    if (e.mirror && !still_laid_out(e.mirror, e.mirror_ptr, e.numel, e.mirror_descr, kWritable)) {
      if (!writeable(py::reinterpret_borrow<py::array>(e.mirror))) {
        throw py::value_error(who(e.index, info.slot_names[0], &info) + " is read-only");
      }
      throw StalePlan("a param was resized or relaid");
    }
    for (size_t k = 0; k < e.states.size(); ++k) {
      const int id = e.state_ids[k];
      if (!still_laid_out(e.states[k], e.ptrs[2 + id], e.numel, e.state_descrs[k], kWritable)) {
        if (!writeable(e.states[k])) throw py::value_error(who(e.index, info.state_names[id], &info) + " is read-only");
        throw StalePlan("a state array was resized or relaid");
      }
    }
  };
  // The plain grad check and everything else in this loop run no Python code; the full check
  // may (a first import of numpy.ma, a finalizer), which could change arrays already verified.
  bool python_may_have_run = false;
  // References that keep the grads alive while the GIL is released, whatever happens to `grads`.
  std::vector<py::object> grad_refs;
  grad_refs.reserve(entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    if (i + 4 < entries_.size()) prefetch_entry(entries_[i + 4], grads.tensor(i + 4));
    if (e.slot < 0 || e.slot >= static_cast<int64_t>(coeffs.size())) throw py::value_error("coefficient slot out of range");
    verify_arrays(e);
    const char* data = nullptr;  // ops that read no grad take None in its slot
    int grad_dtype = e.dtype;
    if (info.reads_grad) {
      // Grads come in the listed param's dtype or, for a float32-computing param, float32.
      const py::array like = e.mirror ? py::reinterpret_borrow<py::array>(e.mirror) : e.param;
      grad_dtype = e.grad_dtype();
      // A torch tensor held by a TorchGrads (kept alive by it), in the listed param's dtype.
      data = grads.tensor(i) ? torch_abi::cpu_data(grads.tensor(i), grad_dtype, e.numel) : nullptr;
      bool tensor = data != nullptr;
      PyObject* g = nullptr;
      if (!tensor) {
        python_may_have_run = python_may_have_run || grads.makes_objects();  // torch's getter may run the GC
        g = grads.object(i);
        grad_refs.push_back(py::reinterpret_borrow<py::object>(g));
        data = plain_grad_data(g, like);
      }
      if (data == nullptr) {  // a torch tensor in the listed param's dtype (16-bit ones too)
        data = tensor_data(g, grad_dtype, e.numel);
        tensor = data != nullptr;
      }
      if (data == nullptr) {
        python_may_have_run = true;
        if (needs_host_view(g)) {  // DLPack / buffer-protocol / complex: checked as its NumPy view
          grad_refs.push_back(host_view(g, who(e.index, info.slot_names[1], &info)));
          g = grad_refs.back().ptr();
        }
        const unsigned also = e.dtype == kFloat32 ? 1u << kFloat32 : 0u;
        py::array ga = checked(g, e.index, info.slot_names[1], &like, false, &info, also);
        data = static_cast<const char*>(ga.data());
        grad_dtype = dtype_of(ga);
      }
      if (!tensor) {
        grad_arrays[i] = g;
        grad_descrs[i] = reinterpret_cast<PyObject*>(py::detail::array_proxy(g)->descr);
      }
      const int64_t nbytes = e.numel * item_size(grad_dtype);
      // The written arrays are fixed for the plan's life, so a grad buffer found clear of them
      // once (same address, same size) stays clear: frameworks reuse grad buffers.
      if (nbytes > 0 && (data != e.checked_grad || grad_dtype != e.checked_grad_dtype)) {
        // A grad may alias other grads, never a written array.
        try {
          refuse_overlap_with(written_, {data, data + nbytes, false, e.index, info.slot_names[1]}, &info);
        } catch (const py::value_error&) {
          // The extents are the planned ones: a moved array's old buffer may hold this grad now.
          if (std::any_of(entries_.begin(), entries_.end(), [](const Entry& x) { return moved(x); })) {
            throw StalePlan("a param or state array was resized or relaid");
          }
          throw;
        }
        e.checked_grad = data;
        e.checked_grad_dtype = grad_dtype;
      }
    } else if (!grads.missing(i)) {
      throw py::value_error(std::string(info.name) + " takes no second array (pass None)");
    }
    Task& task = tasks[i];
    std::copy(std::begin(e.ptrs), std::end(e.ptrs), task.ptrs);
    task.ptrs[1] = const_cast<char*>(data);
    task.fn = lookup(op_, e.dtype, e.mode);  // the active ISA may have changed since the plan
    task.numel = e.numel;
    task.coeffs = e.dtype == kFloat32 ? static_cast<const void*>(coeffs[e.slot].f32) : coeffs[e.slot].f64;
    for (int k = 0; k < 2 + kMaxStates; ++k) itemsizes[i][k] = static_cast<int8_t>(item_size(e.slot_dtype[k]));
    itemsizes[i][1] = static_cast<int8_t>(item_size(grad_dtype));
    const SpanFn fused = ((e.staged || e.mirror) && !scaled && !stochastic) ? fused_layout(op_, e, grad_dtype) : nullptr;
    if (fused != nullptr) {
      task.fn = fused;  // converts in registers: no staging
      if (e.mirror) {
        task.ptrs[2 + info.num_states] = e.mirror_ptr;  // where the master-weights kernels write it
        itemsizes[i][2 + info.num_states] = 2;
      }
    } else if (e.staged || grad_dtype != e.dtype || scaled) {
      Staging st;
      st.cvt = cvt;
      std::copy(std::begin(e.slot_dtype), std::end(e.slot_dtype), st.dtype);
      st.dtype[1] = static_cast<int8_t>(grad_dtype);
      if (e.mirror) {
        st.mirror = e.mirror_ptr;
        st.mirror_dtype = e.mirror_dtype;
      }
      st.grad_divisor = scaled ? &divisor : nullptr;
      st.stochastic = stochastic;
      st.sr_key = mix64(round_key ^ mix64(static_cast<uint64_t>(e.index)));
      stages.push_back(st);
      task.stage = &stages.back();
    }
  }
  // Then one more look at every array (grads too) before the kernel; none runs from here on.
  for (size_t i = 0; python_may_have_run && i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    verify_arrays(e);
    if (!info.reads_grad) continue;
    const int grad_dtype = e.grad_dtype();
    const bool same = grad_arrays[i] != nullptr
                          ? still_laid_out(grad_arrays[i], tasks[i].ptrs[1], e.numel, grad_descrs[i], kLaidOut)
                      : grads.tensor(i) ? torch_abi::cpu_data(grads.tensor(i), grad_dtype, e.numel) == tasks[i].ptrs[1]
                                        : tensor_data(grads.object(i), grad_dtype, e.numel) == tasks[i].ptrs[1];
    if (!same) throw StalePlan("a grad was resized or relaid");
  }
  coalesce(tasks, itemsizes);

  {
    py::gil_scoped_release release;
    run_tasks(tasks.data(), static_cast<int64_t>(tasks.size()));
  }
  merge_scalars(entries_, scalars);
  return tasks.size();
}

size_t step(const std::string& op, py::sequence items, py::sequence coeff_sets, py::object grad_scale,
            py::object rounding_key) {
  Plan plan(op, items);
  py::list grads;
  for (size_t i = 0; i < py::len(items); ++i) grads.append(py::tuple(items[i])[4]);
  return plan.run(grads, coeff_sets, py::none(), py::none(), grad_scale, rounding_key);
}

std::vector<py::object> state_keys(const OpInfo& op) {
  std::vector<py::object> keys;
  for (int k = 0; k < op.num_states; ++k) {
    keys.push_back(py::reinterpret_steal<py::object>(PyUnicode_InternFromString(op.state_names[k])));
  }
  return keys;
}

py::dict registry() {
  py::dict out;
  for (const OpInfo& op : kOpInfo) {
    py::dict flags;
    for (int b = 0; b < op.num_flags; ++b) {
      if (op.flag_names[b] != nullptr) flags[op.flag_names[b]] = 1 << b;
    }
    py::list state_list, coeff_list;
    for (int k = 0; k < op.num_states; ++k) state_list.append(py::make_tuple(op.state_names[k], op.state_flags[k]));
    for (int k = 0; k < op.num_coeffs; ++k) coeff_list.append(op.coeff_names[k]);
    py::dict entry;
    entry["flags"] = flags;
    entry["states"] = state_list;
    entry["coeffs"] = coeff_list;
    entry["reads_grad"] = op.reads_grad;
    py::list hyper_list, scalar_list;  // the host coefficient function's inputs (ops/host_coeffs.h)
    for (int k = 0; k < op.num_hypers; ++k) hyper_list.append(op.hyper_names[k]);
    for (int k = 0; k < op.num_scalars; ++k) scalar_list.append(op.scalar_names[k]);
    entry["hyper"] = hyper_list;
    entry["scalars"] = scalar_list;
    out[op.name] = entry;
  }
  return out;
}

}  // namespace pyoptk
