// _core.GroupSchedule: a plan's coefficient sets computed in C++ from the optimizer's param groups.
// Each step it reads every group's hyper-parameters once (numbers, 0-d arrays or tensors; the
// Python layer checked the groups before the call), computes each slot's coefficients and scalar
// state (engine/schedule.h), and once the kernels ran, merges the scalar state into each param's
// state dict ("step", and the op's scalars).
#pragma once
#include <pybind11/pybind11.h>

#include <utility>
#include <vector>

#include "../engine/coeffs.h"
#include "../engine/schedule.h"

namespace pyoptk {

class GroupSchedule {
 public:
  // groups: the optimizer's param groups. hyper_keys: per hyper-parameter of the op, (group key,
  // index in a pair or None). slots: per coefficient slot, (group index, before), before None for
  // params without scalar state yet, else (step, scalar...) as their state dicts hold them.
  GroupSchedule(const std::string& op, pybind11::list groups, pybind11::list hyper_keys, bool has_step,
                pybind11::list slots);

  // The next step's coefficient sets, one per slot; nothing changes until commit().
  std::vector<CoeffBlock> next();
  // The step ran: the slots move on. Returns per slot the dict of scalar state to merge into its
  // params' state dicts, or None when the op keeps none.
  pybind11::object commit();
  // Per slot, its scalar state now: None (fresh) or (step, scalar...).
  pybind11::list slots() const;
  const OpInfo& op() const { return *op_; }

 private:
  void read_hyper(size_t group, double* out) const;
  const OpInfo* op_;
  pybind11::list groups_;
  std::vector<std::pair<pybind11::object, int>> hyper_keys_;
  bool has_step_;
  std::vector<pybind11::object> scalar_keys_;  // "step" first when has_step
  std::vector<SlotState> slots_;
  std::vector<SlotState> pending_;
};

void bind_group_schedule(pybind11::module_& m);

// The coefficient sets a plan's run reads: a GroupSchedule's next ones (*schedule set to it), or
// a sequence of sets given by the caller (*schedule = nullptr).
std::vector<CoeffBlock> coeff_sets(const OpInfo& op, pybind11::handle coeffs, GroupSchedule** schedule);

}  // namespace pyoptk
