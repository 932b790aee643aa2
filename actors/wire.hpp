// Tensors to and from WireTensor: exact float32 in codecs' binary format (header with dtype,
// shape and checksums, then the bytes), so what a remote node computes on is bit for bit what
// was sent, and a corrupted message is an error, never a wrong tensor.
#pragma once

#include <torch/types.h>

#include "actors/messages.hpp"
#include "base/expected.hpp"

namespace reel::actors {

// An undefined tensor becomes empty bytes. Any floating dtype is sent as float32.
// Errors: invalid_argument for a non-floating tensor; internal when LibTorch throws.
[[nodiscard]] Expected<WireTensor> to_wire(const torch::Tensor& tensor);

// Empty bytes give an undefined tensor. Errors: corrupt_data (checksums, lengths), unsupported.
[[nodiscard]] Expected<torch::Tensor> from_wire(const WireTensor& wire);

}  // namespace reel::actors
