#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

namespace pyoptk {

// items: (param index, mode, coefficient slot, param, grad, state 0, ...); absent states are None.
// coeff_sets: one sequence of the op's coefficients per slot, in double.
void step(const std::string& op_name, pybind11::sequence items, pybind11::sequence coeff_sets);

// {op name: {"flags": {name: bit}, "states": [(name, required flag bits)], "coeffs": [names]}}
pybind11::dict registry();

}  // namespace pyoptk
