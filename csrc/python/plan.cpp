#include "plan.h"

#include <algorithm>

#include "checks.h"
#include "grad_reader.h"
#include "group_schedule.h"
#include "plan_book.h"

namespace py = pybind11;

namespace pyoptk {

Plan::Plan(const std::string& op_name, py::sequence items, py::object state_dicts) : core_(op_id(op_name)) {
  const OpInfo& info = core_.op();
  state_keys_ = state_keys(info);
  for (int k = 0; k < info.num_states; ++k) {  // a quantized state's scales: "<name>_absmax" (pyoptk/_quant.py)
    scale_keys_.push_back(py::reinterpret_steal<py::object>(
        PyUnicode_InternFromString((std::string(info.state_names[k]) + "_absmax").c_str())));
  }
  // Each item's arrays are described to the engine, which checks and adds it once it is read.
  EntrySpec spec;
  auto on_param = [&](Entry& e, py::handle obj) {
    e.param = as_array(obj, e.index, info.slot_names[0], &info);
    e.descr = py::detail::array_proxy(e.param.ptr())->descr;
    e.ptrs[0] = py::detail::array_proxy(e.param.ptr())->data;
    spec = EntrySpec{};
    spec.index = e.index;
    spec.mode = e.mode;
    spec.slot = e.slot;
    spec.param = array_ref(e.param);
  };
  auto on_state = [&](Entry& e, int k, py::handle obj) {
    // A quantized state comes as (codes, scales, map id, block size): quantize.h.
    const bool quantized = py::isinstance<py::tuple>(obj);
    py::tuple parts = quantized ? py::reinterpret_borrow<py::tuple>(obj) : py::tuple();
    if (quantized && parts.size() != 4) {
      throw py::value_error(who(e.index, info.state_names[k], &info) + ": a quantized state is (codes, scales, map, block)");
    }
    e.states.push_back(as_array(quantized ? parts[0] : obj, e.index, info.state_names[k], &info));
    e.ptrs[2 + k] = py::detail::array_proxy(e.states.back().ptr())->data;
    e.state_descrs.push_back(py::detail::array_proxy(e.states.back().ptr())->descr);
    e.state_numel.push_back(quantized ? py::array(parts[0]).size() : -1);
    spec.states[k] = array_ref(e.states.back());
    spec.given[k] = true;
    if (quantized) {
      e.scales.push_back(as_array(parts[1], e.index, info.state_names[k], &info));
      e.scale_ptrs.push_back(py::detail::array_proxy(e.scales.back().ptr())->data);
      e.scale_descrs.push_back(py::detail::array_proxy(e.scales.back().ptr())->descr);
      e.scale_numel.push_back(e.scales.back().size());
      e.scale_state_ids.push_back(k);
      spec.quant[k].scales = array_ref(e.scales.back());
      spec.quant[k].map = parts[2].cast<int>();
      spec.quant[k].block = parts[3].cast<int>();
    }
  };
  auto on_mirror = [&](Entry& e, py::handle obj) {
    py::array mirror = as_array(obj, e.index, info.slot_names[0], &info);
    e.mirror = mirror;
    e.mirror_ptr = py::detail::array_proxy(mirror.ptr())->data;
    e.mirror_descr = py::detail::array_proxy(mirror.ptr())->descr;
    spec.mirror = array_ref(mirror);
    spec.has_mirror = true;
  };
  auto on_done = [&](Entry&) { core_.add(spec); };
  read_items(info, items, state_dicts, entries_, on_param, on_state, on_mirror, on_done);
  core_.seal();
}

// Each param, master-weights mirror and state is re-read from NumPy's struct: still the bytes
// and flags it was checked with (a resize frees or moves its buffer), writeable
// (arr.flags.writeable = False).
void Plan::verify_arrays(const Entry& e, int64_t numel) const {
  const OpInfo& info = core_.op();
  if (!still_laid_out(e.param, e.ptrs[0], numel, e.descr, kWritable)) {
    if (!writeable(e.param)) throw py::value_error(who(e.index, info.slot_names[0], &info) + " is read-only");
    throw StalePlan("a param was resized or relaid");
  }
  if (e.mirror && !still_laid_out(e.mirror, e.mirror_ptr, numel, e.mirror_descr, kWritable)) {
    if (!writeable(e.mirror)) throw py::value_error(who(e.index, info.slot_names[0], &info) + " is read-only");
    throw StalePlan("a param was resized or relaid");
  }
  for (size_t k = 0; k < e.states.size(); ++k) {
    const int id = e.state_ids[k];
    const int64_t n = e.state_numel[k] >= 0 ? e.state_numel[k] : numel;  // quantized: its code bytes
    if (!still_laid_out(e.states[k], e.ptrs[2 + id], n, e.state_descrs[k], kWritable)) {
      if (!writeable(e.states[k])) throw py::value_error(who(e.index, info.state_names[id], &info) + " is read-only");
      throw StalePlan("a state array was resized or relaid");
    }
  }
  for (size_t k = 0; k < e.scales.size(); ++k) {
    if (!still_laid_out(e.scales[k], e.scale_ptrs[k], e.scale_numel[k], e.scale_descrs[k], kWritable)) {
      if (!writeable(e.scales[k])) throw py::value_error(who(e.index, "quantization scales", &info) + " are read-only");
      throw StalePlan("a state array was resized or relaid");
    }
  }
}

// Starts loading the objects the checks of entry e will read (its arrays, state dict and grad
// tensor, the engine's entry): with many small arrays the checks wait on memory, not on arithmetic.
template <class Entry>
void prefetch_entry(const Entry& e, const StepPlan::Entry& c, const GradReader& grads, size_t i) {
  __builtin_prefetch(e.param.ptr());
  for (const py::array& s : e.states) __builtin_prefetch(s.ptr());
  if (!e.state_dict.is_none()) __builtin_prefetch(e.state_dict.ptr());
  grads.prefetch(i);
  for (size_t at = 0; at < sizeof c; at += 64) __builtin_prefetch(reinterpret_cast<const char*>(&c) + at);
}

size_t Plan::run(py::sequence grads_in, py::object coeff_sets, py::object param_lists, py::object scalars,
                 py::object grad_scale, py::object rounding_key, py::object code_key) {
  const OpInfo& info = core_.op();
  GradReader grads(grads_in);
  ListedParams listed(param_lists);
  check_counts(entries_, listed, grads);
  GroupSchedule* schedule = nullptr;
  const std::vector<CoeffBlock> coeffs = pyoptk::coeff_sets(info, coeff_sets, &schedule);
  StepOptions options;
  options.scaled = !grad_scale.is_none();
  if (options.scaled) options.grad_scale = static_cast<float>(grad_scale.cast<double>());
  options.stochastic = !rounding_key.is_none();
  if (options.stochastic) options.rounding_key = rounding_key.cast<uint64_t>();
  options.stochastic_codes = !code_key.is_none();
  if (options.stochastic_codes) options.code_key = code_key.cast<uint64_t>();

  // One pass over the entries: each still the optimizer's, its arrays verified, its grad read
  // and checked, its task made.
  PreparedStep step;
  core_.begin(coeffs.data(), coeffs.size(), options, step);
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    const StepPlan::Entry& c = core_.entry(i);
    if (i + 4 < entries_.size()) prefetch_entry(entries_[i + 4], core_.entry(i + 4), grads, i + 4);
    check_entry_current(e, i, listed, state_keys_, grads, info.reads_grad);
    for (size_t k = 0; k < e.scales.size() && !e.state_dict.is_none(); ++k) {
      if (PyDict_GetItem(e.state_dict.ptr(), scale_keys_[e.scale_state_ids[k]].ptr()) != e.scales[k].ptr()) {
        throw StalePlan("a state array was replaced");
      }
    }
    verify_arrays(e, c.numel);
    GradRef grad;
    if (info.reads_grad) {
      // Grads come in the listed param's dtype or, for a float32-computing param, float32.
      const bool f32_too = c.dtype == kFloat32;
      grad = e.mirror ? grads.read(i, py::reinterpret_borrow<py::array>(e.mirror), c.numel, c.grad_dtype(), f32_too,
                                   e.index, info)
                      : grads.read(i, e.param, c.numel, c.grad_dtype(), f32_too, e.index, info);
    } else {
      grad.given = !grads.missing(i);
    }
    core_.take(i, grad, step);
  }
  // Python code may have run while a grad was read: one more look at every array (grads too)
  // before the kernel; none runs from here on.
  for (size_t i = 0; grads.python_may_have_run() && i < entries_.size(); ++i) {
    const StepPlan::Entry& c = core_.entry(i);
    verify_arrays(entries_[i], c.numel);
    if (info.reads_grad && !grads.unchanged(i, step.tasks[i].ptrs[1], c.grad_dtype(), c.numel)) {
      throw StalePlan("a grad was resized or relaid");
    }
  }
  const size_t spans = core_.finish(step);
  {
    py::gil_scoped_release release;
    step.run();
  }
  merge_scalars(entries_, schedule ? schedule->commit() : scalars);
  return spans;
}

std::vector<std::tuple<int64_t, std::string, std::string>> Plan::kernel_paths() const {
  std::vector<std::tuple<int64_t, std::string, std::string>> out;
  for (size_t i = 0; i < core_.size(); ++i) {
    const StepPlan::Entry& e = core_.entry(i);
    out.emplace_back(e.index, kernel_path_name(e.path), kernel_path_text(e.path));
  }
  return out;
}

size_t step(const std::string& op, py::sequence items, py::object coeff_sets, py::object grad_scale,
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
