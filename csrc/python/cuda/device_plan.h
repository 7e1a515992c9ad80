// A step plan over GPU arrays: Plan's contract (plan.h), with params and states checked once
// and the grads each run, then one upload of the work list and one launch per (dtype, mode).
#pragma once
#include <pybind11/pybind11.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "../../cuda/launch.h"
#include "../plan.h"
#include "device_view.h"

namespace pyoptk {
namespace gpu {

class DevicePlan {
 public:
  DevicePlan(const std::string& op, pybind11::sequence items, pybind11::object state_dicts = pybind11::none());

  // Same arguments as Plan::run. Queues the update on the legacy default stream and returns the
  // number of kernel launches (the step is asynchronous, like torch's).
  size_t run(pybind11::sequence grads, pybind11::object coeff_sets, pybind11::object param_lists = pybind11::none(),
             pybind11::object scalars = pybind11::none());

  size_t size() const { return entries_.size(); }
  int device() const { return device_; }

 private:
  struct Entry {
    int64_t index;
    int mode;
    int64_t slot;
    pybind11::object param;
    DeviceView param_view;
    std::vector<pybind11::object> states;  // present states only
    std::vector<DeviceView> state_views;
    std::vector<int> state_ids;
    pybind11::object state_dict;
    char* ptrs[2 + kMaxStates];
  };
  int op_;
  int device_ = -1;
  std::vector<pybind11::object> state_keys_;
  std::vector<Entry> entries_;
  std::vector<Extent> written_;       // sorted, pairwise disjoint
  std::set<uintptr_t> array_streams_;  // producer streams of the params and states
  std::unique_ptr<Workspace> workspace_ = std::make_unique<Workspace>();
};

}  // namespace gpu
}  // namespace pyoptk
