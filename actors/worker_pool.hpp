// A pool of worker actors, local or on remote nodes, seen by the denoising algorithms as one
// model: it hands out model calls (FIFO windows, clip windows, standard steps, CFG halves) to
// whichever worker is free, gathers the outputs in order, and notices a worker that dies
// (CAF down messages: a killed node process, a lost connection) and re-runs what it held on the
// workers that are left.
//
// Results do not depend on which worker runs a call: every worker holds the same weights (load
// checks the checksums) and a call is one model evaluation on its own, so a pool of K workers
// with T threads each computes exactly what one worker with T threads computes.
//
// A pool is used from one thread (the job's): it owns a blocking CAF actor for its messages.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <torch/types.h>

#include "actors/handles.hpp"
#include "base/expected.hpp"
#include "pipeline/clips.hpp"
#include "pipeline/fifo.hpp"
#include "pipeline/sampler.hpp"

namespace reel::actors {

struct PoolMember {
  worker_actor handle;
  std::string name;  // how messages name it, e.g. "127.0.0.1:7701/worker0" or "local/worker1"
};

// One model call: x [B, C, F, H, W], sigma [B, F], and what to compute from the request.
struct PoolItem {
  torch::Tensor x;
  torch::Tensor sigma;
  CallKind kind = CallKind::guided;
};

struct PoolStats {
  int64_t calls = 0;           // model calls completed
  int64_t sent_bytes = 0;      // tensor bytes sent to workers (inputs and conditioning)
  int64_t received_bytes = 0;  // tensor bytes received (outputs)
  int64_t redispatched = 0;    // calls run again because their worker was lost
  std::vector<int64_t> per_worker;  // calls completed by each member
  double wait_seconds = 0.0;   // time run() spent waiting for outputs
};

class WorkerPool {
 public:
  // Monitors every member. `timeout` bounds the wait for any one output (zero: no bound).
  WorkerPool(caf::actor_system& system, std::vector<PoolMember> members,
             std::chrono::milliseconds timeout = std::chrono::milliseconds{0});
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Loads the model on every member, in parallel. Errors name the member: its load error, or
  // unsupported when members report different weights.
  [[nodiscard]] Expected<std::vector<WorkerInfo>> load(const ModelSpec& spec);
  // Sends request `id`'s conditioning to every live member.
  [[nodiscard]] Status condition(uint64_t id, const pipeline::Conditioning& cond, double guidance);
  // Runs the calls of request `id`, each on whichever live worker is free, and returns their
  // outputs in order. A worker lost meanwhile is dropped from the pool and its call re-run
  // elsewhere. Errors: a worker's error (internal, naming it), every worker lost (internal,
  // naming them), the timeout (internal).
  [[nodiscard]] Expected<std::vector<torch::Tensor>> run(uint64_t id, const std::vector<PoolItem>& items);
  // Forgets request `id` on every live member.
  void drop(uint64_t id);

  [[nodiscard]] size_t size() const;   // members
  [[nodiscard]] size_t alive() const;  // members not lost
  [[nodiscard]] const std::vector<PoolMember>& members() const;
  [[nodiscard]] const PoolStats& stats() const;
  // "name: reason" for every member lost so far, in the order they were noticed.
  [[nodiscard]] std::vector<std::string> lost() const;
  // Called when a member is noticed lost (name, reason).
  void on_lost(std::function<void(const std::string&, const std::string&)> callback);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The Denoiser over a pool for standard sampling: guidance runs on the workers. Call it with
// conditioning WITHOUT a negative (guidance already happens remotely): each denoise() is one
// guided call, or, with cfg_parallel, the conditional and unconditional halves as two calls on
// two workers at once, combined here as uncond + g (cond - uncond).
class PoolDenoiser : public pipeline::Denoiser {
 public:
  PoolDenoiser(WorkerPool& pool, uint64_t id, models::Prediction prediction, bool cfg_parallel,
               double guidance);
  [[nodiscard]] Expected<torch::Tensor> denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                                const torch::Tensor& text) override;
  [[nodiscard]] models::Prediction prediction() const override { return prediction_; }

 private:
  WorkerPool& pool_;
  uint64_t id_;
  models::Prediction prediction_;
  bool cfg_parallel_;
  double guidance_;
};

// FIFO windows over a pool: one guided call per window, windows of a pass spread over workers.
class PoolWindowRunner : public pipeline::WindowRunner {
 public:
  PoolWindowRunner(WorkerPool& pool, uint64_t id, models::Prediction prediction)
      : pool_(pool), id_(id), prediction_(prediction) {}
  [[nodiscard]] Expected<std::vector<torch::Tensor>> run(
      const std::vector<pipeline::FifoWindow>& windows) override;
  [[nodiscard]] models::Prediction prediction() const override { return prediction_; }

 private:
  WorkerPool& pool_;
  uint64_t id_;
  models::Prediction prediction_;
};

// Clip windows over a pool: one guided call per clip, the clips of a step spread over workers.
class PoolClipRunner : public pipeline::ClipRunner {
 public:
  PoolClipRunner(WorkerPool& pool, uint64_t id, models::Prediction prediction)
      : pool_(pool), id_(id), prediction_(prediction) {}
  [[nodiscard]] Expected<std::vector<torch::Tensor>> run(
      const std::vector<pipeline::ClipWindow>& windows) override;
  [[nodiscard]] models::Prediction prediction() const override { return prediction_; }

 private:
  WorkerPool& pool_;
  uint64_t id_;
  models::Prediction prediction_;
};

// Standard sampling over a pool (pipeline::sample with a PoolDenoiser): sends the conditioning,
// samples, drops the request. cfg_parallel needs guidance and at least two live workers to
// help (with one it runs both halves there, one after the other).
[[nodiscard]] Expected<pipeline::SampleResult> sample_on_pool(
    WorkerPool& pool, uint64_t id, models::Prediction prediction, const pipeline::Conditioning& cond,
    std::vector<int64_t> latent_shape, const pipeline::SampleOptions& options, bool cfg_parallel,
    pipeline::StepCallback on_step = {});

}  // namespace reel::actors
