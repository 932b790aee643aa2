#include "actors/worker.hpp"

#include <unistd.h>

#include <map>
#include <memory>
#include <span>
#include <tuple>

#include <ATen/Parallel.h>
#include <caf/all.hpp>

#include "actors/wire.hpp"
#include "codecs/checksum.hpp"
#include "models/zoo.hpp"
#include "pipeline/dit_denoiser.hpp"
#include "pipeline/guidance.hpp"

namespace reel::actors {

uint64_t dit_checksum(models::VideoDiT& dit) {
  uint64_t h = 0x57454947;  // "WEIG"
  torch::NoGradGuard no_grad;
  for (const auto& p : dit->named_parameters(/*recurse=*/true)) {
    h = codecs::checksum64(p.key(), h);
    const torch::Tensor t = p.value().detach().to(torch::kFloat32).contiguous();
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    h = codecs::checksum64(std::as_bytes(std::span<const int64_t>(shape)), h);
    h = codecs::checksum64(
        std::as_bytes(std::span<const float>(t.data_ptr<float>(), static_cast<size_t>(t.numel()))), h);
  }
  return h;
}

namespace {

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

struct Request {
  pipeline::Conditioning cond;
  double guidance = 1.0;
};

struct WorkerState {
  std::string default_zoo;
  std::string model_name;
  models::VideoDiT dit{nullptr};
  std::unique_ptr<pipeline::DiTDenoiser> denoiser;
  WorkerInfo info;
  std::map<uint64_t, Request> requests;
  static inline const char* name = "reel.worker";
};

using Reply = std::tuple<result_atom, uint64_t, WireTensor, std::string>;

Reply failed(uint64_t item, std::string message) {
  return Reply{result_atom::value, item, WireTensor{}, std::move(message)};
}

Expected<torch::Tensor> call(WorkerState& st, const Request& req, CallKind kind, const torch::Tensor& x,
                             const torch::Tensor& sigma) {
  switch (kind) {
    case CallKind::guided:
      return pipeline::guided_denoise(*st.denoiser, x, sigma, req.cond, req.guidance);
    case CallKind::text:
      return pipeline::guided_denoise(*st.denoiser, x, sigma, {req.cond.text, {}}, 1.0);
    case CallKind::negative:
      if (!req.cond.negative.defined()) {
        return make_error(Errc::invalid_argument, "the request has no negative prompt for this call");
      }
      return pipeline::guided_denoise(*st.denoiser, x, sigma, {req.cond.negative, {}}, 1.0);
  }
  return make_error(Errc::invalid_argument, "unknown call kind " + std::to_string(static_cast<int>(kind)));
}

worker_actor::behavior_type worker(worker_actor::stateful_pointer<WorkerState> self, std::string default_zoo) {
  self->state.default_zoo = std::move(default_zoo);
  return {
      [=](load_atom, const ModelSpec& spec) -> caf::result<WorkerInfo> {
        auto& st = self->state;
        if (spec.threads < 1) {
          return caf::make_error(caf::sec::invalid_argument, "threads must be >= 1, got " + std::to_string(spec.threads));
        }
        // This thread's LibTorch (OpenMP) thread count: the actor is detached, so it is its own.
        at::set_num_threads(spec.threads);
        if (st.dit && st.model_name == spec.model) {
          st.info.threads = spec.threads;
          return st.info;
        }
        auto model = models::open_model(spec.model, spec.zoo.empty() ? st.default_zoo : spec.zoo);
        if (!model) {
          return caf::make_error(caf::sec::runtime_error, "worker on " + hostname() + ": " + model.error().message);
        }
        model->dit->eval();
        st.model_name = spec.model;
        st.dit = model->dit;
        st.denoiser = std::make_unique<pipeline::DiTDenoiser>(model->dit, model->prediction);
        st.info = WorkerInfo{model->name, model->source, dit_checksum(st.dit), hostname(),
                             static_cast<int32_t>(getpid()), spec.threads};
        st.requests.clear();
        return st.info;
      },
      [=](cond_atom, uint64_t id, const WireTensor& text, const WireTensor& negative,
          double guidance) -> caf::result<uint64_t> {
        auto t = from_wire(text);
        if (!t) return caf::make_error(caf::sec::invalid_argument, "text embedding: " + t.error().message);
        auto n = from_wire(negative);
        if (!n) return caf::make_error(caf::sec::invalid_argument, "negative embedding: " + n.error().message);
        if (!t->defined()) return caf::make_error(caf::sec::invalid_argument, "a request needs a text embedding");
        self->state.requests[id] = Request{{*t, *n}, guidance};
        return id;
      },
      [=](run_atom, uint64_t id, uint64_t item, int32_t kind, const WireTensor& x,
          const WireTensor& sigma) -> Reply {
        auto& st = self->state;
        if (!st.denoiser) return failed(item, "worker on " + hostname() + " has no model loaded");
        auto req = st.requests.find(id);
        if (req == st.requests.end()) return failed(item, "unknown request " + std::to_string(id));
        auto xt = from_wire(x);
        if (!xt) return failed(item, "latent: " + xt.error().message);
        auto st_sigma = from_wire(sigma);
        if (!st_sigma) return failed(item, "sigma: " + st_sigma.error().message);
        torch::NoGradGuard no_grad;
        auto out = call(st, req->second, static_cast<CallKind>(kind), *xt, *st_sigma);
        if (!out) return failed(item, out.error().message);
        auto wire = to_wire(*out);
        if (!wire) return failed(item, wire.error().message);
        return Reply{result_atom::value, item, std::move(*wire), std::string()};
      },
      [=](drop_atom, uint64_t id) { self->state.requests.erase(id); },
  };
}

}  // namespace

worker_actor spawn_worker(caf::actor_system& system, std::string default_zoo) {
  return system.spawn<caf::detached>(worker, std::move(default_zoo));
}

uint64_t weights_checksum_of(const std::string& model, const std::string& zoo) {
  auto m = models::open_model(model, zoo);
  if (!m) return 0;
  return dit_checksum(m->dit);
}

}  // namespace reel::actors
