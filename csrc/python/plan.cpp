#include "plan.h"

#include <algorithm>

#include "../cpu/dispatch.h"
#include "../cpu/registry.h"
#include "checks.h"
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
  for (size_t k = 0; k < e.states.size(); ++k) {
    if (!still_laid_out(e.states[k], e.ptrs[2 + e.state_ids[k]], e.numel, e.state_descrs[k], kLaidOut)) return true;
  }
  return false;
}

bool writeable(const py::array& a) {
  return (py::detail::array_proxy(a.ptr())->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_) != 0;
}

// Tasks with the same span function have the same dtype, hence the same item size.
void coalesce(std::vector<Task>& tasks, const std::vector<int>& itemsizes) {
  size_t out = 0;
  for (size_t k = 0; k < tasks.size(); ++k) {
    if (out > 0) {
      Task& last = tasks[out - 1];
      const Task& next = tasks[k];
      bool joins = last.fn == next.fn && last.coeffs == next.coeffs;
      const int64_t bytes = last.numel * itemsizes[k];
      for (int j = 0; joins && j < 2 + kMaxStates; ++j) {
        joins = (last.ptrs[j] == nullptr && next.ptrs[j] == nullptr) ||
                (last.ptrs[j] != nullptr && last.ptrs[j] + bytes == next.ptrs[j]);
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

Plan::Plan(const std::string& op_name, py::sequence items, py::object state_dicts) : op_(op_id(op_name)) {
  const OpInfo& info = kOpInfo[op_];
  state_keys_ = state_keys(info);
  auto on_param = [&](Entry& e, py::handle param) {
    e.param = checked(param, e.index, info.slot_names[0], nullptr, true, &info);
    e.dtype = dtype_of(e.param);
    e.numel = e.param.size();
    e.descr = py::detail::array_proxy(e.param.ptr())->descr;
    e.itemsize = static_cast<int>(e.param.itemsize());
    if (lookup(op_, e.dtype, e.mode) == nullptr) {
      throw py::value_error(std::string(info.name) + ": unsupported flag combination " + std::to_string(e.mode));
    }
    e.ptrs[0] = static_cast<char*>(e.param.mutable_data());
    if (e.param.nbytes() > 0) written_.push_back(extent_of(e.param, e.index, info.slot_names[0], true));
  };
  auto on_state = [&](Entry& e, int k, py::handle state) {
    e.states.push_back(checked(state, e.index, info.state_names[k], &e.param, true, &info));
    e.ptrs[2 + k] = static_cast<char*>(e.states.back().mutable_data());
    e.state_descrs.push_back(py::detail::array_proxy(e.states.back().ptr())->descr);
    if (e.param.nbytes() > 0) written_.push_back(extent_of(e.states.back(), e.index, info.state_names[k], true));
  };
  read_items(info, items, state_dicts, entries_, on_param, on_state);
  refuse_overlaps(written_, &info);  // leaves them sorted: run() binary-searches them
}

size_t Plan::run(py::sequence grads_in, py::sequence coeff_sets, py::object param_lists, py::object scalars) {
  const OpInfo& info = kOpInfo[op_];
  // A list or tuple: taking its items runs no Python code (a sequence's own __getitem__ could).
  PyObject* fast = PySequence_Fast(grads_in.ptr(), "grads must be a sequence");
  if (fast == nullptr) throw py::error_already_set();
  const auto grads = py::reinterpret_steal<py::sequence>(fast);
  check_still_current(entries_, state_keys_, grads, param_lists, info.reads_grad);
  std::vector<CoeffBlock> coeffs;
  for (py::handle values : coeff_sets) coeffs.push_back(read_coeffs(info, values));

  std::vector<Task> tasks(entries_.size());
  std::vector<int> itemsizes(entries_.size());
  // Per grad, the NumPy array that was checked (the grad, or its host view; null for a torch
  // tensor, read through its own methods) and its dtype object, for the last look below.
  std::vector<PyObject*> grad_arrays(entries_.size(), nullptr);
  std::vector<PyObject*> grad_descrs(entries_.size(), nullptr);
  // Each param and state is re-read from NumPy's struct: still the bytes and flags it was checked
  // with (a resize frees or moves its buffer), writeable (arr.flags.writeable = False).
  auto verify_arrays = [&](const Entry& e) {
    if (!still_laid_out(e.param, e.ptrs[0], e.numel, e.descr, kWritable)) {
      if (!writeable(e.param)) throw py::value_error(who(e.index, info.slot_names[0], &info) + " is read-only");
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
    if (e.slot < 0 || e.slot >= static_cast<int64_t>(coeffs.size())) throw py::value_error("coefficient slot out of range");
    verify_arrays(e);
    PyObject* g = PySequence_Fast_GET_ITEM(fast, static_cast<py::ssize_t>(i));
    const char* data = nullptr;  // ops that read no grad take None in its slot
    if (info.reads_grad) {
      grad_refs.push_back(py::reinterpret_borrow<py::object>(g));
      data = plain_grad_data(g, e.param);
      const bool tensor = data == nullptr && (data = tensor_grad_data(g, e.param)) != nullptr;
      if (data == nullptr) {
        python_may_have_run = true;
        if (needs_host_view(g)) {  // DLPack / buffer-protocol / complex: checked as its NumPy view
          grad_refs.push_back(host_view(g, who(e.index, info.slot_names[1], &info)));
          g = grad_refs.back().ptr();
        }
        data = static_cast<const char*>(checked(g, e.index, info.slot_names[1], &e.param, false, &info).data());
      }
      if (!tensor) {
        grad_arrays[i] = g;
        grad_descrs[i] = reinterpret_cast<PyObject*>(py::detail::array_proxy(g)->descr);
      }
      const int64_t nbytes = static_cast<int64_t>(e.param.nbytes());
      // The written arrays are fixed for the plan's life, so a grad buffer found clear of them
      // once (same address, same size: the param's) stays clear: frameworks reuse grad buffers.
      if (nbytes > 0 && data != e.checked_grad) {
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
      }
    } else if (g != Py_None) {
      throw py::value_error(std::string(info.name) + " takes no second array (pass None)");
    }
    Task& task = tasks[i];
    std::copy(std::begin(e.ptrs), std::end(e.ptrs), task.ptrs);
    task.ptrs[1] = const_cast<char*>(data);
    task.fn = lookup(op_, e.dtype, e.mode);  // the active ISA may have changed since the plan
    task.numel = e.numel;
    task.coeffs = e.dtype == kFloat32 ? static_cast<const void*>(coeffs[e.slot].f32) : coeffs[e.slot].f64;
    itemsizes[i] = e.itemsize;
  }
  // Then one more look at every array (grads too) before the kernel; none runs from here on.
  for (size_t i = 0; python_may_have_run && i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    verify_arrays(e);
    if (!info.reads_grad) continue;
    const bool same = grad_arrays[i] != nullptr
                          ? still_laid_out(grad_arrays[i], tasks[i].ptrs[1], e.numel, grad_descrs[i], kLaidOut)
                          : tensor_grad_data(PySequence_Fast_GET_ITEM(fast, static_cast<py::ssize_t>(i)), e.param) ==
                                tasks[i].ptrs[1];
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

size_t step(const std::string& op, py::sequence items, py::sequence coeff_sets) {
  return run_once<Plan>(op, items, coeff_sets);
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
