#include "actors/wire.hpp"

#include <cstring>
#include <span>

#include "codecs/tensor.hpp"

namespace reel::actors {

Expected<WireTensor> to_wire(const torch::Tensor& tensor) {
  if (!tensor.defined()) return WireTensor{};
  if (!tensor.is_floating_point()) {
    return make_error(Errc::invalid_argument, "only floating tensors travel on the wire");
  }
  try {
    const torch::Tensor t = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    auto bytes = codecs::pack_f32(
        std::span<const float>(t.data_ptr<float>(), static_cast<size_t>(t.numel())), std::move(shape));
    if (!bytes) return bytes.error();
    return WireTensor{std::move(*bytes)};
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("cannot send a tensor: ") + e.what());
  }
}

Expected<torch::Tensor> from_wire(const WireTensor& wire) {
  if (wire.bytes.empty()) return torch::Tensor{};
  auto unpacked = codecs::unpack_f32(wire.bytes);
  if (!unpacked) return unpacked.error();
  auto& [shape, values] = *unpacked;
  try {
    torch::Tensor t = torch::empty(shape, torch::kFloat32);
    if (!values.empty()) std::memcpy(t.data_ptr<float>(), values.data(), values.size() * sizeof(float));
    return t;
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("cannot receive a tensor: ") + e.what());
  }
}

}  // namespace reel::actors
