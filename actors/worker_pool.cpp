#include "actors/worker_pool.hpp"

#include <deque>
#include <optional>

#include <caf/all.hpp>

#include "actors/wire.hpp"
#include "pipeline/guidance.hpp"

namespace reel::actors {

namespace {
using Clock = std::chrono::steady_clock;
}

struct WorkerPool::Impl {
  Impl(caf::actor_system& system, std::vector<PoolMember> m, std::chrono::milliseconds t)
      : self(system), members(std::move(m)), timeout(t), dead(members.size(), false) {
    stats.per_worker.assign(members.size(), 0);
    for (auto& member : members) self->monitor(member.handle);
  }

  caf::scoped_actor self;
  std::vector<PoolMember> members;
  std::chrono::milliseconds timeout;
  std::vector<bool> dead;
  std::vector<std::string> lost;
  PoolStats stats;
  uint64_t run_seq = 0;
  std::function<void(const std::string&, const std::string&)> on_lost;

  std::optional<size_t> member_of(const caf::actor_addr& addr) const {
    for (size_t i = 0; i < members.size(); ++i) {
      if (members[i].handle.address() == addr) return i;
    }
    return std::nullopt;
  }

  void mark_lost(size_t w, const std::string& reason) {
    if (dead[w]) return;
    dead[w] = true;
    lost.push_back(members[w].name + ": " + reason);
    if (on_lost) on_lost(members[w].name, reason);
  }

  size_t alive() const {
    size_t n = 0;
    for (bool d : dead) n += d ? 0 : 1;
    return n;
  }

  std::string describe(const caf::error& e) { return self->system().render(e); }

  // Handles down messages waiting in the mailbox, without blocking.
  void drain_down() {
    bool more = true;
    while (more) {
      self->receive([&](caf::down_msg& dm) {
        if (auto w = member_of(dm.source)) mark_lost(*w, describe(dm.reason));
      },
                    caf::after(std::chrono::seconds(0)) >> [&] { more = false; });
    }
  }
};

WorkerPool::WorkerPool(caf::actor_system& system, std::vector<PoolMember> members,
                       std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(system, std::move(members), timeout)) {}

WorkerPool::~WorkerPool() {
  // The workers were made for this pool: stop them (remote ones too).
  for (size_t i = 0; i < impl_->members.size(); ++i) {
    if (!impl_->dead[i]) impl_->self->send_exit(impl_->members[i].handle, caf::exit_reason::user_shutdown);
  }
}

size_t WorkerPool::size() const { return impl_->members.size(); }
size_t WorkerPool::alive() const { return impl_->alive(); }
const std::vector<PoolMember>& WorkerPool::members() const { return impl_->members; }
const PoolStats& WorkerPool::stats() const { return impl_->stats; }
std::vector<std::string> WorkerPool::lost() const { return impl_->lost; }
void WorkerPool::on_lost(std::function<void(const std::string&, const std::string&)> callback) {
  impl_->on_lost = std::move(callback);
}

Expected<std::vector<WorkerInfo>> WorkerPool::load(const ModelSpec& spec) {
  auto& im = *impl_;
  std::vector<WorkerInfo> infos(im.members.size());
  std::optional<Error> failure;
  for (size_t i = 0; i < im.members.size(); ++i) {
    if (im.dead[i]) continue;
    im.self->request(im.members[i].handle, caf::infinite, load_atom::value, spec)
        .receive([&](WorkerInfo& info) { infos[i] = std::move(info); },
                 [&](caf::error& e) {
                   if (!failure) {
                     failure = make_error(Errc::internal, "worker " + im.members[i].name +
                                                              " could not load '" + spec.model + "': " + im.describe(e));
                   }
                 });
  }
  if (failure) return *failure;
  for (size_t i = 1; i < infos.size(); ++i) {
    if (infos[i].weights != infos[0].weights) {
      return make_error(Errc::unsupported, "workers hold different weights for '" + spec.model + "': " +
                                               im.members[0].name + " has " + infos[0].source + ", " +
                                               im.members[i].name + " has " + infos[i].source);
    }
  }
  return infos;
}

Status WorkerPool::condition(uint64_t id, const pipeline::Conditioning& cond, double guidance) {
  auto& im = *impl_;
  auto text = to_wire(cond.text);
  if (!text) return text.error();
  auto negative = to_wire(cond.negative);
  if (!negative) return negative.error();
  im.drain_down();
  std::optional<Error> failure;
  for (size_t i = 0; i < im.members.size(); ++i) {
    if (im.dead[i]) continue;
    im.stats.sent_bytes += static_cast<int64_t>(text->bytes.size() + negative->bytes.size());
    im.self->request(im.members[i].handle, caf::infinite, cond_atom::value, id, *text, *negative, guidance)
        .receive([](uint64_t) {},
                 [&](caf::error& e) {
                   // A member that died is noticed through its down message; other errors fail.
                   if (e == caf::sec::request_receiver_down) return;
                   if (!failure) failure = make_error(Errc::internal, "worker " + im.members[i].name + ": " + im.describe(e));
                 });
  }
  if (failure) return *failure;
  im.drain_down();
  if (im.alive() == 0) return make_error(Errc::internal, "no worker is left in the pool");
  return {};
}

void WorkerPool::drop(uint64_t id) {
  auto& im = *impl_;
  for (size_t i = 0; i < im.members.size(); ++i) {
    if (!im.dead[i]) im.self->send(im.members[i].handle, drop_atom::value, id);
  }
}

Expected<std::vector<torch::Tensor>> WorkerPool::run(uint64_t id, const std::vector<PoolItem>& items) {
  auto& im = *impl_;
  const size_t n = items.size();
  std::vector<torch::Tensor> out(n);
  if (n == 0) return out;

  // Inputs are encoded once: a call re-run after a loss sends the same bytes.
  std::vector<WireTensor> xs(n), sigmas(n);
  for (size_t i = 0; i < n; ++i) {
    auto x = to_wire(items[i].x);
    if (!x) return x.error();
    auto s = to_wire(items[i].sigma);
    if (!s) return s.error();
    xs[i] = std::move(*x);
    sigmas[i] = std::move(*s);
  }

  // Tags carry the run's sequence number, so that outputs of an earlier, failed run that arrive
  // late are recognised and ignored.
  const uint64_t seq = ++im.run_seq;
  auto tag_of = [&](size_t item) { return (seq << 32) | static_cast<uint64_t>(item); };

  std::deque<size_t> queue;
  for (size_t i = 0; i < n; ++i) queue.push_back(i);
  std::vector<std::optional<size_t>> busy(im.members.size());  // item each member is running
  size_t done = 0;
  std::optional<Error> failure;

  auto dispatch = [&] {
    for (size_t w = 0; w < im.members.size() && !queue.empty(); ++w) {
      if (im.dead[w] || busy[w]) continue;
      const size_t item = queue.front();
      queue.pop_front();
      busy[w] = item;
      im.stats.sent_bytes += static_cast<int64_t>(xs[item].bytes.size() + sigmas[item].bytes.size());
      im.self->send(im.members[w].handle, run_atom::value, id, tag_of(item),
                    static_cast<int32_t>(items[item].kind), xs[item], sigmas[item]);
    }
  };
  auto lose = [&](size_t w, const std::string& reason) {
    if (im.dead[w]) return;
    im.mark_lost(w, reason);
    if (busy[w]) {
      queue.push_front(*busy[w]);
      busy[w].reset();
      ++im.stats.redispatched;
    }
  };

  const auto start = Clock::now();
  im.drain_down();
  dispatch();
  while (done < n && !failure) {
    if (im.alive() == 0) {
      std::string names;
      for (const auto& l : im.lost) names += (names.empty() ? "" : "; ") + l;
      failure = make_error(Errc::internal, "every worker was lost (" + names + ")");
      break;
    }
    bool timed_out = false;
    auto on_result = [&](result_atom, uint64_t tag, WireTensor& output, std::string& error) {
      if ((tag >> 32) != seq) return;  // a late output of an earlier run
      const size_t item = static_cast<size_t>(tag & 0xffffffffu);
      std::optional<size_t> who;
      for (size_t w = 0; w < busy.size(); ++w) {
        if (busy[w] && *busy[w] == item) who = w;
      }
      if (!who) return;  // its worker was declared lost meanwhile; the re-run counts
      busy[*who].reset();
      if (!error.empty()) {
        failure = make_error(Errc::internal, "worker " + im.members[*who].name + ": " + error);
        return;
      }
      auto t = from_wire(output);
      if (!t) {
        failure = make_error(t.error().code, "output of worker " + im.members[*who].name + ": " + t.error().message);
        return;
      }
      im.stats.received_bytes += static_cast<int64_t>(output.bytes.size());
      ++im.stats.per_worker[*who];
      ++im.stats.calls;
      out[item] = std::move(*t);
      ++done;
      dispatch();
    };
    auto on_down = [&](caf::down_msg& dm) {
      if (auto w = im.member_of(dm.source)) {
        lose(*w, im.describe(dm.reason));
        dispatch();
      }
    };
    if (im.timeout.count() > 0) {
      im.self->receive(on_result, on_down, caf::after(im.timeout) >> [&] { timed_out = true; });
    } else {
      im.self->receive(on_result, on_down);
    }
    if (timed_out) {
      failure = make_error(Errc::internal, "no worker answered within " + std::to_string(im.timeout.count()) + " ms");
    }
  }
  im.stats.wait_seconds += std::chrono::duration<double>(Clock::now() - start).count();
  if (failure) return *failure;
  return out;
}

PoolDenoiser::PoolDenoiser(WorkerPool& pool, uint64_t id, models::Prediction prediction, bool cfg_parallel,
                           double guidance)
    : pool_(pool), id_(id), prediction_(prediction), cfg_parallel_(cfg_parallel), guidance_(guidance) {}

Expected<torch::Tensor> PoolDenoiser::denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                              const torch::Tensor& /*text: the workers hold it*/) {
  if (!cfg_parallel_) {
    auto out = pool_.run(id_, {PoolItem{x, sigma, CallKind::guided}});
    if (!out) return out.error();
    return std::move((*out)[0]);
  }
  auto out = pool_.run(id_, {PoolItem{x, sigma, CallKind::text}, PoolItem{x, sigma, CallKind::negative}});
  if (!out) return out.error();
  try {
    const torch::Tensor& conditional = (*out)[0];
    const torch::Tensor& unconditional = (*out)[1];
    return unconditional + (conditional - unconditional) * guidance_;
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("combining guidance failed: ") + e.what());
  }
}

Expected<std::vector<torch::Tensor>> PoolWindowRunner::run(const std::vector<pipeline::FifoWindow>& windows) {
  std::vector<PoolItem> items;
  items.reserve(windows.size());
  for (const auto& w : windows) items.push_back(PoolItem{w.x, w.sigma, CallKind::guided});
  return pool_.run(id_, items);
}

Expected<std::vector<torch::Tensor>> PoolClipRunner::run(const std::vector<pipeline::ClipWindow>& windows) {
  std::vector<PoolItem> items;
  items.reserve(windows.size());
  for (const auto& w : windows) items.push_back(PoolItem{w.x, w.sigma, CallKind::guided});
  return pool_.run(id_, items);
}

Expected<pipeline::SampleResult> sample_on_pool(WorkerPool& pool, uint64_t id, models::Prediction prediction,
                                                const pipeline::Conditioning& cond,
                                                std::vector<int64_t> latent_shape,
                                                const pipeline::SampleOptions& options, bool cfg_parallel,
                                                pipeline::StepCallback on_step) {
  REEL_RETURN_IF_ERROR(pool.condition(id, cond, options.guidance));
  const bool guided = pipeline::uses_guidance(cond, options.guidance);
  PoolDenoiser denoiser(pool, id, prediction, cfg_parallel && guided, options.guidance);
  // Guidance happens on the workers: locally the model looks unguided.
  auto result = pipeline::sample(denoiser, pipeline::Conditioning{cond.text, {}}, std::move(latent_shape),
                                 options, std::move(on_step));
  pool.drop(id);
  return result;
}

}  // namespace reel::actors
