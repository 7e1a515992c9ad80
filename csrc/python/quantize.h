// Bindings of the block quantizer (csrc/cpu/quantize.h) for whole arrays.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

namespace pyoptk {

// (codes uint8, scales float32) of a float32 array's elements in C order; key (an int, or None:
// the nearest entry): codes rounded stochastically with that key.
pybind11::tuple quantize_array(pybind11::array_t<float, pybind11::array::c_style | pybind11::array::forcecast> values,
                               int map_id, int64_t block, pybind11::object key);
// The numel float32 values those codes and scales stand for.
pybind11::array_t<float> dequantize_array(
    pybind11::array_t<uint8_t, pybind11::array::c_style | pybind11::array::forcecast> codes,
    pybind11::array_t<float, pybind11::array::c_style | pybind11::array::forcecast> scales, int map_id, int64_t block,
    int64_t numel);
// A map's values, ascending.
pybind11::array_t<float> quant_map_values(int map_id);

}  // namespace pyoptk
