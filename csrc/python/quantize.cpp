// _core.quantize / dequantize / quant_map: the step's own quantizer (csrc/cpu/quantize.h) over
// whole NumPy arrays, for creating, loading and exporting quantized state.
#include "quantize.h"

#include "../cpu/quantize.h"

namespace py = pybind11;

namespace pyoptk {
namespace {

const QuantMap& checked_map(int id, int64_t block) {
  if (id < 0 || id >= kNumQuantMaps) throw py::value_error("unknown quantization map " + std::to_string(id));
  if (!valid_quant_block(block)) {
    throw py::value_error("block_size " + std::to_string(block) + " is not a power of two in [" +
                          std::to_string(kMinQuantBlock) + ", " + std::to_string(kMaxQuantBlock) + "]");
  }
  return quant_map(id);
}

}  // namespace

py::tuple quantize_array(py::array_t<float, py::array::c_style | py::array::forcecast> values, int map_id, int64_t block,
                         py::object key) {
  const QuantMap& map = checked_map(map_id, block);
  const int64_t n = values.size();
  if (!key.is_none()) key.cast<uint64_t>();  // a bad key is refused before the GIL is released
  py::array_t<uint8_t> codes(quant_code_bytes(map.bits, n));
  py::array_t<float> scales(quant_blocks(n, block));
  {
    py::gil_scoped_release release;
    quantize(map, values.data(), static_cast<int>(block), 0, n, codes.mutable_data(), scales.mutable_data(),
             !key.is_none(), key.is_none() ? 0 : key.cast<uint64_t>());
  }
  return py::make_tuple(codes, scales);
}

py::array_t<float> dequantize_array(py::array_t<uint8_t, py::array::c_style | py::array::forcecast> codes,
                                    py::array_t<float, py::array::c_style | py::array::forcecast> scales, int map_id,
                                    int64_t block, int64_t numel) {
  const QuantMap& map = checked_map(map_id, block);
  if (numel < 0 || codes.size() != quant_code_bytes(map.bits, numel) || scales.size() != quant_blocks(numel, block)) {
    throw py::value_error(std::to_string(numel) + " elements of " + std::to_string(map.bits) + "-bit codes in blocks of " +
                          std::to_string(block) + " take " + std::to_string(quant_code_bytes(map.bits, numel)) +
                          " code bytes and " + std::to_string(quant_blocks(numel, block)) + " scales, got " +
                          std::to_string(codes.size()) + " and " + std::to_string(scales.size()));
  }
  py::array_t<float> out(numel);
  dequantize(map, codes.data(), scales.data(), static_cast<int>(block), 0, numel, out.mutable_data());
  return out;
}

py::array_t<float> quant_map_values(int map_id) {
  const QuantMap& map = checked_map(map_id, kMinQuantBlock);
  py::array_t<float> out(map.size);
  std::copy(map.values, map.values + map.size, out.mutable_data());
  return out;
}

}  // namespace pyoptk
