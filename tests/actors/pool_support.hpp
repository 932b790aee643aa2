// What the worker-pool and node tests share: an actor system with reel's types, and the
// conditioning of the built-in tiny model for a prompt.
#pragma once

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <torch/torch.h>

#include <memory>

#include "actors/messages.hpp"
#include "models/zoo.hpp"
#include "pipeline/denoiser.hpp"

namespace reel::actors::testing {

struct Configured : caf::actor_system_config {
  Configured() { configure(*this); }
};

// One actor system per test, each with its own configuration.
struct ActorSystem {
  Configured cfg;
  caf::actor_system system{cfg};
};

inline models::T2VModel tiny_model() {
  auto m = models::open_model("tiny-random", "");
  if (!m) throw std::runtime_error(m.error().message);
  return std::move(*m);
}

inline pipeline::Conditioning conditioning(const models::T2VModel& m, const std::string& prompt) {
  torch::NoGradGuard no_grad;
  const torch::Tensor text = *m.text_encoder->encode({prompt});
  return {text, torch::zeros_like(text)};  // unconditional: the empty prompt, as reel generate
}

}  // namespace reel::actors::testing
