#include "device_plan.h"

#include <algorithm>
#include <map>
#include <utility>

#include "../../cpu/registry.h"
#include "../../cuda/runtime.h"
#include "../checks.h"
#include "../group_schedule.h"
#include "../plan_book.h"

namespace py = pybind11;

namespace pyoptk {
namespace gpu {
namespace {

std::string dtype_name(int dtype) { return dtype == kFloat32 ? "float32" : "float64"; }

// Checks an array against the plan's param (nullptr: it is the param) and the plan's device.
DeviceView checked_view(py::handle obj, int64_t index, const char* role, const DeviceView* param, int device,
                        bool written, const OpInfo& op) {
  auto name = [&] { return who(index, role, &op); };
  DeviceView v = view_of(obj, name);
  const std::string first = op.slot_names[0];
  if (param != nullptr) {
    if (v.dtype != param->dtype) {
      throw py::type_error(name() + " has dtype " + dtype_name(v.dtype) + ", expected " + dtype_name(param->dtype) +
                           " (the " + first + "'s dtype)");
    }
    if (v.shape != param->shape) {
      throw py::value_error(name() + " has shape " + shape_str(v.shape.data(), v.shape.size()) + ", expected " +
                            shape_str(param->shape.data(), param->shape.size()) +
                            " (the " + first + "'s shape)");
    }
  }
  if (device >= 0 && v.device != device && v.numel() > 0) {
    throw py::value_error(name() + " is on cuda:" + std::to_string(v.device) + ", the step runs on cuda:" +
                          std::to_string(device) + "; one step's arrays must share a device");
  }
  if (written && !v.writeable) throw py::value_error(name() + " is read-only");
  return v;
}

}  // namespace

DevicePlan::DevicePlan(const std::string& op_name, py::sequence items, py::object state_dicts)
    : op_(op_id(op_name)) {
  const OpInfo& info = kOpInfo[op_];
  state_keys_ = state_keys(info);
  // Written extents, and the producer streams the params and states come with (fixed for the
  // plan's life, like the arrays).
  auto record = [&](const Entry& e, const DeviceView& v, const char* role) {
    const size_t nbytes = e.param_view.nbytes();
    if (nbytes > 0) written_.push_back({v.data, v.data + nbytes, true, e.index, role});
    if (v.stream != 0) array_streams_.insert(v.stream);
  };
  auto on_param = [&](Entry& e, py::handle param) {
    e.param = py::reinterpret_borrow<py::object>(param);
    e.param_view = checked_view(param, e.index, info.slot_names[0], nullptr, device_, true, info);
    if (device_ < 0) device_ = e.param_view.device;
    if (!has_kernel(op_, e.param_view.dtype, e.mode)) {
      throw py::value_error(std::string(info.name) + ": unsupported flag combination " + std::to_string(e.mode));
    }
    e.ptrs[0] = e.param_view.data;
    record(e, e.param_view, info.slot_names[0]);
  };
  auto on_state = [&](Entry& e, int k, py::handle state) {
    e.states.push_back(py::reinterpret_borrow<py::object>(state));
    e.state_views.push_back(checked_view(state, e.index, info.state_names[k], &e.param_view, device_, true, info));
    e.ptrs[2 + k] = e.state_views.back().data;
    record(e, e.state_views.back(), info.state_names[k]);
  };
  read_items(info, items, state_dicts, entries_, on_param, on_state);
  refuse_overlaps(written_, &info);
}

size_t DevicePlan::run(py::sequence grads, py::object coeff_sets, py::object param_lists, py::object scalars) {
  const OpInfo& info = kOpInfo[op_];
  check_still_current(entries_, state_keys_, GradReader(grads), param_lists, info.reads_grad);
  GroupSchedule* schedule = nullptr;
  std::vector<float> coeffs_f32;
  std::vector<double> coeffs_f64;
  for (const CoeffBlock& block : pyoptk::coeff_sets(info, coeff_sets, &schedule)) {
    coeffs_f32.insert(coeffs_f32.end(), block.f32, block.f32 + kMaxCoeffs);
    coeffs_f64.insert(coeffs_f64.end(), block.f64, block.f64 + kMaxCoeffs);
  }
  const int64_t rows = static_cast<int64_t>(coeffs_f32.size() / kMaxCoeffs);

  std::map<std::pair<int, int>, size_t> group_of;  // (dtype, mode) -> launch group
  std::vector<LaunchGroup> groups;
  std::set<uintptr_t> producer_streams = array_streams_;
  std::vector<DeviceView> grad_views;  // keep the grads' memory alive until the launch is queued
  grad_views.reserve(entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    if (e.slot < 0 || e.slot >= rows) throw py::value_error("coefficient slot out of range");
    DeviceTask task{};
    std::copy(std::begin(e.ptrs), std::end(e.ptrs), task.ptrs);
    if (info.reads_grad) {
      grad_views.push_back(checked_view(grads[i], e.index, info.slot_names[1], &e.param_view, device_, false, info));
      const DeviceView& g = grad_views.back();
      if (g.nbytes() > 0) refuse_overlap_with(written_, {g.data, g.data + g.nbytes(), false, e.index, info.slot_names[1]}, &info);
      if (g.stream != 0) producer_streams.insert(g.stream);
      task.ptrs[1] = g.data;
    } else if (!grads[i].is_none()) {
      throw py::value_error(std::string(info.name) + " takes no second array (pass None)");
    }
    task.numel = e.param_view.numel();
    task.coeff_slot = static_cast<int32_t>(e.slot);
    task.aligned = 1;
    for (char* p : task.ptrs) task.aligned &= (reinterpret_cast<uintptr_t>(p) % 16) == 0;
    const auto key = std::make_pair(e.param_view.dtype, e.mode);
    auto found = group_of.find(key);
    if (found == group_of.end()) {
      found = group_of.emplace(key, groups.size()).first;
      groups.push_back({key.first, key.second, {}});
    }
    groups[found->second].tasks.push_back(task);
  }
  if (device_ < 0) return 0;  // no params
  for (uintptr_t s : producer_streams) order_streams(reinterpret_cast<cudaStream_t>(s), cudaStreamLegacy, device_);
  const int launches = launch_step(op_, device_, groups, coeffs_f32.data(), coeffs_f64.data(), static_cast<int>(rows),
                                   *workspace_);
  merge_scalars(entries_, schedule ? schedule->commit() : scalars);
  return static_cast<size_t>(launches);
}

}  // namespace gpu
}  // namespace pyoptk
