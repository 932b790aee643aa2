#include "actors/stage.hpp"

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>

#include <ATen/Parallel.h>
#include <caf/all.hpp>
#include <torch/torch.h>

#include "actors/wire.hpp"
#include "codecs/tensor.hpp"
#include "models/zoo.hpp"
#include "pipeline/pipefusion.hpp"
#include "pipeline/pipefusion_stage.hpp"

namespace reel::actors {
namespace {

using Clock = std::chrono::steady_clock;
using pipeline::kFullSequence;

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// CPU time of the calling thread.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Bytes of the tensor values a WireTensor carries, read from its header (what crossed, not what
// the sender meant to send).
int64_t payload_bytes(const WireTensor& wire) {
  if (wire.bytes.empty()) return 0;
  auto parsed = codecs::parse(wire.bytes);
  return parsed ? static_cast<int64_t>(parsed->payload.size()) : 0;
}

// One request as a stage sees it.
struct Run {
  uint64_t id = 0;
  bool active = false;  // begun and not failed: ring messages of `id` are worked on
  caf::actor driver;
  bool guided = false;
  int steps = 0;
  int warmup = 0;       // synchronous steps: min(W, steps)
  int begun_step = -1;  // the step whose time embedding the stage holds
  // Last stage: one solver state per patch and the latent patch by patch, each at its step.
  std::unique_ptr<pipeline::PatchScheduler> scheduler;
  std::vector<torch::Tensor> x_patches;
  StageReport report;
  std::optional<Clock::time_point> first_work;
  Clock::time_point last_work;
};

struct StageState {
  std::string default_zoo;
  std::string model_name;
  models::VideoDiT dit{nullptr};
  models::Prediction prediction = models::Prediction::velocity;
  int threads = 1;
  // The plan.
  StagePlan plan;
  std::optional<pipeline::PipeFusionLayout> layout;
  std::unique_ptr<pipeline::PipeFusionStage> stage;
  stage_ring successor;
  Run run;
  static inline const char* name = "reel.stage";
};

using stage_pointer = stage_actor::stateful_pointer<StageState>;

// Errors a stage replies with: invalid_argument for what the caller asked wrongly (a plan the
// model cannot run, bad options or shapes), runtime_error for the rest.
caf::error failure(const std::string& message, caf::sec code = caf::sec::runtime_error) {
  return caf::make_error(code, message);
}

caf::error bad_request(const std::string& message) { return failure(message, caf::sec::invalid_argument); }

StageInfo info_of(const StageState& st) {
  StageInfo info{st.model_name, hostname(), static_cast<int32_t>(getpid()), st.threads,
                 static_cast<int32_t>(st.prediction), st.plan.stage, 0, 0};
  if (st.dit) info.dim = st.dit->config().dim;
  if (st.stage) {
    info.first_block = st.stage->blocks().first;
    info.last_block = st.stage->blocks().last;
    for (const auto& p : st.layout->patches) info.patch_tokens.push_back(p.tokens);
  }
  return info;
}

Expected<pipeline::PipeFusionPlan> plan_of(const StagePlan& p) {
  if (p.split != static_cast<int32_t>(pipeline::PatchSplit::frames) &&
      p.split != static_cast<int32_t>(pipeline::PatchSplit::rows)) {
    return make_error(Errc::invalid_argument, "PipeFusion plan: unknown patch split " + std::to_string(p.split));
  }
  if (p.stage < 0 || p.stage >= p.stages) {
    return make_error(Errc::invalid_argument, "PipeFusion plan: stage " + std::to_string(p.stage) + " of " +
                                                  std::to_string(p.stages) + " stages");
  }
  pipeline::PipeFusionPlan plan;
  plan.stages = p.stages;
  plan.patches = p.patches;
  plan.split = static_cast<pipeline::PatchSplit>(p.split);
  plan.warmup_steps = p.warmup_steps;
  return plan;
}

// The request's options as the last stage's solver needs them.
Expected<pipeline::SampleOptions> options_of(const StageRequest& r) {
  if (r.solver < 0 || r.solver > static_cast<int32_t>(models::SolverKind::dpmpp))
    return make_error(Errc::invalid_argument, "unknown solver " + std::to_string(r.solver));
  if (r.prediction < 0 || r.prediction > static_cast<int32_t>(models::Prediction::sample))
    return make_error(Errc::invalid_argument, "unknown prediction " + std::to_string(r.prediction));
  REEL_RETURN_IF_ERROR(models::validate_schedule_args(r.steps, r.shift));
  if (!std::isfinite(r.guidance)) return make_error(Errc::invalid_argument, "guidance must be a finite number");
  pipeline::SampleOptions o;
  o.steps = r.steps;
  o.shift = r.shift;
  o.solver = static_cast<models::SolverKind>(r.solver);
  o.guidance = r.guidance;
  return o;
}

// The ring's work. Each method runs inside one message handler of the stage's own thread; the
// order in which a stage sees patches (step by step, patch by patch) is the simulation's, so
// its numbers are the simulation's.
class Ring {
 public:
  explicit Ring(stage_pointer self) : self_(self), st_(self->state), run_(self->state.run) {}

  // Ring handlers: everything inside is caught here and reported to the driver.
  template <class Work>
  void guarded(uint64_t id, Work&& work) {
    if (!run_.active || id != run_.id) return;  // a request that failed or was replaced
    const auto start = Clock::now();
    const double cpu_start = thread_cpu_seconds();
    if (!run_.first_work) run_.first_work = start;
    try {
      torch::NoGradGuard no_grad;
      if (auto st = work(); !st) fail(st.error().message);
    } catch (const std::exception& e) {
      fail(std::string("LibTorch: ") + e.what());
    }
    run_.last_work = Clock::now();
    run_.report.cpu_seconds += thread_cpu_seconds() - cpu_start;
  }

  // pf_latent on stage 0: embed the patch (or, for a whole latent, the synchronous step or
  // every patch of the step in order), then run the blocks.
  Status on_latent(int step, int patch, double sigma, const WireTensor& wire) {
    if (!st_.stage->first()) return make_error(Errc::internal, "a latent reached a stage other than 0");
    auto latent = receive(wire);  // [B, C, ...]
    if (!latent) return latent.error();
    auto& stage = *st_.stage;
    begin_step(step, sigma);
    if (patch != kFullSequence) {
      return forward(step, patch, sigma, compute([&] { return stage.embed(patch, with_rows(*latent)); }));
    }
    const auto& layout = *st_.layout;
    if (latent->sizes() != at::IntArrayRef(layout.latent_shape))
      return make_error(Errc::invalid_argument, "latent " + shape_of(*latent) + " does not fit the plan");
    compute([&] {
      stage.set_latent(with_rows(*latent));
      return at::Tensor();
    });
    if (step < run_.warmup) {
      const torch::Tensor tokens = compute([&] { return stage.embed(kFullSequence, with_rows(*latent)); });
      return forward(step, kFullSequence, sigma, tokens);
    }
    for (int i = 0; i < static_cast<int>(layout.patches.size()); ++i) {
      const auto& p = layout.patches[static_cast<size_t>(i)];
      REEL_RETURN_IF_ERROR(forward(step, i, sigma, compute([&] { return stage.embed(i, with_rows(p.of(*latent))); })));
    }
    return {};
  }

  // pf_tokens on stages 1..N-1.
  Status on_tokens(int step, int patch, double sigma, const WireTensor& wire) {
    if (st_.stage->first()) return make_error(Errc::internal, "tokens reached stage 0");
    auto tokens = receive(wire);  // [rows, S_p, D]
    if (!tokens) return tokens.error();
    begin_step(step, sigma);
    return forward(step, patch, sigma, *tokens);
  }

  // pf_start on the last stage: keeps the noise for the solver, sends it round to stage 0.
  Status start(const torch::Tensor& noise) {
    const auto& layout = *st_.layout;
    run_.x_patches.clear();
    for (const auto& p : layout.patches) run_.x_patches.push_back(p.of(noise));
    auto wire = send_form(noise);
    if (!wire) return wire.error();
    self_->send(st_.successor, pf_latent_atom::value, run_.id, int32_t{0}, int32_t{kFullSequence},
                run_.scheduler->sigma(0), std::move(*wire));
    return {};
  }

  void fail(const std::string& message) {
    run_.active = false;
    if (run_.driver) {
      self_->anon_send(run_.driver, pf_fail_atom::value, run_.id, st_.plan.stage, "on " + hostname() + ": " + message);
    }
  }

 private:
  template <class F>
  torch::Tensor compute(F&& f) {
    const auto t0 = Clock::now();
    torch::Tensor out = f();
    run_.report.compute_seconds += seconds_between(t0, Clock::now());
    return out;
  }

  static std::string shape_of(const torch::Tensor& t) {
    std::ostringstream os;
    os << t.sizes();
    return os.str();
  }

  // Conditional and unconditional rows of the latent, as sample_pipefusion's with_rows.
  torch::Tensor with_rows(const torch::Tensor& x) const { return run_.guided ? torch::cat({x, x}, 0) : x; }

  Expected<torch::Tensor> receive(const WireTensor& wire) {
    const auto t0 = Clock::now();
    auto t = from_wire(wire);
    run_.report.wire_seconds += seconds_between(t0, Clock::now());
    if (!t) return t.error();
    if (!t->defined()) return make_error(Errc::invalid_argument, "a ring message without a tensor");
    return t;
  }

  Expected<WireTensor> send_form(const torch::Tensor& t) {
    const auto t0 = Clock::now();
    auto wire = to_wire(t);
    run_.report.wire_seconds += seconds_between(t0, Clock::now());
    return wire;
  }

  // Counts a message this stage sends on at `step`.
  void count_sent(int step, const WireTensor& wire) {
    const auto t0 = Clock::now();
    auto& r = run_.report;
    r.payload_bytes.at(static_cast<size_t>(step)) += payload_bytes(wire);
    r.wire_bytes.at(static_cast<size_t>(step)) += static_cast<int64_t>(wire.bytes.size());
    r.wire_seconds += seconds_between(t0, Clock::now());
  }

  void begin_step(int step, double sigma) {
    if (step == run_.begun_step) return;
    compute([&] {
      st_.stage->begin_step(sigma);
      return torch::Tensor();
    });
    run_.begun_step = step;
  }

  // This stage's blocks on a patch's tokens, then on to the next stage or, on the last one, the
  // model output and the solver step.
  Status forward(int step, int patch, double sigma, const torch::Tensor& tokens_in) {
    if (step < 0 || step >= run_.steps) {
      return make_error(Errc::invalid_argument, "step " + std::to_string(step) + " outside the request");
    }
    const torch::Tensor tokens = compute([&] { return st_.stage->run(patch, tokens_in); });  // [rows, S_p, D]
    ++run_.report.runs;
    if (!st_.stage->last()) {
      auto wire = send_form(tokens);
      if (!wire) return wire.error();
      count_sent(step, *wire);
      self_->send(st_.successor, pf_tokens_atom::value, run_.id, int32_t{step}, int32_t{patch}, sigma,
                  std::move(*wire));
      return {};
    }
    return finish(step, patch, tokens);
  }

  Status finish(int step, int patch, const torch::Tensor& tokens) {
    const auto& layout = *st_.layout;
    auto& sched = *run_.scheduler;
    const int n_patches = static_cast<int>(layout.patches.size());
    const int cut_dim = layout.patches.front().latent_dim;
    const bool final_step = step + 1 == run_.steps;
    if (patch == kFullSequence) {
      const torch::Tensor next = compute([&] {
        const torch::Tensor x = n_patches == 1 ? run_.x_patches[0] : torch::cat(run_.x_patches, cut_dim);
        return sched.step_all(st_.stage->output(kFullSequence, tokens), x);
      });
      for (int i = 0; i < n_patches; ++i) {
        run_.x_patches[static_cast<size_t>(i)] = layout.patches[static_cast<size_t>(i)].of(next);
      }
      if (!final_step) REEL_RETURN_IF_ERROR(send_latent(step, kFullSequence, sched.sigma(0), next));
    } else {
      if (patch < 0 || patch >= n_patches) {
        return make_error(Errc::invalid_argument, "patch " + std::to_string(patch) + " outside the plan");
      }
      auto& x = run_.x_patches[static_cast<size_t>(patch)];
      x = compute([&] { return sched.step(patch, st_.stage->output(patch, tokens), x); });
      if (!final_step) REEL_RETURN_IF_ERROR(send_latent(step, patch, sched.sigma(patch), x));
      if (patch + 1 < n_patches) return {};
    }
    self_->anon_send(run_.driver, pf_step_atom::value, run_.id, int32_t{step + 1}, int32_t{run_.steps});
    if (final_step) return done(step);
    return {};
  }

  Status send_latent(int step, int patch, double sigma, const torch::Tensor& x) {
    auto wire = send_form(x);
    if (!wire) return wire.error();
    count_sent(step, *wire);
    self_->send(st_.successor, pf_latent_atom::value, run_.id, int32_t{step + 1}, int32_t{patch}, sigma,
                std::move(*wire));
    return {};
  }

  // The final latent to the driver; its bytes count as the last step's ring bytes (what the
  // simulation counts there: every patch's update).
  Status done(int step) {
    const auto& layout = *st_.layout;
    const torch::Tensor latent = compute([&] {
      return run_.x_patches.size() == 1 ? run_.x_patches[0].contiguous()
                                        : torch::cat(run_.x_patches, layout.patches.front().latent_dim);
    });
    auto wire = send_form(latent);
    if (!wire) return wire.error();
    count_sent(step, *wire);
    run_.report.stale_kv_bytes = st_.stage->stale_kv().bytes();
    self_->anon_send(run_.driver, pf_done_atom::value, run_.id, std::move(*wire));
    run_.active = false;
    return {};
  }

  stage_pointer self_;
  StageState& st_;
  Run& run_;
};

caf::result<StageInfo> load(stage_pointer self, const ModelSpec& spec) {
  auto& st = self->state;
  if (spec.threads < 1) return bad_request("threads must be >= 1, got " + std::to_string(spec.threads));
  // This thread's LibTorch (OpenMP) thread count: the actor is detached, so it is its own.
  at::set_num_threads(spec.threads);
  st.threads = spec.threads;
  if (!st.dit || st.model_name != spec.model) {
    auto model = models::open_model(spec.model, spec.zoo.empty() ? st.default_zoo : spec.zoo);
    if (!model) return failure("stage on " + hostname() + ": " + model.error().message);
    model->dit->eval();
    st.model_name = model->name;
    st.dit = model->dit;
    st.prediction = model->prediction;
    st.layout.reset();
    st.stage.reset();
    st.run = Run{};
  }
  return info_of(st);
}

caf::result<StageInfo> take_plan(stage_pointer self, const StagePlan& p, const stage_ring& successor) {
  auto& st = self->state;
  if (!st.dit) return failure("stage on " + hostname() + " has no model loaded");
  if (!successor) return failure("stage " + std::to_string(p.stage) + " was given no successor");
  at::set_num_threads(st.threads);
  auto plan = plan_of(p);
  if (!plan) return bad_request(plan.error().message);
  st.stage.reset();
  st.layout.reset();
  st.run = Run{};
  auto layout = pipeline::make_layout(*plan, st.dit->config(), p.latent_shape);
  if (!layout) return bad_request(layout.error().message);
  try {
    st.layout = std::move(*layout);
    st.stage = std::make_unique<pipeline::PipeFusionStage>(st.dit, *st.layout, p.stage);
  } catch (const std::exception& e) {
    st.layout.reset();
    return failure(std::string("stage set-up failed: ") + e.what());
  }
  st.plan = p;
  st.successor = successor;
  return info_of(st);
}

caf::result<uint64_t> begin(stage_pointer self, const StageRequest& req, const caf::actor& driver) {
  auto& st = self->state;
  if (!st.stage) return failure("stage on " + hostname() + " has no plan");
  st.run = Run{};
  auto options = options_of(req);
  if (!options) return bad_request(options.error().message);
  auto text = from_wire(req.text);
  if (!text) return bad_request("text embedding: " + text.error().message);
  const auto& cfg = st.dit->config();
  const int64_t batch = st.layout->latent_shape[0];
  const int64_t rows = req.guided ? 2 * batch : batch;
  if (!text->defined() || text->dim() != 3 || text->size(0) != rows || text->size(1) > cfg.text_len ||
      text->size(2) != cfg.text_dim) {
    return bad_request("text embedding must be [rows, L, D] with rows = " + std::to_string(rows) + ", L <= " +
                   std::to_string(cfg.text_len) + ", D = " + std::to_string(cfg.text_dim));
  }
  Run run;
  run.id = req.id;
  run.driver = driver;
  run.guided = req.guided;
  run.steps = req.steps;
  run.warmup = std::min(st.layout->warmup_steps, req.steps);
  run.report.stage = st.plan.stage;
  run.report.payload_bytes.assign(static_cast<size_t>(req.steps), 0);
  run.report.wire_bytes.assign(static_cast<size_t>(req.steps), 0);
  run.report.request_bytes = payload_bytes(req.text);
  try {
    torch::NoGradGuard no_grad;
    st.stage->begin_request(*text);
    if (st.stage->last()) {
      run.scheduler = std::make_unique<pipeline::PatchScheduler>(
          *st.layout, *options, static_cast<models::Prediction>(req.prediction), req.guided);
    }
  } catch (const std::exception& e) {
    return failure(std::string("stage ") + std::to_string(st.plan.stage) + ": LibTorch: " + e.what());
  }
  run.active = true;
  st.run = std::move(run);
  return req.id;
}

caf::result<uint64_t> start(stage_pointer self, uint64_t id, const WireTensor& noise_wire) {
  auto& st = self->state;
  if (!st.stage || !st.stage->last()) return failure("only the last stage takes the initial noise");
  if (!st.run.active || st.run.id != id) return failure("request " + std::to_string(id) + " was not begun here");
  auto noise = from_wire(noise_wire);
  if (!noise) return bad_request("initial noise: " + noise.error().message);
  if (!noise->defined() || noise->sizes() != at::IntArrayRef(st.layout->latent_shape))
    return bad_request("the initial noise does not have the plan's latent shape");
  Ring ring(self);
  ring.guarded(id, [&]() -> Status { return ring.start(*noise); });
  if (!st.run.active) return failure("the initial noise could not be sent on");
  return id;
}

stage_actor::behavior_type stage(stage_pointer self) {
  return {
      [=](pf_tokens_atom, uint64_t id, int32_t step, int32_t patch, double sigma, const WireTensor& tokens) {
        Ring ring(self);
        ring.guarded(id, [&] { return ring.on_tokens(step, patch, sigma, tokens); });
      },
      [=](pf_latent_atom, uint64_t id, int32_t step, int32_t patch, double sigma, const WireTensor& latent) {
        Ring ring(self);
        ring.guarded(id, [&] { return ring.on_latent(step, patch, sigma, latent); });
      },
      [=](load_atom, const ModelSpec& spec) -> caf::result<StageInfo> { return load(self, spec); },
      [=](pf_plan_atom, const StagePlan& p, const stage_ring& successor) -> caf::result<StageInfo> {
        return take_plan(self, p, successor);
      },
      [=](pf_begin_atom, const StageRequest& req, const caf::actor& driver) -> caf::result<uint64_t> {
        return begin(self, req, driver);
      },
      [=](pf_start_atom, uint64_t id, const WireTensor& noise) -> caf::result<uint64_t> {
        return start(self, id, noise);
      },
      [=](pf_report_atom, uint64_t id) -> caf::result<StageReport> {
        const auto& run = self->state.run;
        if (run.id != id || id == 0) return failure("no measurements for request " + std::to_string(id));
        StageReport report = run.report;
        if (run.first_work) report.span_seconds = seconds_between(*run.first_work, run.last_work);
        if (self->state.stage) report.stale_kv_bytes = self->state.stage->stale_kv().bytes();
        return report;
      },
  };
}

stage_actor::behavior_type empty_stage(stage_pointer self, std::string default_zoo) {
  self->state.default_zoo = std::move(default_zoo);
  return stage(self);
}

stage_actor::behavior_type loaded_stage(stage_pointer self, models::VideoDiT dit, models::Prediction prediction,
                                        int threads) {
  auto& st = self->state;
  st.dit = std::move(dit);
  st.prediction = prediction;
  st.threads = std::max(1, threads);
  return stage(self);
}

}  // namespace

stage_actor spawn_stage(caf::actor_system& system, std::string default_zoo) {
  return system.spawn<caf::detached>(empty_stage, std::move(default_zoo));
}

stage_actor spawn_stage(caf::actor_system& system, models::VideoDiT dit, models::Prediction prediction,
                        int threads) {
  return system.spawn<caf::detached>(loaded_stage, std::move(dit), prediction, threads);
}

void add_stage_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<StagePlan>("reel.StagePlan");
  cfg.add_message_type<StageInfo>("reel.StageInfo");
  cfg.add_message_type<StageRequest>("reel.StageRequest");
  cfg.add_message_type<StageReport>("reel.StageReport");
  cfg.add_message_type<stage_ring>("reel.stage_ring");
  cfg.add_message_type<stage_actor>("reel.stage_actor");
}

}  // namespace reel::actors
