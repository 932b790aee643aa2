// The typed interfaces of reel's actors (CAF 0.17 typed_actor). A handle works the same whether
// the actor runs in this process or on a remote node: every payload type is in messages.hpp.
#pragma once

#include <cstdint>
#include <string>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/messages.hpp"
#include "actors/stage.hpp"

namespace reel::actors {

// A worker holds a whole model (the DiT) and runs model calls: the windows of a FIFO pass, the
// clips of a clip-parallel step, a standard step, or one half of classifier-free guidance.
//  - load: loads ModelSpec on the worker's node (error: model missing or unreadable there);
//  - cond: stores request `id`'s text and negative embeddings ([B, L, D]; negative may be empty)
//    and guidance scale; replies with the id;
//  - run: one model call for request `id`: item number (echoed), CallKind, x [B, C, F, H, W],
//    sigma [B, F]. Replies (also to a plain send) with result_atom, the item number, the output
//    shaped like x and an error message that is empty on success;
//  - drop: forgets request `id`.
// A worker runs in a detached actor (its own thread): model calls never block the scheduler.
using worker_actor = caf::typed_actor<
    caf::replies_to<load_atom, ModelSpec>::with<WorkerInfo>,
    caf::replies_to<cond_atom, uint64_t, WireTensor, WireTensor, double>::with<uint64_t>,
    caf::replies_to<run_atom, uint64_t, uint64_t, int32_t, WireTensor, WireTensor>::with<
        result_atom, uint64_t, WireTensor, std::string>,
    caf::reacts_to<drop_atom, uint64_t>>;

// A node (reel node, or the in-process one): spawns workers and PipeFusion stages (stage.hpp)
// on request and describes itself.
// sink checks a tensor's checksums and replies with its size in bytes: what the data plane's
// throughput is measured with.
using node_actor = caf::typed_actor<caf::replies_to<worker_atom>::with<worker_actor>,
                                    caf::replies_to<stage_atom>::with<stage_actor>,
                                    caf::replies_to<info_atom>::with<NodeInfo>,
                                    caf::replies_to<sink_atom, WireTensor>::with<uint64_t>>;

}  // namespace reel::actors
