// Nodes: what `reel node` runs and what a client connects to. A node actor spawns workers on
// request; published through CAF's middleman, its workers serve remote clients exactly as local
// ones serve this process.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/handles.hpp"
#include "actors/worker_pool.hpp"
#include "base/expected.hpp"

namespace reel::actors {

// The version string nodes report (NodeInfo::version); clients refuse other versions.
[[nodiscard]] const char* node_version();

// Spawns a node actor whose workers load models from `zoo` when a ModelSpec names none.
[[nodiscard]] node_actor spawn_node(caf::actor_system& system, std::string zoo);

// "HOST:PORT" -> (host, port). invalid_argument naming the text for anything else (no colon, a
// port outside 1..65535, an empty host).
[[nodiscard]] Expected<std::pair<std::string, uint16_t>> parse_address(const std::string& address);

// Publishes `node` on host:port (port 0: any free port). Returns the port bound. Errors
// (io_error) name the address.
[[nodiscard]] Expected<uint16_t> publish_node(caf::actor_system& system, const node_actor& node,
                                              const std::string& host, uint16_t port);

// Connects to the node published at "HOST:PORT" and checks its version. Errors name the address:
// invalid_argument for a malformed one, io_error when nothing answers there.
[[nodiscard]] Expected<node_actor> connect_node(caf::actor_system& system, const std::string& address);

// Asks `node` for `count` workers; they are named "<label>/worker<i>".
[[nodiscard]] Expected<std::vector<PoolMember>> request_workers(caf::actor_system& system, const node_actor& node,
                                                                const std::string& label, int count);

// Asks `node` for `count` PipeFusion stages (empty: `load` and `pf_plan` them next).
[[nodiscard]] Expected<std::vector<stage_actor>> request_stages(caf::actor_system& system, const node_actor& node,
                                                                const std::string& label, int count);

// Asks `node` to describe itself; also how to tell whether a node still answers. Errors: io_error
// when it does not answer within `timeout` (or is gone).
[[nodiscard]] Expected<NodeInfo> node_info(caf::actor_system& system, const node_actor& node,
                                           std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace reel::actors
