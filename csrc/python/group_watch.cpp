#include "group_watch.h"

#include <cmath>
#include <cstring>

namespace py = pybind11;

namespace pyoptk {

namespace {

// Values whose contents cannot change in place (a tuple of such is compared by identity too:
// replacing it replaces the object).
bool immutable(PyObject* v) {
  return v == Py_None || PyFloat_CheckExact(v) || PyLong_CheckExact(v) || PyBool_Check(v) || PyUnicode_CheckExact(v) ||
         PyTuple_CheckExact(v);
}

// Keys whose values are the plan's business (params are checked by the plan itself), not the group check's.
bool plan_key(PyObject* key) {
  return PyUnicode_Check(key) &&
         (PyUnicode_CompareWithASCIIString(key, "params") == 0 || PyUnicode_CompareWithASCIIString(key, "param_names") == 0);
}

bool read_number(PyObject* v, double* out) {
  const double d = PyFloat_AsDouble(v);
  if (d == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  *out = d;
  return true;
}

// The number inside a 0-d array or tensor (read each step by float()); false for any other
// object, which is then compared by identity only. At accept() only: it asks for `ndim`.
bool zero_dim_number(PyObject* v, double* out) {
  if (PyList_Check(v) || PyDict_Check(v) || !PyNumber_Check(v)) return false;
  PyObject* ndim = PyObject_GetAttrString(v, "ndim");
  if (ndim == nullptr) {
    PyErr_Clear();
    return false;
  }
  const bool zero_dim = PyLong_Check(ndim) && PyLong_AsLong(ndim) == 0;
  Py_DECREF(ndim);
  PyErr_Clear();
  return zero_dim && read_number(v, out);
}

}  // namespace

bool GroupWatch::same(Record& r, PyObject* group) const {
  if (!r.dict || r.dict.ptr() != group) return false;
  if (PyDict_GET_SIZE(group) != static_cast<Py_ssize_t>(r.values.size())) return false;
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  Value* new_lr = nullptr;  // the lr's record, when its value is all that changed
  PyObject* lr_value = nullptr;
  double lr = 0.0;
  for (Value& v : r.values) {
    if (!PyDict_Next(group, &pos, &key, &value)) return false;
    if (key != v.key.ptr()) return false;
    if (key == lr_key_.ptr() && (value != v.value.ptr() || v.number)) {
      // "a number >= 0": a plain float, or the value inside a 0-d array or tensor (the same kind
      // of object as recorded, so its value is all that can have moved)
      const bool plain = PyFloat_CheckExact(value) && !v.number;
      const bool inside = v.number && value == v.value.ptr();
      if (!(plain || inside) || !read_number(value, &lr) || !(lr >= 0.0 && lr < HUGE_VAL)) return false;
      new_lr = &v;
      lr_value = value;
      continue;
    }
    if (value != v.value.ptr()) return false;
    if (v.list) {
      if (!PyList_Check(value) || PyList_GET_SIZE(value) != static_cast<Py_ssize_t>(v.items.size())) return false;
      for (size_t k = 0; k < v.items.size(); ++k) {
        if (PyList_GET_ITEM(value, static_cast<Py_ssize_t>(k)) != v.items[k].ptr()) return false;
      }
    } else if (v.number) {
      double now;
      if (!read_number(value, &now) || std::memcmp(&now, &v.inside, sizeof now) != 0) return false;
    }
  }
  if (new_lr != nullptr) {
    new_lr->value = py::reinterpret_borrow<py::object>(lr_value);
    new_lr->inside = lr;
  }
  return true;
}

py::tuple GroupWatch::changed(py::handle groups) {
  const py::object fast = py::reinterpret_steal<py::object>(PySequence_Fast(groups.ptr(), "param_groups must be a list"));
  if (!fast) throw py::error_already_set();
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast.ptr());
  std::vector<Py_ssize_t> out;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* group = PySequence_Fast_GET_ITEM(fast.ptr(), i);
    const bool known = static_cast<size_t>(i) < records_.size() && PyDict_Check(group);
    if (!known || !same(records_[static_cast<size_t>(i)], group)) out.push_back(i);
  }
  py::tuple result(out.size());
  for (size_t k = 0; k < out.size(); ++k) result[k] = py::int_(out[k]);
  return result;
}

void GroupWatch::accept(size_t i, py::dict group) {
  if (records_.size() <= i) records_.resize(i + 1);
  Record r;
  r.dict = group;
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  while (PyDict_Next(group.ptr(), &pos, &key, &value)) {
    Value v;
    v.key = py::reinterpret_borrow<py::object>(key);
    v.value = py::reinterpret_borrow<py::object>(value);
    if (!immutable(value) && !plan_key(key)) {
      if (PyList_Check(value)) {
        v.list = true;
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(value); ++k) {
          v.items.push_back(py::reinterpret_borrow<py::object>(PyList_GET_ITEM(value, k)));
        }
      } else {
        v.number = zero_dim_number(value, &v.inside);
      }
    }
    r.values.push_back(std::move(v));
  }
  records_[i] = std::move(r);
}

void GroupWatch::truncate(size_t count) {
  if (records_.size() > count) records_.resize(count);
}

void bind_group_watch(py::module_& m) {
  py::class_<GroupWatch>(m, "GroupWatch", "The param groups changed since they were last checked (internal).")
      .def(py::init<py::object>(), py::arg("lr_key") = py::none())
      .def("changed", &GroupWatch::changed, py::arg("groups"))
      .def("accept", &GroupWatch::accept, py::arg("index"), py::arg("group"))
      .def("truncate", &GroupWatch::truncate, py::arg("count"));
}

}  // namespace pyoptk
