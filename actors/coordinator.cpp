#include "actors/coordinator.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include <ATen/Parallel.h>
#include <caf/all.hpp>
#include <torch/torch.h>

#include "actors/cache_job.hpp"
#include "actors/node.hpp"
#include "actors/pipefusion_actors.hpp"
#include "actors/worker.hpp"
#include "jobs/checkpoint.hpp"
#include "models/zoo.hpp"
#include "pipeline/clips.hpp"
#include "pipeline/fifo.hpp"
#include "pipeline/guidance.hpp"
#include "pipeline/pipefusion.hpp"
#include "pipeline/sampler.hpp"

namespace reel::actors {

namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

// How often the progress of a running job is written to the job store.
constexpr std::chrono::seconds kProgressWriteInterval{1};

// Between the coordinator and its runner only (never remote).
using job_run_atom = caf::atom_constant<caf::atom("jobrun")>;
using job_stop_atom = caf::atom_constant<caf::atom("jobstop")>;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// What the coordinator tells the runner without a message: a runner in the middle of a job
// reads its mailbox only between jobs, so cancellation and shutdown are flags it checks
// between steps.
struct RunnerControl {
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::set<uint64_t> cancelled;

  void cancel(uint64_t id) {
    std::lock_guard lock(mutex);
    cancelled.insert(id);
  }
  bool is_cancelled(uint64_t id) {
    std::lock_guard lock(mutex);
    return cancelled.count(id) > 0;
  }
  void forget(uint64_t id) {
    std::lock_guard lock(mutex);
    cancelled.erase(id);
  }
};

// ---- stopping between steps ------------------------------------------------------------------
// The algorithms call their model once per step (standard, clips) or pass (fifo); these wrappers
// refuse the next call once the job is to stop, so a job ends between two steps with
// Errc::cancelled.

using StopCheck = std::function<std::optional<Error>()>;

class StoppableDenoiser : public pipeline::Denoiser {
 public:
  StoppableDenoiser(pipeline::Denoiser& inner, StopCheck stop) : inner_(inner), stop_(std::move(stop)) {}
  Expected<torch::Tensor> denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                  const torch::Tensor& text) override {
    if (auto e = stop_()) return *e;
    return inner_.denoise(x, sigma, text);
  }
  models::Prediction prediction() const override { return inner_.prediction(); }

 private:
  pipeline::Denoiser& inner_;
  StopCheck stop_;
};

class StoppableWindowRunner : public pipeline::WindowRunner {
 public:
  StoppableWindowRunner(pipeline::WindowRunner& inner, StopCheck stop) : inner_(inner), stop_(std::move(stop)) {}
  Expected<std::vector<torch::Tensor>> run(const std::vector<pipeline::FifoWindow>& windows) override {
    if (auto e = stop_()) return *e;
    return inner_.run(windows);
  }
  models::Prediction prediction() const override { return inner_.prediction(); }

 private:
  pipeline::WindowRunner& inner_;
  StopCheck stop_;
};

class StoppableClipRunner : public pipeline::ClipRunner {
 public:
  StoppableClipRunner(pipeline::ClipRunner& inner, StopCheck stop) : inner_(inner), stop_(std::move(stop)) {}
  Expected<std::vector<torch::Tensor>> run(const std::vector<pipeline::ClipWindow>& windows) override {
    if (auto e = stop_()) return *e;
    return inner_.run(windows);
  }
  models::Prediction prediction() const override { return inner_.prediction(); }

 private:
  pipeline::ClipRunner& inner_;
  StopCheck stop_;
};

// ---- the job's settings ----------------------------------------------------------------------

std::vector<int64_t> latent_shape(const JobSpec& s, const models::T2VModel& m, int64_t frames) {
  return {1, m.dit->config().in_channels, frames, s.height / m.spatial_compression, s.width / m.spatial_compression};
}

}  // namespace

Expected<JobSpec> resolve_job(JobSpec s, const models::T2VModel& m) {
  auto bad = [](const std::string& what) { return make_error(Errc::invalid_argument, what); };
  const bool steps_given = s.steps != 0;
  if (s.frames == 0) s.frames = m.defaults.frames;
  if (s.width == 0 && s.height == 0) {
    s.width = m.defaults.width;
    s.height = m.defaults.height;
  }
  if (s.steps == 0) s.steps = m.defaults.steps;
  if (s.guidance < 0) s.guidance = m.defaults.guidance;
  if (s.shift <= 0) s.shift = m.defaults.shift;
  if (s.solver.empty()) s.solver = models::solver_kind_name(m.defaults.solver);
  if (s.fps == 0) s.fps = m.defaults.fps;

  if (s.prompt.find_first_not_of(" \t\n\r") == std::string::npos) return bad("the prompt is empty");
  if (s.out.empty()) return bad("the job has no output path");
  if (s.frames <= 0) return bad("frames must be positive, got " + std::to_string(s.frames));
  if (s.width <= 0 || s.height <= 0) return bad("size " + std::to_string(s.width) + "x" + std::to_string(s.height) + " is not positive");
  if (s.steps <= 0) return bad("steps must be positive, got " + std::to_string(s.steps));
  if (s.fps <= 0) return bad("fps must be positive, got " + std::to_string(s.fps));
  if (!std::isfinite(s.guidance)) return bad("guidance must be a number >= 0");
  if (!std::isfinite(s.shift)) return bad("shift must be a number > 0");
  if (auto solver = models::parse_solver_kind(s.solver); !solver) return bad("solver: " + solver.error().message);
  if (s.cfg_parallel && s.mode != JobMode::standard) return bad("cfg_parallel works in standard mode only");
  if (s.mode == JobMode::pipefusion) {
    if (s.stages < 1) return bad("stages must be at least 1, got " + std::to_string(s.stages));
    if (s.patches < 1) return bad("patches must be at least 1, got " + std::to_string(s.patches));
    if (s.warmup_steps < 0) return bad("warm-up steps must be >= 0, got " + std::to_string(s.warmup_steps));
    if (s.warmup_steps > s.steps)
      return bad("warm-up steps (" + std::to_string(s.warmup_steps) + ") are more than the steps (" +
                 std::to_string(s.steps) + ")");
    if (auto split = pipeline::parse_patch_split(s.split); !split) return bad(split.error().message);
  }
  const auto& c = m.dit->config();
  const int cell_w = static_cast<int>(c.patch[2]) * m.spatial_compression;
  const int cell_h = static_cast<int>(c.patch[1]) * m.spatial_compression;
  if (s.width % cell_w != 0 || s.height % cell_h != 0)
    return bad("size " + std::to_string(s.width) + "x" + std::to_string(s.height) + " must be a multiple of " +
               std::to_string(cell_w) + "x" + std::to_string(cell_h) + " for model '" + m.name + "'");
  if (s.frames % c.patch[0] != 0) return bad("frames must be a multiple of " + std::to_string(c.patch[0]));
  if (s.mode == JobMode::fifo) {
    const int window = m.defaults.frames;
    if (s.partitions < 1) return bad("partitions must be at least 1");
    const int queue = window * s.partitions;
    if (s.frames < window)
      return bad("frames " + std::to_string(s.frames) + " is smaller than the model's window of " +
                 std::to_string(window) + " frames; use standard mode");
    if (s.lookahead && window % 2 != 0) return bad("lookahead needs an even window");
    if (s.steps % queue != 0) {
      if (steps_given)
        return bad("steps " + std::to_string(s.steps) + " must be a multiple of the FIFO queue length " +
                   std::to_string(queue));
      s.steps = (s.steps + queue - 1) / queue * queue;  // the model's default, rounded up to fit
    }
  }
  if (s.mode == JobMode::pipefusion) {
    pipeline::PipeFusionPlan plan;
    plan.stages = s.stages;
    plan.patches = s.patches;
    plan.warmup_steps = s.warmup_steps;
    plan.split = *pipeline::parse_patch_split(s.split);
    if (auto layout = pipeline::make_layout(plan, c, latent_shape(s, m, s.frames)); !layout)
      return bad(layout.error().message);
  }
  return s;
}

namespace {


// ---- the runner ------------------------------------------------------------------------------

// The encoder of one job; a job that does not reach finish() aborts it, so no file is left.
class EncoderSession {
 public:
  EncoderSession(caf::blocking_actor* self, encoder_actor encoder) : self_(self), encoder_(std::move(encoder)) {}
  EncoderSession(const EncoderSession&) = delete;
  EncoderSession& operator=(const EncoderSession&) = delete;
  // Waits for the abort's reply, so that the .part is gone before the job is reported ended.
  ~EncoderSession() {
    if (finished_) return;
    self_->request(encoder_, std::chrono::seconds(30), encode_abort_atom::value)
        .receive([](int64_t) {}, [](caf::error&) {});  // an encoder already gone took its file with it
  }

  Status open(const EncodeSpec& spec) {
    Status result;
    self_->request(encoder_, caf::infinite, encode_open_atom::value, spec)
        .receive([](std::string&) {}, [&](caf::error& e) { result = from_caf_error(e); });
    return result;
  }
  // Waits for each frame's reply: the encoder keeps pace with the model, and an encoding error
  // stops the job at the frame that caused it.
  Status frame(WireFrame frame) {
    Status result;
    self_->request(encoder_, caf::infinite, encode_frame_atom::value, std::move(frame))
        .receive([&](int64_t n) { frames_ = n; }, [&](caf::error& e) { result = from_caf_error(e); });
    return result;
  }
  Status finish() {
    Status result;
    self_->request(encoder_, caf::infinite, encode_finish_atom::value)
        .receive([&](int64_t n) { frames_ = n; finished_ = true; }, [&](caf::error& e) { result = from_caf_error(e); });
    return result;
  }
  [[nodiscard]] int64_t frames() const { return frames_; }

 private:
  caf::blocking_actor* self_;
  encoder_actor encoder_;
  int64_t frames_ = 0;
  bool finished_ = false;
};

class JobRunner {
 public:
  JobRunner(caf::blocking_actor* self, caf::actor_addr coordinator, std::vector<PoolMember> workers,
            CoordinatorOptions options, std::shared_ptr<RunnerControl> control)
      : self_(self),
        coordinator_(std::move(coordinator)),
        pool_(self->system(), std::move(workers), options.worker_timeout),
        options_(std::move(options)),
        control_(std::move(control)),
        stage_hosts_(options_.stage_hosts) {}

  void run(JobRecord job) {
    if (control_->stop) return;  // left as recorded: the next coordinator runs it
    if (control_->is_cancelled(job.id)) {  // cancelled while queued: already recorded
      control_->forget(job.id);
      return;
    }
    const auto t0 = Clock::now();
    job.state = JobState::running;
    job.done = job.total = 0;
    job.result.clear();
    job.error.clear();
    job.stats = {};
    report(job);
    const PoolStats before = pool_.stats();
    auto st = execute(job);
    if (!st && control_->stop) return;  // interrupted by shutdown: stays running on disk (and its checkpoint)
    const bool kept = st && job.spec.mode == JobMode::fifo && options_.keep_fifo_ends;  // for an extension
    if (auto ckpt = checkpoint_folder(job.id); !ckpt.empty() && !kept) {  // ended: nothing to resume
      std::error_code ec;
      fs::remove_all(ckpt, ec);
    }
    const PoolStats& after = pool_.stats();
    job.stats.model_calls = after.calls - before.calls;
    job.stats.sent_bytes = after.sent_bytes - before.sent_bytes;
    job.stats.received_bytes = after.received_bytes - before.received_bytes;
    job.stats.redispatched = after.redispatched - before.redispatched;
    job.stats.workers = static_cast<int32_t>(pool_.alive());
    job.stats.seconds = seconds_since(t0);
    if (st) {
      job.state = JobState::done;
      job.result = job.spec.out;
    } else if (st.error().code == Errc::cancelled && control_->is_cancelled(job.id)) {
      job.state = JobState::cancelled;
      job.error = "cancelled";
    } else {
      job.state = JobState::failed;
      job.error = st.error().message;
    }
    report(job);
    control_->forget(job.id);
  }

 private:
  void report(const JobRecord& job) {
    auto coordinator = caf::actor_cast<coordinator_actor>(coordinator_);
    if (coordinator) self_->send(coordinator, job_update_atom::value, job);
  }

  std::optional<Error> stop_check(uint64_t id) {
    if (control_->stop) return make_error(Errc::cancelled, "the coordinator is shutting down");
    if (control_->is_cancelled(id)) return make_error(Errc::cancelled, "job " + std::to_string(id) + " was cancelled");
    return std::nullopt;
  }

  // The job's model on this side (text encoder, decoder), kept while jobs use the same one, and
  // the workers loaded with it. The workers' DiT must be the one this side's text encoder
  // conditions (the same file, not just the same name): its checksum is compared with this
  // side's, computed once per model.
  Expected<const models::T2VModel*> prepare_model(const std::string& name, bool load_workers) {
    if (!model_ || model_name_ != name) {
      model_.reset();
      auto m = models::open_model(name, options_.zoo);
      if (!m) return m.error();
      m->dit->eval();
      model_.emplace(std::move(*m));
      model_name_ = name;
      weights_ = dit_checksum(model_->dit);  // the DiT in hand: the file is not opened again
      // What cache keys carry: the same checksum `reel generate --cache` uses.
      auto file = weights_file_checksum(model_->source);
      weights_file_ = file ? *file : std::string("unreadable:") + model_->source;
    }
    if (!load_workers) return &*model_;
    auto infos = pool_.load(ModelSpec{name, "", options_.worker_threads});
    if (!infos) return infos.error();
    for (size_t i = 0; i < infos->size(); ++i) {
      const auto& info = (*infos)[i];
      if (!info.model.empty() && info.weights != weights_) {
        return make_error(Errc::unsupported, "worker " + pool_.members()[i].name + " holds other weights for '" + name +
                                                 "' (" + info.source + " on " + info.host + ") than the coordinator (" +
                                                 model_->source + ")");
      }
    }
    return &*model_;
  }

  // Decodes latents [1, C, F, H, W] and sends the frames to the encoder, in order.
  // `keep` (FIFO with a checkpoint folder) gets each frame first, at model resolution.
  Status emit(EncoderSession& encoder, const models::T2VModel& model, uint64_t id, int64_t first_frame,
              const torch::Tensor& latent, const std::function<Status(const video::Frame&)>& keep = {}) {
    if (options_.on_latent) options_.on_latent(id, first_frame, latent);
    auto pixels = model.decoder->decode(latent);  // [1, F, H, W, 3] uint8
    if (!pixels) return pixels.error();
    try {
      const torch::Tensor p = (*pixels)[0].contiguous();
      if (p.dim() != 4 || p.size(3) != 3 || p.scalar_type() != torch::kUInt8)
        return make_error(Errc::internal, "the decoder returned frames of an unexpected shape or type");
      const size_t bytes = static_cast<size_t>(p.size(1) * p.size(2) * 3);
      for (int64_t f = 0; f < p.size(0); ++f) {
        WireFrame w;
        w.height = static_cast<int32_t>(p.size(1));
        w.width = static_cast<int32_t>(p.size(2));
        w.rgb.assign(reinterpret_cast<const char*>(p[f].data_ptr<uint8_t>()), bytes);
        if (keep) {
          const uint8_t* data = p[f].data_ptr<uint8_t>();
          REEL_RETURN_IF_ERROR(keep(video::Frame{w.width, w.height, std::vector<uint8_t>(data, data + bytes)}));
        }
        REEL_RETURN_IF_ERROR(encoder.frame(std::move(w)));
      }
    } catch (const std::exception& e) {
      return make_error(Errc::internal, std::string("converting decoded frames failed: ") + e.what());
    }
    return {};
  }

  // The job's checkpoint folder; "" when the coordinator keeps none.
  std::string checkpoint_folder(uint64_t id) const {
    if (options_.checkpoint_dir.empty()) return {};
    return (fs::path(options_.checkpoint_dir) / std::to_string(id)).string();
  }

  // The checkpoint folder of an extension: the final state and frames of the job it continues.
  Status start_extension(const std::string& ckpt, uint64_t source) {
    const std::string from = checkpoint_folder(source);
    if (!fs::exists(jobs::state_file(from)))
      return make_error(Errc::invalid_argument, "job " + std::to_string(source) +
                                                    " left no end state to continue (only completed FIFO videos can be extended)");
    REEL_RETURN_IF_ERROR(fresh_folder(ckpt));
    std::error_code ec;
    fs::copy_file(jobs::frames_file(from), jobs::frames_file(ckpt), ec);
    if (!ec) fs::copy_file(jobs::state_file(from), jobs::state_file(ckpt), ec);
    if (ec) return make_error(Errc::io_error, "cannot copy the end state of job " + std::to_string(source) + ": " + ec.message());
    return {};
  }

  // An empty checkpoint folder for a job that starts from its beginning ("": none kept).
  static Status fresh_folder(const std::string& ckpt) {
    if (ckpt.empty()) return {};
    std::error_code ec;
    fs::remove_all(ckpt, ec);
    fs::create_directories(ckpt, ec);
    if (ec) return make_error(Errc::io_error, "cannot create the checkpoint folder '" + ckpt + "': " + ec.message());
    return {};
  }

  // The clips of a clips job that had run before, at the step of its checkpoint; none when there
  // is no usable checkpoint (the job then starts over: nothing has been written yet).
  std::optional<pipeline::VideoClips> resume_clips(const std::string& ckpt, const pipeline::ClipsOptions& co,
                                                   std::vector<int64_t> shape, JobRecord& job) {
    if (ckpt.empty() || !fs::exists(jobs::state_file(ckpt))) return std::nullopt;
    shape[2] /= std::max(1, co.clips);  // each clip's latent
    auto state = jobs::load_clips_state(ckpt, co, shape);
    std::optional<Error> problem;
    if (state) {
      auto clips = pipeline::VideoClips::from_state(std::move(*state));
      if (clips) {
        job.stats.resumed_steps = clips->step_index();
        job.done = clips->step_index();
        report(job);
        return std::move(*clips);
      }
      problem = clips.error();
    } else {
      problem = state.error();
    }
    warn("job " + std::to_string(job.id) + ": its checkpoint cannot be used, starting over: " + problem->message);
    return std::nullopt;
  }

  // The queue of a FIFO job that had run before, with the frames it had made sent to the
  // encoder again; none when there is no usable checkpoint (the job then starts over).
  // Once frames have gone to the encoder there is no going back: a failure then is the job's.
  Expected<std::optional<pipeline::FifoQueue>> resume_fifo(const std::string& ckpt, const pipeline::FifoOptions& fo,
                                                           JobRecord& job, EncoderSession& encoder) {
    if (ckpt.empty() || !fs::exists(jobs::state_file(ckpt))) return std::optional<pipeline::FifoQueue>{};
    const std::string who = "job " + std::to_string(job.id) + ": ";
    auto state = jobs::load_fifo_state(ckpt, fo);
    if (!state) {
      warn(who + "its checkpoint cannot be used, starting over: " + state.error().message);
      return std::optional<pipeline::FifoQueue>{};
    }
    auto queue = pipeline::FifoQueue::from_state(std::move(*state));
    if (!queue) {
      warn(who + "its checkpoint cannot be used, starting over: " + queue.error().message);
      return std::optional<pipeline::FifoQueue>{};
    }
    const int64_t made = std::max<int64_t>(0, queue->head_frame());
    auto frames = jobs::read_job_frames(ckpt, made, job.spec.width, job.spec.height);
    if (!frames) {
      warn(who + "its checkpoint's frames cannot be read, starting over: " + frames.error().message);
      return std::optional<pipeline::FifoQueue>{};
    }
    for (auto& f : *frames) {
      // frames.rgb was cut to these; they are kept again as they go out.
      REEL_RETURN_IF_ERROR(jobs::append_job_frame(ckpt, f));
      REEL_RETURN_IF_ERROR(encoder.frame(to_wire_frame(f)));
    }
    job.stats.resumed_frames = made;
    job.done = made;
    report(job);
    return std::optional<pipeline::FifoQueue>(std::move(*queue));
  }

  Status execute(JobRecord& job) {
    // PipeFusion jobs run on stage actors of their own, not on the pool's workers.
    auto model_or = prepare_model(job.spec.model, job.spec.mode != JobMode::pipefusion);
    if (!model_or) return model_or.error();
    const models::T2VModel& model = **model_or;
    auto spec = resolve_job(job.spec, model);
    if (!spec) return spec.error();
    job.spec = *spec;
    const JobSpec& s = job.spec;
    const auto solver = *models::parse_solver_kind(s.solver);
    job.total = s.mode == JobMode::fifo ? s.frames : s.steps;
    report(job);

    torch::NoGradGuard no_grad;
    auto text = model.text_encoder->encode({s.prompt});  // [1, L, D]
    if (!text) return text.error();
    pipeline::Conditioning cond{*text, {}};
    if (s.guidance != 1.0) {
      if (s.negative_prompt.empty()) {
        cond.negative = torch::zeros_like(*text);  // unconditional: the empty prompt
      } else {
        auto negative = model.text_encoder->encode({s.negative_prompt});
        if (!negative) return negative.error();
        cond.negative = *negative;
      }
    }

    EncoderSession encoder(self_, spawn_encoder(self_->system()));
    EncodeSpec es;
    es.path = s.out;
    es.width = s.width;
    es.height = s.height;
    es.fps = s.fps;
    es.crf = s.crf;
    es.upscale = s.upscale;
    es.upscale_filter = s.upscale_filter;
    es.fragmented = s.mode != JobMode::standard;  // streamed: the .part plays while it grows
    es.sheet = s.sheet;
    es.sheet_every = s.mode == JobMode::standard ? 1 : std::max(1, s.frames / 16);
    REEL_RETURN_IF_ERROR(encoder.open(es));

    const uint64_t id = job.id;
    StopCheck stop = [this, id] { return stop_check(id); };
    if (s.mode != JobMode::pipefusion) REEL_RETURN_IF_ERROR(pool_.condition(id, cond, s.guidance));
    // Guidance happens on the workers (they hold the negative): here the model looks unguided.
    const pipeline::Conditioning local{cond.text, {}};
    const bool guided = pipeline::uses_guidance(cond, s.guidance);
    const auto t_sample = Clock::now();
    Status ran;
    switch (s.mode) {
      case JobMode::standard: {
        PoolDenoiser pooled(pool_, id, model.prediction, s.cfg_parallel && guided, s.guidance);
        StoppableDenoiser denoiser(pooled, stop);
        const pipeline::SampleOptions opts{.steps = s.steps, .shift = s.shift, .solver = solver,
                                           .guidance = s.guidance, .seed = s.seed};
        // Steps 2 and 6 of the path of one job: the cache's start point, then its inserts.
        std::optional<ActorCache> cache;
        if (options_.cache && s.cache) cache.emplace(self_, options_.cache);
        const auto shape = latent_shape(s, model, s.frames);
        const auto key = compat_key(model, weights_file_, opts, shape, s.tenant);
        auto result = sample_cached(denoiser, model, local, shape, opts, cache ? &*cache : nullptr, key, s.prompt,
                                    /*lookup=*/true, [&](int done, int) {
                                      job.done = done;
                                      report(job);
                                    });
        job.stats.sample_seconds = seconds_since(t_sample);
        if (cache && cache->lookup_error()) {
          warn("job " + std::to_string(id) + ": the cache lookup failed, starting from noise: " +
               cache->lookup_error()->message);
        }
        if (!result) {
          ran = result.error();
          break;
        }
        if (result->insert_error) {
          warn("job " + std::to_string(id) + ": the cache insert failed: " + result->insert_error->message);
        }
        if (result->hit) {
          job.stats.cache_hit = cachestore::hit_kind_name(*result->hit);
          job.stats.cache_start_step = result->start_step;
          job.stats.cache_similarity = result->similarity;
        }
        ran = emit(encoder, model, id, 0, result->result.latent);
        break;
      }
      case JobMode::fifo: {
        pipeline::FifoOptions fo;
        fo.window_frames = model.defaults.frames;
        fo.partitions = s.partitions;
        fo.lookahead = s.lookahead;
        fo.batch_windows = false;  // one window per call: each goes to a worker of its own
        fo.steps = s.steps;
        fo.shift = s.shift;
        fo.solver = solver;
        fo.guidance = s.guidance;
        fo.seed = s.seed;
        auto layout = pipeline::fifo_layout(fo);
        if (!layout) {
          ran = layout.error();
          break;
        }
        // A job started before (a crash, a shutdown) continues from its checkpoint: the frames
        // it had made are encoded again from the checkpoint folder, and the queue goes on.
        const std::string ckpt = checkpoint_folder(id);
        if (s.extends != 0 && !ckpt.empty() && !fs::exists(jobs::state_file(ckpt))) {
          // An extension starts as a resume from where the video it continues ended.
          if (auto st = start_extension(ckpt, s.extends); !st) {
            ran = st;
            break;
          }
        }
        auto resumed = resume_fifo(ckpt, fo, job, encoder);
        if (!resumed) {
          ran = resumed.error();
          break;
        }
        std::optional<pipeline::FifoQueue> queue = std::move(*resumed);
        if (!queue) {
          if (auto st = fresh_folder(ckpt); !st) {
            ran = st.error();
            break;
          }
          // The first clip as FifoQueue::start samples it, with the model calls on the pool.
          PoolDenoiser pooled(pool_, id, model.prediction, false, s.guidance);
          StoppableDenoiser denoiser(pooled, stop);
          const pipeline::SampleOptions first{.steps = layout->steps, .shift = s.shift, .solver = solver,
                                              .guidance = s.guidance, .seed = s.seed};
          auto clip = pipeline::sample(denoiser, local, latent_shape(s, model, fo.window_frames), first);
          if (!clip) {
            ran = clip.error();
            break;
          }
          auto fresh = pipeline::FifoQueue::from_clip(clip->latent, fo);
          if (!fresh) {
            ran = fresh.error();
            break;
          }
          queue.emplace(std::move(*fresh));
        }
        PoolWindowRunner windows(pool_, id, model.prediction);
        StoppableWindowRunner runner(windows, stop);
        const int every = std::max(1, options_.checkpoint_every);
        std::function<Status(const video::Frame&)> keep;
        if (!ckpt.empty()) keep = [&ckpt](const video::Frame& f) { return jobs::append_job_frame(ckpt, f); };
        auto stats = queue->run(runner, s.frames, [&](int64_t index, const torch::Tensor& latent) -> Status {
          // Between frames: the queue is about to produce `index`, and frames.rgb holds them all.
          if (!ckpt.empty() && index > job.stats.resumed_frames && index % every == 0)
            REEL_RETURN_IF_ERROR(jobs::save_fifo_state(ckpt, queue->state()));
          REEL_RETURN_IF_ERROR(emit(encoder, model, id, index, latent, keep));
          job.done = index + 1;
          report(job);
          return {};
        });
        job.stats.sample_seconds = seconds_since(t_sample);
        if (!stats) ran = stats.error();
        else if (!ckpt.empty() && options_.keep_fifo_ends) ran = jobs::save_fifo_state(ckpt, queue->state());
        break;
      }
      case JobMode::pipefusion: {
        auto latent = run_pipefusion(job, model, cond, solver, stop);
        job.stats.sample_seconds = seconds_since(t_sample);
        if (!latent) {
          ran = latent.error();
          break;
        }
        ran = emit(encoder, model, id, 0, *latent);
        break;
      }
      case JobMode::clips: {
        pipeline::ClipsOptions co;
        co.clips = s.clips;
        co.context_frames = s.context_frames;
        co.global_frames = s.global_frames;
        co.steps = s.steps;
        co.shift = s.shift;
        co.solver = solver;
        co.guidance = s.guidance;
        co.seed = s.seed;
        // A job started before continues from its checkpoint: every clip at step k.
        const std::string ckpt = checkpoint_folder(id);
        std::optional<pipeline::VideoClips> clips = resume_clips(ckpt, co, latent_shape(s, model, s.frames), job);
        if (!clips) {
          if (auto st = fresh_folder(ckpt); !st) {
            ran = st.error();
            break;
          }
          auto fresh = pipeline::VideoClips::start(latent_shape(s, model, s.frames), co);
          if (!fresh) {
            ran = fresh.error();
            break;
          }
          clips.emplace(std::move(*fresh));
        }
        PoolClipRunner pooled(pool_, id, model.prediction);
        StoppableClipRunner runner(pooled, stop);
        // Step by step (what VideoClips::run does), with a checkpoint every few steps.
        const int every = std::max(1, options_.checkpoint_every);
        while (!clips->done() && ran) {
          ran = clips->step(runner);
          if (!ran) break;
          const int done = clips->step_index();
          if (!ckpt.empty() && done % every == 0 && !clips->done()) ran = jobs::save_clips_state(ckpt, clips->state());
          job.done = done;
          report(job);
        }
        if (!ran) break;
        auto result = clips->run(runner, [&](int, int64_t first_frame, const torch::Tensor& latent) -> Status {
          return emit(encoder, model, id, first_frame, latent);
        });  // no step is left: offers the clips, in order
        job.stats.sample_seconds = seconds_since(t_sample);
        if (!result) ran = result.error();
        break;
      }
    }
    pool_.drop(id);
    REEL_RETURN_IF_ERROR(ran);
    // A cancel that came after the last step still wins: nothing has been renamed yet.
    if (auto e = stop_check(id)) return *e;
    REEL_RETURN_IF_ERROR(encoder.finish());
    job.stats.frames = encoder.frames();
    return {};
  }

  void warn(const std::string& message) const {
    if (options_.warn) options_.warn(message);
    else std::fprintf(stderr, "reel: warning: %s\n", message.c_str());
  }

  // The stage hosts that answer within options_.host_timeout, in their order.
  std::vector<const StageHost*> live_hosts() {
    std::vector<const StageHost*> live;
    for (const auto& host : stage_hosts_)
      if (node_info(self_->system(), host.node, options_.host_timeout)) live.push_back(&host);
    return live;
  }

  // A PipeFusion job: N fresh stages over the live hosts, round-robin; planned again over the
  // hosts left when one is lost mid-run (see coordinator.hpp).
  Expected<torch::Tensor> run_pipefusion(JobRecord& job, const models::T2VModel& model,
                                         const pipeline::Conditioning& cond, models::SolverKind solver,
                                         const StopCheck& stop) {
    const JobSpec& s = job.spec;
    pipeline::PipeFusionPlan plan;
    plan.stages = s.stages;
    plan.patches = s.patches;
    plan.split = *pipeline::parse_patch_split(s.split);  // checked by resolve_job
    plan.warmup_steps = s.warmup_steps;
    const auto shape = latent_shape(s, model, s.frames);
    if (auto layout = pipeline::make_layout(plan, model.dit->config(), shape); !layout) {
      return make_error(Errc::invalid_argument, "PipeFusion plan for '" + model.name + "': " + layout.error().message);
    }
    if (stage_hosts_.empty()) stage_hosts_.push_back(StageHost{spawn_node(self_->system(), options_.zoo), "local"});
    const int threads = options_.stage_threads > 0 ? options_.stage_threads : options_.worker_threads;
    const pipeline::SampleOptions opts{.steps = s.steps, .shift = s.shift, .solver = solver, .guidance = s.guidance,
                                       .seed = s.seed};
    for (;;) {
      if (auto e = stop()) return *e;
      const auto hosts = live_hosts();
      if (hosts.empty()) return make_error(Errc::io_error, "no stage host answers: PipeFusion has nowhere to run");
      std::vector<stage_actor> stages;
      PipeFusionActorOptions run;
      // The job's stages are its own: stopped when it ends (they hold each other in a ring,
      // so nothing else would stop them).
      struct StopStages {
        std::vector<stage_actor>& stages;
        ~StopStages() {
          for (auto& st : stages) caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
        }
      } stop_stages{stages};
      std::optional<Error> failure;
      for (int i = 0; i < s.stages && !failure; ++i) {
        const StageHost& host = *hosts[static_cast<size_t>(i) % hosts.size()];
        auto got = request_stages(self_->system(), host.node, host.name, 1);
        if (!got) {
          failure = make_error(got.error().code, "stage host " + host.name + ": " + got.error().message);
          break;
        }
        stages.push_back(std::move(got->front()));
        run.names.push_back(host.name + "/stage" + std::to_string(i));
      }
      if (!failure) {
        auto loaded = load_stages(self_->system(), stages, ModelSpec{s.model, "", threads});
        if (!loaded) failure = loaded.error();
      }
      if (!failure) {
        run.timeout = options_.worker_timeout;
        run.on_step = [&](int done, int) {
          job.done = done;
          report(job);
        };
        run.stop = stop;
        auto result = sample_pipefusion_actors(self_->system(), stages, model.prediction, cond, shape, opts, plan,
                                               nullptr, run);
        if (result) return std::move(result->latent);
        failure = result.error();
      }
      if (failure->code == Errc::cancelled || failure->code == Errc::invalid_argument || stage_hosts_.size() < 2) {
        return *failure;
      }
      // Was a host lost? Then plan again over the ones left; otherwise the failure stands.
      const auto left = live_hosts();
      if (left.empty() || left.size() >= hosts.size()) return *failure;
      warn("job " + std::to_string(job.id) + ": " + failure->message + "; planning " + std::to_string(s.stages) +
           " stages again over " + std::to_string(left.size()) + " stage host(s)");
      ++job.stats.replans;
      job.done = 0;
      report(job);
    }
  }

  caf::blocking_actor* self_;
  caf::actor_addr coordinator_;  // weak: the coordinator's lifetime is not the runner's to extend
  WorkerPool pool_;
  CoordinatorOptions options_;
  std::shared_ptr<RunnerControl> control_;
  std::optional<models::T2VModel> model_;
  std::vector<StageHost> stage_hosts_;  // options_.stage_hosts, or a node of this process
  std::string model_name_;
  uint64_t weights_ = 0;
  std::string weights_file_;  // weights_file_checksum of the model, for cache keys
};

void run_jobs(caf::blocking_actor* self, caf::actor_addr coordinator, std::vector<PoolMember> workers,
              CoordinatorOptions options, std::shared_ptr<RunnerControl> control) {
  if (options.runner_threads > 0) at::set_num_threads(options.runner_threads);
  JobRunner runner(self, std::move(coordinator), std::move(workers), std::move(options), control);
  bool running = true;
  self->receive_while(running)([&](job_run_atom, JobRecord& job) { runner.run(std::move(job)); },
                               [&](job_stop_atom) { running = false; });
}

// ---- the coordinator actor -------------------------------------------------------------------

struct CoordinatorState {
  // Not an aggregate: CAF would try to build the state from the actor pointer (C++20
  // parenthesised aggregate initialisation).
  CoordinatorState() = default;
  job_store_actor store;
  caf::actor runner;
  std::shared_ptr<RunnerControl> control;
  std::function<void(const std::string&)> warn;
  std::map<uint64_t, JobRecord> jobs;
  std::map<uint64_t, std::vector<caf::strong_actor_ptr>> subscribers;
  std::map<uint64_t, Clock::time_point> persisted_at;  // last progress write of each running job
  static inline const char* name = "reel.coordinator";
};

using CoordinatorPtr = coordinator_actor::stateful_pointer<CoordinatorState>;

JobEvent event_of(const JobRecord& r) {
  JobEvent e{r.id, r.state, r.done, r.total, {}};
  switch (r.state) {
    case JobState::queued:
    case JobState::running:
      break;
    case JobState::done:
      e.message = r.result;
      break;
    case JobState::failed:
    case JobState::cancelled:
      e.message = r.error;
      break;
  }
  return e;
}

void persist(CoordinatorPtr self, const JobRecord& record) {
  const uint64_t id = record.id;
  self->request(self->state.store, caf::infinite, job_put_atom::value, record)
      .then([](uint64_t) {},
            [=](caf::error& e) { self->state.warn("job " + std::to_string(id) + " could not be recorded: " + from_caf_error(e).message); });
}

void notify(CoordinatorPtr self, const JobRecord& record) {
  auto it = self->state.subscribers.find(record.id);
  if (it == self->state.subscribers.end()) return;
  const JobEvent event = event_of(record);
  for (const auto& sub : it->second) caf::anon_send(caf::actor_cast<caf::actor>(sub), job_event_atom::value, event);
  if (is_final(record.state)) self->state.subscribers.erase(it);
}

coordinator_actor::behavior_type coordinator(CoordinatorPtr self, job_store_actor store,
                                             std::vector<PoolMember> workers, CoordinatorOptions options) {
  auto& st = self->state;
  st.store = std::move(store);
  st.control = std::make_shared<RunnerControl>();
  st.warn = options.warn ? options.warn
                         : [](const std::string& m) { std::fprintf(stderr, "reel: warning: %s\n", m.c_str()); };
  st.runner = self->system().spawn(run_jobs, self->address(), std::move(workers), std::move(options), st.control);
  // Shutdown: the runner stops between two steps, and its job stays recorded as running.
  self->attach_functor([control = st.control, runner = st.runner](const caf::error&) {
    control->stop = true;
    caf::anon_send(runner, job_stop_atom::value);
  });

  // Jobs left queued or running by an earlier coordinator run first; `await` holds back new
  // submissions until they are queued.
  self->request(st.store, caf::infinite, job_list_atom::value)
      .await(
          [=](std::vector<JobRecord>& records, std::vector<std::string>& corrupt) {
            auto& s = self->state;
            for (const auto& c : corrupt) s.warn("skipping an unreadable job: " + c);
            for (auto& rec : records) {
              if (!is_final(rec.state)) {
                rec.state = JobState::queued;
                rec.done = 0;
                persist(self, rec);
                caf::anon_send(s.runner, job_run_atom::value, rec);
              }
              s.jobs[rec.id] = std::move(rec);
            }
          },
          [=](caf::error& e) { self->state.warn("cannot read the job store: " + from_caf_error(e).message); });

  return {
      [=](submit_atom, JobSpec& spec) -> caf::result<uint64_t> {
        if (spec.prompt.find_first_not_of(" \t\n\r") == std::string::npos)
          return to_caf_error(make_error(Errc::invalid_argument, "the prompt is empty"));
        if (spec.out.empty()) return to_caf_error(make_error(Errc::invalid_argument, "the job has no output path"));
        auto rp = self->make_response_promise<uint64_t>();
        self->request(self->state.store, caf::infinite, job_create_atom::value, std::move(spec))
            .then(
                [=](JobRecord& rec) mutable {
                  self->state.jobs[rec.id] = rec;
                  caf::anon_send(self->state.runner, job_run_atom::value, rec);
                  rp.deliver(rec.id);
                },
                [=](caf::error& e) mutable { rp.deliver(e); });
        return rp;
      },
      [=](status_atom, uint64_t id) -> caf::result<JobRecord> {
        auto it = self->state.jobs.find(id);
        if (it == self->state.jobs.end()) return to_caf_error(make_error(Errc::not_found, "no job " + std::to_string(id)));
        return it->second;
      },
      [=](cancel_atom, uint64_t id) -> caf::result<bool> {
        auto it = self->state.jobs.find(id);
        if (it == self->state.jobs.end()) return to_caf_error(make_error(Errc::not_found, "no job " + std::to_string(id)));
        JobRecord& rec = it->second;
        if (is_final(rec.state)) return false;
        self->state.control->cancel(id);
        // A running job ends cancelled when the runner reaches its next step; a queued one is
        // cancelled now (the runner skips it when its turn comes).
        if (rec.state == JobState::queued) {
          rec.state = JobState::cancelled;
          rec.error = "cancelled before it started";
          rec.finished_ms = unix_ms_now();
          persist(self, rec);
          notify(self, rec);
        }
        return true;
      },
      [=](subscribe_atom, uint64_t id) -> caf::result<JobRecord> {
        auto it = self->state.jobs.find(id);
        if (it == self->state.jobs.end()) return to_caf_error(make_error(Errc::not_found, "no job " + std::to_string(id)));
        auto sender = self->current_sender();
        if (sender) {
          if (is_final(it->second.state)) {
            caf::anon_send(caf::actor_cast<caf::actor>(sender), job_event_atom::value, event_of(it->second));
          } else {
            self->state.subscribers[id].push_back(std::move(sender));
          }
        }
        return it->second;
      },
      [=](job_update_atom, JobRecord& update) {
        auto it = self->state.jobs.find(update.id);
        if (it == self->state.jobs.end()) return;
        JobRecord& rec = it->second;
        if (is_final(rec.state)) return;  // e.g. cancelled while queued: that is how it ends
        if (update.state == JobState::running && rec.state == JobState::queued) {
          rec.started_ms = unix_ms_now();
          rec.finished_ms = 0;
          ++rec.attempts;
        }
        const bool changed = rec.state != update.state || rec.total != update.total;
        rec.spec = std::move(update.spec);
        rec.state = update.state;
        rec.done = update.done;
        rec.total = update.total;
        rec.result = std::move(update.result);
        rec.error = std::move(update.error);
        rec.stats = update.stats;
        if (is_final(rec.state)) rec.finished_ms = unix_ms_now();
        // Every change of state is written; progress at most once a kProgressWriteInterval: a
        // restarted job starts over anyway, and a write per step costs the running job CPU
        // (the store's thread and the scheduler's) on a small machine.
        auto& last = self->state.persisted_at[rec.id];
        if (changed || is_final(rec.state) || Clock::now() - last >= kProgressWriteInterval) {
          persist(self, rec);
          last = Clock::now();
        }
        if (is_final(rec.state)) self->state.persisted_at.erase(rec.id);
        notify(self, rec);
      },
      [=](list_atom) -> std::vector<JobRecord> {
        std::vector<JobRecord> out;
        out.reserve(self->state.jobs.size());
        for (const auto& [id, rec] : self->state.jobs) out.push_back(rec);
        return out;
      },
      [=](erase_atom, uint64_t id) -> caf::result<uint64_t> {
        auto it = self->state.jobs.find(id);
        if (it == self->state.jobs.end()) return to_caf_error(make_error(Errc::not_found, "no job " + std::to_string(id)));
        if (!is_final(it->second.state))
          return to_caf_error(make_error(Errc::invalid_argument, "job " + std::to_string(id) + " has not ended"));
        auto rp = self->make_response_promise<uint64_t>();
        self->request(self->state.store, caf::infinite, job_erase_atom::value, id)
            .then(
                [=](uint64_t) mutable {
                  // A job cancelled while queued stays in the runner's cancelled set, so the runner
                  // still skips it when its turn comes.
                  self->state.jobs.erase(id);
                  rp.deliver(id);
                },
                [=](caf::error& e) mutable { rp.deliver(e); });
        return rp;
      },
  };
}

}  // namespace

Expected<coordinator_actor> spawn_coordinator(caf::actor_system& system, job_store_actor store,
                                              std::vector<PoolMember> workers, CoordinatorOptions options) {
  if (workers.empty()) return make_error(Errc::invalid_argument, "the coordinator needs at least one worker");
  if (options.worker_threads < 1)
    return make_error(Errc::invalid_argument, "worker threads must be >= 1, got " + std::to_string(options.worker_threads));
  if (!store) return make_error(Errc::invalid_argument, "the coordinator needs a job store");
  return system.spawn(coordinator, std::move(store), std::move(workers), std::move(options));
}

void add_job_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<JobSpec>("reel.JobSpec");
  cfg.add_message_type<JobStats>("reel.JobStats");
  cfg.add_message_type<JobRecord>("reel.JobRecord");
  cfg.add_message_type<JobEvent>("reel.JobEvent");
  cfg.add_message_type<WireFrame>("reel.WireFrame");
  cfg.add_message_type<EncodeSpec>("reel.EncodeSpec");
  cfg.add_message_type<job_store_actor>("reel.job_store_actor");
  cfg.add_message_type<encoder_actor>("reel.encoder_actor");
  cfg.add_message_type<coordinator_actor>("reel.coordinator_actor");
  cfg.add_error_category(caf::atom("reel"), [](uint8_t code, caf::atom_value, const caf::message& context) {
    std::string text = std::string("reel: ") + errc_name(static_cast<Errc>(code - 1));  // see to_caf_error
    if (context.match_elements<std::string>()) text += " (" + context.get_as<std::string>(0) + ")";
    return text;
  });
}

}  // namespace reel::actors
