#include "actors/wire.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace reel::actors {
namespace {

TEST(Wire, CarriesAFloatTensorExactlyWithItsShape) {
  torch::manual_seed(3);
  const torch::Tensor t = torch::randn({2, 3, 4, 5, 6});
  auto wire = to_wire(t);
  ASSERT_TRUE(wire.ok()) << wire.error().message;
  auto back = from_wire(*wire);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->sizes(), t.sizes());
  EXPECT_TRUE(torch::equal(*back, t));
}

TEST(Wire, SendsNonContiguousAndDoubleTensorsAsFloat32) {
  const torch::Tensor t = torch::arange(24, torch::kFloat64).reshape({2, 3, 4}).transpose(0, 2);
  auto back = from_wire(*to_wire(t));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(*back, t.to(torch::kFloat32)));
}

TEST(Wire, AnUndefinedTensorIsEmptyBytesBothWays) {
  auto wire = to_wire(torch::Tensor{});
  ASSERT_TRUE(wire.ok());
  EXPECT_TRUE(wire->bytes.empty());
  auto back = from_wire(*wire);
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->defined());
}

TEST(Wire, RefusesIntegerTensors) {
  auto wire = to_wire(torch::arange(5));
  ASSERT_FALSE(wire.ok());
  EXPECT_EQ(wire.error().code, Errc::invalid_argument);
}

TEST(Wire, EveryFlippedOrMissingByteIsAnErrorNeverAWrongTensor) {
  const torch::Tensor t = torch::randn({1, 2, 3});
  const WireTensor good = *to_wire(t);
  for (size_t i = 0; i < good.bytes.size(); ++i) {
    WireTensor bad = good;
    bad.bytes[i] = static_cast<char>(bad.bytes[i] ^ 0x20);
    auto back = from_wire(bad);
    EXPECT_FALSE(back.ok()) << "flipped byte " << i << " was accepted";
  }
  for (size_t n = 1; n < good.bytes.size(); ++n) {
    EXPECT_FALSE(from_wire(WireTensor{good.bytes.substr(0, n)}).ok()) << "cut at " << n;
  }
}

}  // namespace
}  // namespace reel::actors
