#include "actors/messages.hpp"

#include <caf/io/middleman.hpp>

#include "actors/cache_actor.hpp"
#include "actors/handles.hpp"
#include "actors/coordinator.hpp"
#include "actors/stage.hpp"

namespace reel::actors {

void configure(caf::actor_system_config& cfg) {
  cfg.load<caf::io::middleman>();
  // Work sharing: scheduler threads sleep when there is nothing to route. The default work
  // stealing polls, which costs an idle node, and a running job, a few percent of a core each.
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.add_message_type<WireTensor>("reel.WireTensor");
  cfg.add_message_type<ModelSpec>("reel.ModelSpec");
  cfg.add_message_type<WorkerInfo>("reel.WorkerInfo");
  cfg.add_message_type<NodeInfo>("reel.NodeInfo");
  cfg.add_message_type<worker_actor>("reel.worker_actor");
  cfg.add_message_type<node_actor>("reel.node_actor");
  add_stage_types(cfg);
  add_job_types(cfg);
  add_cache_types(cfg);
}

}  // namespace reel::actors
