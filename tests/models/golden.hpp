// Access to ../shared/golden for reference tests; tests skip when it is absent.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "models/safetensors.hpp"

namespace reel::testing {

inline std::string golden_dir() { return std::string(REEL_SHARED_DIR) + "/golden"; }

#define REEL_SKIP_WITHOUT_GOLDEN()                                                  \
  do {                                                                              \
    if (!std::filesystem::exists(::reel::testing::golden_dir()))                    \
      GTEST_SKIP() << "no golden vectors at " << ::reel::testing::golden_dir();     \
  } while (0)

inline models::SafeTensors open_golden(const std::string& relative) {
  auto st = models::SafeTensors::open(golden_dir() + "/" + relative);
  if (!st) throw std::runtime_error(st.error().message);
  return std::move(st).value();
}

inline at::Tensor golden_tensor(const models::SafeTensors& file, const std::string& name) {
  auto t = file.get(name);
  if (!t) throw std::runtime_error(t.error().message);
  return *t;
}

// Relative L2 error ||a - b|| / ||ref|| and the largest absolute difference.
struct Deviation {
  double rel = 0;
  double max_abs = 0;
};
inline Deviation deviation(const at::Tensor& actual, const at::Tensor& reference) {
  auto a = actual.to(torch::kFloat64);
  auto r = reference.to(torch::kFloat64);
  EXPECT_EQ(a.sizes(), r.sizes());
  return {(a - r).norm().item<double>() / r.norm().item<double>(), (a - r).abs().max().item<double>()};
}

}  // namespace reel::testing
