// PipeFusion on concurrent stage actors (actors/stage.hpp): the same schedule and the same
// numbers as the one-thread simulation pipeline::sample_pipefusion, with the stages working at
// once. Stage i sends each patch's tokens straight to stage i + 1 and goes on with the next
// patch; the last stage sends updated latent patches back to stage 0 (a ring). The calling
// thread only starts the request and waits for the final latent.
//
// Exactness: every stage sees the patches in the simulation's order (step by step, patch by
// patch; CAF keeps the order of messages between two actors), tensors cross as exact float32,
// and the last stage steps one solver state per patch as the simulation does. With the same
// LibTorch thread count the result equals sample_pipefusion's bit for bit (tested).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <torch/types.h>

#include "actors/stage.hpp"
#include "base/expected.hpp"
#include "pipeline/pipefusion.hpp"
#include "pipeline/sampler.hpp"

namespace reel::actors {

// What only concurrent stages show: where each stage's time went.
struct PipeFusionTiming {
  std::vector<StageInfo> stages;    // as each stage described itself for the plan
  std::vector<StageReport> reports;  // per stage, in order
  // Per stage, per step: whole WireTensor bytes sent on (headers included), [N][steps].
  std::vector<std::vector<int64_t>> wire_bytes;
  double setup_seconds = 0;  // plan and conditioning on every stage, before the noise is sent
  double ring_seconds = 0;   // from sending the noise to receiving the final latent
};

struct PipeFusionActorOptions {
  // How errors name the stages, one per stage; default "stage <i>".
  std::vector<std::string> names;
  // Bound on the wait for any one message from the stages (a step, the result); 0 = none, in
  // which case a stage that stops answering without going down is waited for. Default 0.
  std::chrono::milliseconds timeout{0};
  // Called in the calling thread after each step the last stage finished.
  pipeline::StepCallback on_step;
  // Asked in the calling thread after each finished step: an error ends the run with that
  // error (e.g. Errc::cancelled); the stages are left mid-request (stop them). Default none.
  std::function<std::optional<Error>()> stop;
  PipeFusionTiming* timing = nullptr;  // may be null
};

// Loads `spec` on every stage, one after the other (a builtin random model seeds LibTorch's
// global generator while it is made: two at once in one process would mix their draws).
// Errors name the stage that could not load (internal).
[[nodiscard]] Expected<std::vector<StageInfo>> load_stages(caf::actor_system& system,
                                                           const std::vector<stage_actor>& stages,
                                                           const ModelSpec& spec);

// Samples like pipeline::sample_pipefusion with the plan's N = stages.size() stage actors,
// which must hold the same model (loaded, or spawned with it). `stats` (may be null) gets what
// the simulation reports, the boundary and ring bytes measured from the WireTensors the stages
// actually sent (payload bytes, read from each message's header; PipeFusionTiming has the whole
// messages), the analytic values computed as the simulation does.
// Errors: invalid_argument for a bad plan (from the stages, which know the model), shape,
// options or conditioning, or a stage whose model predicts something else than `prediction`;
// internal, naming the stage, when a stage reports an error or goes down (a killed actor, a
// lost node), and when the timeout passes.
[[nodiscard]] Expected<pipeline::SampleResult> sample_pipefusion_actors(
    caf::actor_system& system, std::vector<stage_actor> stages, models::Prediction prediction,
    const pipeline::Conditioning& cond, std::vector<int64_t> latent_shape, const pipeline::SampleOptions& options,
    const pipeline::PipeFusionPlan& plan, pipeline::PipeFusionStats* stats = nullptr,
    const PipeFusionActorOptions& run = {});

}  // namespace reel::actors
