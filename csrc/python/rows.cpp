#include "rows.h"

#include <vector>

#include "../engine/row_step.h"
#include "checks.h"

namespace py = pybind11;

namespace pyoptk {
namespace {

// rows: what only NumPy's side can say (a 1-D, C-contiguous, aligned int64 ndarray); the engine
// checks the indices.
py::array rows_array(py::handle obj, int64_t index) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(who(index, "rows") + " must be a numpy.ndarray of int64");
  if (is_masked(obj)) refuse_masked(who(index, "rows"));
  py::array rows = py::reinterpret_borrow<py::array>(obj);
  if (!rows.dtype().equal(py::dtype::of<int64_t>()) || rows.ndim() != 1 || !(rows.flags() & py::array::c_style)) {
    throw py::type_error(who(index, "rows") + " must be a 1-D, C-contiguous int64 array");
  }
  if (!is_aligned(rows)) refuse_unaligned(rows, who(index, "rows"));
  return rows;
}

py::array values_array(py::handle obj, int64_t index) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(who(index, "grad values") + " must be a numpy.ndarray");
  if (is_masked(obj)) refuse_masked(who(index, "grad values"));
  return py::reinterpret_borrow<py::array>(obj);
}

}  // namespace

void step_rows(const std::string& op_name, py::sequence items, py::sequence coeff_sets, py::object rounding_key) {
  const int op = op_id(op_name);
  const OpInfo& info = kOpInfo[op];
  std::vector<CoeffBlock> coeffs;
  for (py::handle values : coeff_sets) coeffs.push_back(read_coeffs(info, values));

  const size_t arity = 6 + info.num_states;  // + 1: the 16-bit param, under master weights
  // Every item's Python-level fields first (casts and sequence access may run Python code, which
  // could resize an array already read); then the arrays, with no Python code in between.
  std::vector<py::tuple> tuples;
  std::vector<RowEntrySpec> entries;
  for (py::handle obj : py::tuple(items)) {
    py::tuple item(py::reinterpret_borrow<py::object>(obj));
    if (item.size() != arity && item.size() != arity + 1) {
      throw py::value_error("a row item of " + std::string(info.name) + " has " + std::to_string(arity) + " fields (" +
                            std::to_string(arity + 1) + " with master weights)");
    }
    RowEntrySpec e;
    e.index = item[0].cast<int64_t>();
    e.mode = item[1].cast<int>();
    e.slot = item[2].cast<int64_t>();
    tuples.push_back(item);
    entries.push_back(e);
  }
  StepOptions options;
  options.stochastic = !rounding_key.is_none();
  options.rounding_key = options.stochastic ? rounding_key.cast<uint64_t>() : 0;
  std::vector<py::array> keep;  // every array stays referenced while the GIL is released
  for (size_t i = 0; i < entries.size(); ++i) {
    const py::tuple& item = tuples[i];
    RowEntrySpec& e = entries[i];
    keep.push_back(as_array(item[3], e.index, "param"));
    e.param = array_ref(keep.back());
    if (item.size() == arity + 1) {
      keep.push_back(as_array(item[arity], e.index, "param"));
      e.mirror = array_ref(keep.back());
      e.has_mirror = true;
    }
    keep.push_back(rows_array(item[5], e.index));
    e.rows = static_cast<const int64_t*>(keep.back().data());
    e.nrows = keep.back().shape(0);
    keep.push_back(values_array(item[4], e.index));
    e.values = array_ref(keep.back());
    for (int k = 0; k < info.num_states; ++k) {
      py::handle s = item[6 + k];
      e.given[k] = !s.is_none();
      if (!e.given[k]) continue;
      keep.push_back(as_array(s, e.index, info.state_names[k]));
      e.states[k] = array_ref(keep.back());
    }
  }
  PreparedStep prepared;
  prepare_rows(op, entries, coeffs.data(), coeffs.size(), options, prepared);
  py::gil_scoped_release release;
  prepared.run();
}

}  // namespace pyoptk
