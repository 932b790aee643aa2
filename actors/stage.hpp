// The stage actor of PipeFusion (pipeline/pipefusion.hpp): one slice of the DiT's blocks in a
// detached actor of its own, one link of a ring of stages.
//
// A run (actors/pipefusion_actors.hpp drives it): every stage gets the plan and its successor
// (the last stage's successor is stage 0), then the request's conditioning; the last stage gets
// the initial noise and sends it round to stage 0. From then on the stages talk only to each
// other: stage i sends the residual tokens of each patch to stage i + 1 as soon as it has them
// and goes on with the next patch; the last stage computes the patch's model output, guidance
// and solver step and sends the updated latent patch back to stage 0. Sends never block and a
// stage's mailbox always takes messages, so a patch travels while its sender works on the next
// one. The last stage reports each finished step and the final latent to the driver; any stage
// reports its errors there.
//
// Everything a stage needs is in its messages (request, step, patch, sigma) and its plan, so the
// ring works the same across processes: tensors travel as exact float32 WireTensors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/messages.hpp"
#include "models/dit.hpp"
#include "models/scheduler.hpp"

namespace reel::actors {

// Atoms of the PipeFusion ring (CAF 0.17: at most 10 characters).
using pf_plan_atom = caf::atom_constant<caf::atom("pf_plan")>;      // take a plan and a successor
using pf_begin_atom = caf::atom_constant<caf::atom("pf_begin")>;    // a request's conditioning
using pf_start_atom = caf::atom_constant<caf::atom("pf_start")>;    // last stage: the initial noise
using pf_tokens_atom = caf::atom_constant<caf::atom("pf_tokens")>;  // ring: stage i -> i + 1
using pf_latent_atom = caf::atom_constant<caf::atom("pf_latent")>;  // ring: last stage -> stage 0
using pf_step_atom = caf::atom_constant<caf::atom("pf_step")>;      // to the driver: a step is done
using pf_done_atom = caf::atom_constant<caf::atom("pf_done")>;      // to the driver: the final latent
using pf_fail_atom = caf::atom_constant<caf::atom("pf_fail")>;      // to the driver: a stage's error
using pf_report_atom = caf::atom_constant<caf::atom("pf_report")>;  // a stage's measurements

// What one stage of a plan is: its index and the plan's layout inputs. The stage derives its
// blocks and the patches from these and its own model's config (pipeline::make_layout), exactly
// as the one-thread simulation does.
struct StagePlan {
  int32_t stage = 0;    // this stage's index, 0..stages-1
  int32_t stages = 2;   // N
  int32_t patches = 4;  // M
  int32_t split = 0;    // pipeline::PatchSplit as an integer
  int32_t warmup_steps = 1;  // W
  std::vector<int64_t> latent_shape;  // [B, C, F, H, W]
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StagePlan& x) {
  return f(caf::meta::type_name("reel.StagePlan"), x.stage, x.stages, x.patches, x.split, x.warmup_steps,
           x.latent_shape);
}

// What a stage holds after pf_plan (or load: blocks stay 0..0 until a plan).
struct StageInfo {
  std::string model;      // the model's name ("" for a model handed over in process)
  std::string host;       // hostname of the node
  int32_t pid = 0;        // process id on that host
  int32_t threads = 0;    // LibTorch threads the stage computes with
  int32_t prediction = 0; // models::Prediction of the model's output
  int32_t stage = 0;
  int64_t first_block = 0, last_block = 0;  // blocks [first, last) of this stage
  int64_t dim = 0;                     // the model's width D (tokens are [rows, S_p, D])
  std::vector<int64_t> patch_tokens;   // tokens of each patch of the plan, in order
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageInfo& x) {
  return f(caf::meta::type_name("reel.StageInfo"), x.model, x.host, x.pid, x.threads, x.prediction, x.stage,
           x.first_block, x.last_block, x.dim, x.patch_tokens);
}

// One request's conditioning and sampling options, sent to every stage before it starts.
struct StageRequest {
  uint64_t id = 0;
  WireTensor text;         // [rows, L, text_dim]: conditional rows first, then unconditional
  bool guided = false;     // rows = 2B: classifier-free guidance combines the halves
  int32_t steps = 0;       // solver steps
  double shift = 0.0;      // sigma shift
  int32_t solver = 0;      // models::SolverKind as an integer
  double guidance = 1.0;   // guidance scale
  int32_t prediction = 0;  // models::Prediction as an integer
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageRequest& x) {
  return f(caf::meta::type_name("reel.StageRequest"), x.id, x.text, x.guided, x.steps, x.shift, x.solver,
           x.guidance, x.prediction);
}

// What a stage measured during a request (pf_report), for statistics and for explaining speed.
struct StageReport {
  int32_t stage = 0;
  int64_t runs = 0;  // run_blocks calls
  // Per step: payload bytes of the tensors this stage sent on (to its successor; the last
  // stage's are the updated latent patches, the final step's to the driver), and the same
  // messages' whole WireTensor bytes (the header included).
  std::vector<int64_t> payload_bytes;
  std::vector<int64_t> wire_bytes;
  int64_t request_bytes = 0;   // payload bytes of the request's text embedding it received
  int64_t stale_kv_bytes = 0;  // its K/V buffers
  double compute_seconds = 0;  // in LibTorch: embedding, blocks, output, solver
  double wire_seconds = 0;     // tensors to and from WireTensor bytes
  double span_seconds = 0;     // from the request's first ring message to its last work
  // CPU time the stage's thread got while handling ring messages (compute and wire): less than
  // their wall time when the machine gave the thread's core to other work meanwhile.
  double cpu_seconds = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageReport& x) {
  return f(caf::meta::type_name("reel.StageReport"), x.stage, x.runs, x.payload_bytes, x.wire_bytes,
           x.request_bytes, x.stale_kv_bytes, x.compute_seconds, x.wire_seconds, x.span_seconds,
           x.cpu_seconds);
}

// The messages one stage sends the next, all asynchronous (no replies):
//  - pf_tokens: request, step, patch (pipeline::kFullSequence in a synchronous step), sigma of
//    the step, the residual tokens [rows, S_p, D] after the sender's blocks;
//  - pf_latent: request, step the latent is now at, patch (kFullSequence: the whole latent, as
//    at the start and after a synchronous step), sigma of that step, the latent [B, C, ...].
using stage_ring = caf::typed_actor<
    caf::reacts_to<pf_tokens_atom, uint64_t, int32_t, int32_t, double, WireTensor>,
    caf::reacts_to<pf_latent_atom, uint64_t, int32_t, int32_t, double, WireTensor>>;

// A stage: the ring's messages plus what the driver asks.
//  - load: loads ModelSpec on the stage's node (error: missing or unreadable model, threads < 1);
//  - pf_plan: becomes stage plan.stage of the plan, sending on to `successor`; builds the
//    layout from its model (error: a plan the model cannot run, no model loaded);
//  - pf_begin: starts request `id` with the driver `driver` (who gets pf_step, pf_done and
//    pf_fail messages): embeds the text, cross-attention K/V once, resets the stale K/V
//    buffers; the last stage also makes the per-patch solver states. Replies with the id
//    (error: text that does not fit the model, bad options, no plan);
//  - pf_start: last stage only: the initial noise [B, C, F, H, W]; it keeps the latent for the
//    solver and sends it round to stage 0. Replies with the id;
//  - pf_report: the stage's measurements for request `id`.
// Messages to the driver (a plain caf::actor): (pf_step, id, steps done, steps) after each
// step, (pf_done, id, WireTensor latent), (pf_fail, id, stage, message).
using stage_actor = stage_ring::extend<
    caf::replies_to<load_atom, ModelSpec>::with<StageInfo>,
    caf::replies_to<pf_plan_atom, StagePlan, stage_ring>::with<StageInfo>,
    caf::replies_to<pf_begin_atom, StageRequest, caf::actor>::with<uint64_t>,
    caf::replies_to<pf_start_atom, uint64_t, WireTensor>::with<uint64_t>,
    caf::replies_to<pf_report_atom, uint64_t>::with<StageReport>>;

// Spawns a detached stage with no model: `load` one first. `default_zoo` is used when a
// ModelSpec names no zoo.
[[nodiscard]] stage_actor spawn_stage(caf::actor_system& system, std::string default_zoo);

// Spawns a detached stage that already holds `dit` (shared, not copied: stages in one process
// only read its parameters) with output `prediction`, computing on `threads` LibTorch threads
// (>= 1). For stages in this process, e.g. a model not in any zoo; `load` still replaces it.
[[nodiscard]] stage_actor spawn_stage(caf::actor_system& system, models::VideoDiT dit,
                                      models::Prediction prediction, int threads = 1);

// Registers the stage actor's payload types and handles (called by configure()).
void add_stage_types(caf::actor_system_config& cfg);

}  // namespace reel::actors
