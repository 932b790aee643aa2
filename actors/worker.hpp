// The worker actor (handles.hpp: worker_actor): a whole model in a detached actor of its own,
// running model calls for FIFO windows, clip windows, standard steps and CFG halves.
#pragma once

#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/handles.hpp"

namespace reel::models {
class VideoDiT;
}  // namespace reel::models

namespace reel::actors {

// Spawns a detached worker. `default_zoo` is used when a ModelSpec names no zoo.
[[nodiscard]] worker_actor spawn_worker(caf::actor_system& system, std::string default_zoo);

// The checksum a worker reports in WorkerInfo::weights: the DiT's parameter names, shapes and
// float32 values in registration order.
[[nodiscard]] uint64_t dit_checksum(models::VideoDiT& dit);

// dit_checksum of `model` (zoo name or path), opened for it. 0 when it cannot be opened.
[[nodiscard]] uint64_t weights_checksum_of(const std::string& model, const std::string& zoo);

}  // namespace reel::actors
