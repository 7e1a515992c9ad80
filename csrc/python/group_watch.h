// _core.GroupWatch: which param groups changed since the optimizer last checked them, found in
// C++ in one call per step (the steady state's only look at the groups before the plan runs).
// A group counts as changed when it is another dict, a key was added, removed or reordered, a
// value replaced, or a number inside a mutable value moved (a betas list changed in place, a
// 0-d array or tensor lr a scheduler writes in place). The Python layer checks the changed ones
// (its checks and messages, the one copy) and records them with accept(). One exception, a
// scheduler's every step: where the optimizer says its lr's check is only "a number >= 0" (every
// element-wise algorithm's), a group whose only change is a new lr that is plainly such a number
// (a float, or a 0-d array or tensor's value, finite and >= 0) is recorded here, not reported;
// any other lr still goes to the Python check, which words the refusal.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

namespace pyoptk {

class GroupWatch {
 public:
  // lr_key: the key whose plainly valid new values are accepted here (None: none is).
  explicit GroupWatch(pybind11::object lr_key = pybind11::none()) : lr_key_(std::move(lr_key)) {}
  // groups: a list (or any sequence); returns the indices of its items that differ from what accept() recorded
  // at that index (every index never accepted, and every item that is not a dict), but for a
  // plainly valid new lr alone, which it records.
  pybind11::tuple changed(pybind11::handle groups);
  // Records `group` as checked, at index i (the list of records grows to i + 1 as needed).
  void accept(size_t i, pybind11::dict group);
  // Forgets the records from index `count` on (groups removed).
  void truncate(size_t count);

 private:
  // A value as recorded: the object, and what is inside a mutable one.
  struct Value {
    pybind11::object key, value;
    bool list = false;
    std::vector<pybind11::object> items;  // a list's items (compared by identity)
    bool number = false;                  // a 0-d array or tensor: its value
    double inside = 0.0;
  };
  struct Record {
    pybind11::object dict;  // null: never accepted
    std::vector<Value> values;
  };
  // True when `group` is as recorded, or differs only by a plainly valid lr (then recorded).
  bool same(Record& r, PyObject* group) const;
  pybind11::object lr_key_;
  std::vector<Record> records_;
};

void bind_group_watch(pybind11::module_& m);

}  // namespace pyoptk
