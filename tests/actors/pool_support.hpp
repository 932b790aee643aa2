// What the worker-pool and node tests share: an actor system with reel's types, and the
// conditioning of the built-in tiny model for a prompt.
#pragma once

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/message.hpp>
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

// `sent` as another node reads it: serialised by one actor system, read back by another. Two
// actor systems in one process share a node id, so a "remote" handle between them is the actor
// itself and its messages are never serialised; this checks the bytes instead. A type the
// systems do not know comes back as an empty message (CAF drops it), so compare the result.
inline caf::message across_nodes(const caf::message& sent) {
  ActorSystem from, to;
  std::vector<char> bytes;
  caf::binary_serializer sink{from.system, bytes};
  if (auto err = sink(const_cast<caf::message&>(sent))) throw std::runtime_error(from.system.render(err));
  caf::message got;
  caf::binary_deserializer source{to.system, bytes};
  if (auto err = source(got)) throw std::runtime_error(to.system.render(err));
  return got;
}

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
