// The driver of PipeFusion on stage actors: plan, conditioning and noise out, the final latent
// back; the ring traffic never passes through here.
#include "actors/pipefusion_actors.hpp"

#include <atomic>
#include <cmath>
#include <optional>

#include <caf/all.hpp>
#include <torch/torch.h>

#include "actors/wire.hpp"
#include "pipeline/guidance.hpp"
#include "pipeline/pipefusion_stage.hpp"

namespace reel::actors {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Request ids only have to differ from the previous request a stage saw; starting from the clock
// keeps two driver processes that take turns on the same stages apart.
uint64_t next_request_id() {
  static std::atomic<uint64_t> next{
      static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) | 1};
  return next++;
}

// The message a stage put in its error, else CAF's rendering of it.
std::string error_text(caf::actor_system& system, const caf::error& e) {
  const caf::message& context = e.context();
  if (context.match_elements<std::string>()) return context.get_as<std::string>(0);
  return system.render(e);
}

Errc errc_of(const caf::error& e) {
  return e == caf::sec::invalid_argument ? Errc::invalid_argument : Errc::internal;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Status check_inputs(const std::vector<stage_actor>& stages, const pipeline::Conditioning& cond,
                    const std::vector<int64_t>& shape, const pipeline::SampleOptions& options,
                    const pipeline::PipeFusionPlan& plan, bool guided) {
  if (stages.empty()) return make_error(Errc::invalid_argument, "PipeFusion needs at least one stage actor");
  if (plan.stages != static_cast<int>(stages.size())) {
    return make_error(Errc::invalid_argument, "PipeFusion plan: " + std::to_string(plan.stages) + " stages, but " +
                                                  std::to_string(stages.size()) + " stage actors were given");
  }
  for (size_t i = 0; i < stages.size(); ++i) {
    if (!stages[i]) return make_error(Errc::invalid_argument, "stage " + std::to_string(i) + " is no actor");
  }
  bool shape_ok = shape.size() == 5;
  for (int64_t d : shape) shape_ok = shape_ok && d > 0;
  if (!shape_ok) {
    return make_error(Errc::invalid_argument,
                      "latent shape must be [B, C, F, H, W] with positive sizes, got " + shape_str(shape));
  }
  REEL_RETURN_IF_ERROR(models::validate_schedule_args(options.steps, options.shift));
  if (!std::isfinite(options.guidance)) return make_error(Errc::invalid_argument, "guidance must be a finite number");
  if (!cond.text.defined() || cond.text.dim() != 3 || cond.text.size(0) != shape[0]) {
    return make_error(Errc::invalid_argument, "text embedding must be [B, L, D] with B = " + std::to_string(shape[0]));
  }
  if (guided && cond.negative.sizes() != cond.text.sizes()) {
    return make_error(Errc::invalid_argument, "the negative embedding must be shaped like the text embedding");
  }
  return {};
}

// One run from the calling thread: a blocking actor that monitors every stage.
class Driver {
 public:
  Driver(caf::actor_system& system, const std::vector<stage_actor>& stages, const PipeFusionActorOptions& run)
      : system_(system), self_(system), stages_(stages), run_(run) {
    for (size_t i = 0; i < stages_.size(); ++i) {
      names_.push_back(i < run_.names.size() ? run_.names[i] : "stage " + std::to_string(i));
      self_->monitor(stages_[i]);
    }
  }

  // Asks stage i and waits for its reply (the stages answer these at once: no model calls).
  // `message` is a tuple of the message's elements.
  template <class Reply, class Message>
  Expected<Reply> ask(size_t i, const std::string& what, Message message) {
    std::optional<Error> failure;
    Reply out{};
    std::apply(
        [&](auto&&... xs) {
          self_->request(stages_[i], wait_bound(), std::forward<decltype(xs)>(xs)...)
              .receive([&](Reply& r) { out = std::move(r); },
                       [&](caf::error& e) { failure = stage_error(i, what, e); });
        },
        std::move(message));
    if (failure) return *failure;
    return out;
  }

  // ask() every stage in turn; make(i) gives stage i's message.
  template <class Reply, class Make>
  Expected<std::vector<Reply>> ask_all(const std::string& what, Make make) {
    std::vector<Reply> out;
    for (size_t i = 0; i < stages_.size(); ++i) {
      auto r = ask<Reply>(i, what, make(i));
      if (!r) return r.error();
      out.push_back(std::move(*r));
    }
    return out;
  }

  Error stage_error(size_t i, const std::string& what, const caf::error& e) {
    if (e == caf::sec::request_receiver_down) {
      return make_error(Errc::internal, "PipeFusion " + names_[i] + " is down (" + what + ")");
    }
    if (e == caf::sec::request_timeout) {
      return make_error(Errc::internal, "PipeFusion " + names_[i] + " did not answer within " +
                                            std::to_string(run_.timeout.count()) + " ms (" + what + ")");
    }
    return make_error(errc_of(e), "PipeFusion " + names_[i] + " (" + what + "): " + error_text(system_, e));
  }

  // Waits for the last stage's final latent; steps are reported on the way. A stage's error or
  // one going down ends the wait.
  Expected<torch::Tensor> await_result(uint64_t id) {
    std::optional<Error> failure;
    torch::Tensor latent;
    bool finished = false;
    while (!finished && !failure) {
      bool timed_out = false;
      auto on_step = [&](pf_step_atom, uint64_t rid, int32_t done, int32_t total) {
        if (rid != id) return;
        if (run_.on_step) run_.on_step(done, total);
        if (run_.stop) {
          if (auto e = run_.stop()) failure = std::move(*e);
        }
      };
      auto on_done = [&](pf_done_atom, uint64_t rid, WireTensor& wire) {
        if (rid != id) return;
        auto t = from_wire(wire);
        if (!t) {
          failure = make_error(t.error().code, "PipeFusion result from " + names_.back() + ": " + t.error().message);
          return;
        }
        latent = std::move(*t);
        finished = true;
      };
      auto on_fail = [&](pf_fail_atom, uint64_t rid, int32_t stage, std::string& message) {
        if (rid != id) return;
        const std::string name = stage >= 0 && static_cast<size_t>(stage) < names_.size()
                                     ? names_[static_cast<size_t>(stage)]
                                     : "stage " + std::to_string(stage);
        failure = make_error(Errc::internal, "PipeFusion " + name + " failed " + message);
      };
      auto on_down = [&](caf::down_msg& dm) {
        for (size_t i = 0; i < stages_.size(); ++i) {
          if (stages_[i].address() == dm.source) {
            failure = make_error(Errc::internal, "PipeFusion " + names_[i] + " went down during the run (" +
                                                     system_.render(dm.reason) + ")");
          }
        }
      };
      if (run_.timeout.count() > 0) {
        self_->receive(on_step, on_done, on_fail, on_down, caf::after(run_.timeout) >> [&] { timed_out = true; });
      } else {
        self_->receive(on_step, on_done, on_fail, on_down);
      }
      if (timed_out) {
        failure = make_error(Errc::internal, "PipeFusion: no stage reported within " +
                                                 std::to_string(run_.timeout.count()) + " ms");
      }
    }
    if (failure) return *failure;
    return latent;
  }

  caf::actor handle() { return caf::actor_cast<caf::actor>(self_); }
  const std::string& name(size_t i) const { return names_[i]; }

 private:
  caf::duration wait_bound() const {
    if (run_.timeout.count() > 0) return caf::duration{run_.timeout};
    return caf::infinite;
  }

  caf::actor_system& system_;
  caf::scoped_actor self_;
  const std::vector<stage_actor>& stages_;
  const PipeFusionActorOptions& run_;
  std::vector<std::string> names_;
};

}  // namespace

Expected<std::vector<StageInfo>> load_stages(caf::actor_system& system, const std::vector<stage_actor>& stages,
                                             const ModelSpec& spec) {
  caf::scoped_actor self{system};
  std::vector<StageInfo> infos;
  for (size_t i = 0; i < stages.size(); ++i) {
    std::optional<Error> failure;
    self->request(stages[i], caf::infinite, load_atom::value, spec)
        .receive([&](StageInfo& info) { infos.push_back(std::move(info)); },
                 [&](caf::error& e) {
                   failure = make_error(errc_of(e), "stage " + std::to_string(i) + " could not load '" + spec.model +
                                                        "': " + error_text(system, e));
                 });
    if (failure) return *failure;
  }
  return infos;
}

Expected<pipeline::SampleResult> sample_pipefusion_actors(caf::actor_system& system, std::vector<stage_actor> stages,
                                                          models::Prediction prediction,
                                                          const pipeline::Conditioning& cond,
                                                          std::vector<int64_t> latent_shape,
                                                          const pipeline::SampleOptions& options,
                                                          const pipeline::PipeFusionPlan& plan,
                                                          pipeline::PipeFusionStats* stats,
                                                          const PipeFusionActorOptions& run) {
  const bool guided = pipeline::uses_guidance(cond, options.guidance);
  REEL_RETURN_IF_ERROR(check_inputs(stages, cond, latent_shape, options, plan, guided));
  const auto start = Clock::now();
  const int n_stages = static_cast<int>(stages.size());
  const uint64_t id = next_request_id();
  const int64_t rows = guided ? 2 * latent_shape[0] : latent_shape[0];

  WireTensor text_wire, noise_wire;
  try {
    torch::NoGradGuard no_grad;
    // Conditional rows first, as sample_pipefusion.
    const torch::Tensor text = guided ? torch::cat({cond.text, cond.negative}, 0) : cond.text;  // [rows, L, D]
    auto t = to_wire(text);
    if (!t) return t.error();
    text_wire = std::move(*t);
    auto n = to_wire(pipeline::make_noise(latent_shape, options.seed));  // [B, C, F, H, W]
    if (!n) return n.error();
    noise_wire = std::move(*n);
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("PipeFusion: ") + e.what());
  }

  Driver driver(system, stages, run);
  // The plan: stage i sends on to stage i + 1, the last to stage 0.
  auto infos = driver.ask_all<StageInfo>("plan", [&](size_t i) {
    StagePlan p{static_cast<int32_t>(i), plan.stages, plan.patches, static_cast<int32_t>(plan.split),
                plan.warmup_steps, latent_shape};
    return std::make_tuple(pf_plan_atom::value, std::move(p),
                           stage_ring{stages[(i + 1) % stages.size()]});
  });
  if (!infos) return infos.error();
  for (int i = 0; i < n_stages; ++i) {
    const auto& info = (*infos)[static_cast<size_t>(i)];
    if (info.prediction != static_cast<int32_t>(prediction)) {
      return make_error(Errc::invalid_argument,
                        "PipeFusion " + driver.name(static_cast<size_t>(i)) + " holds a model that predicts " +
                            models::prediction_name(static_cast<models::Prediction>(info.prediction)) +
                            ", the run expects " + models::prediction_name(prediction));
    }
    if (info.model != infos->front().model || info.dim != infos->front().dim) {
      return make_error(Errc::invalid_argument, "PipeFusion stages hold different models: " +
                                                    driver.name(0) + " '" + infos->front().model + "', " +
                                                    driver.name(static_cast<size_t>(i)) + " '" + info.model + "'");
    }
  }

  StageRequest request;
  request.id = id;
  request.text = text_wire;
  request.guided = guided;
  request.steps = options.steps;
  request.shift = options.shift;
  request.solver = static_cast<int32_t>(options.solver);
  request.guidance = options.guidance;
  request.prediction = static_cast<int32_t>(prediction);
  const caf::actor me = driver.handle();
  auto begun = driver.ask_all<uint64_t>("conditioning", [&](size_t) {
    return std::make_tuple(pf_begin_atom::value, request, me);
  });
  if (!begun) return begun.error();
  const double setup_seconds = seconds_since(start);

  const auto ring_start = Clock::now();
  const size_t last = stages.size() - 1;
  auto started = driver.ask<uint64_t>(last, "initial noise", std::make_tuple(pf_start_atom::value, id, noise_wire));
  if (!started) return started.error();
  auto latent = driver.await_result(id);
  if (!latent) return latent.error();
  const double ring_seconds = seconds_since(ring_start);

  pipeline::SampleResult result;
  result.latent = std::move(*latent);
  const int warmup = std::min(plan.warmup_steps, options.steps);
  result.stats.model_calls = options.steps;
  result.stats.model_rows = options.steps * rows;
  result.stats.seconds = seconds_since(start);

  if (stats == nullptr && run.timing == nullptr) return result;
  auto reports = driver.ask_all<StageReport>("measurements", [&](size_t) {
    return std::make_tuple(pf_report_atom::value, id);
  });
  if (!reports) return reports.error();

  if (stats != nullptr) {
    const auto& front = infos->front();
    pipeline::PipeFusionStats st;
    st.stages = n_stages;
    st.patches = plan.patches;
    st.steps = options.steps;
    st.warmup_steps = warmup;
    st.model_calls = options.steps;
    st.model_rows = options.steps * rows;
    st.patch_passes = static_cast<int64_t>(options.steps - warmup) * plan.patches;
    st.element_bytes = static_cast<int64_t>(sizeof(float));
    for (int64_t tokens : front.patch_tokens) {
      st.analytic_patch_bytes.push_back(tokens * front.dim * rows * st.element_bytes);
      st.analytic_step_bytes += st.analytic_patch_bytes.back();
    }
    for (int step = 0; step < options.steps; ++step) {
      std::vector<int64_t> sent;
      for (int b = 0; b + 1 < n_stages; ++b) {
        sent.push_back((*reports)[static_cast<size_t>(b)].payload_bytes.at(static_cast<size_t>(step)));
      }
      st.boundary_bytes.push_back(std::move(sent));
      st.ring_bytes.push_back(reports->back().payload_bytes.at(static_cast<size_t>(step)));
    }
    for (const auto& r : *reports) {
      st.stage_runs += r.runs;
      st.stale_kv_bytes += r.stale_kv_bytes;
    }
    st.request_bytes = reports->front().request_bytes;
    st.seconds = result.stats.seconds;
    *stats = std::move(st);
  }
  if (run.timing != nullptr) {
    PipeFusionTiming t;
    t.stages = *infos;
    t.reports = *reports;
    for (const auto& r : *reports) t.wire_bytes.push_back(r.wire_bytes);
    t.setup_seconds = setup_seconds;
    t.ring_seconds = ring_seconds;
    *run.timing = std::move(t);
  }
  return result;
}

}  // namespace reel::actors
