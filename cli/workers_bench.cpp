#include "cli/workers_bench.hpp"

#include "base/durable.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <caf/all.hpp>

#include "actors/node.hpp"
#include "actors/node_process.hpp"
#include "actors/wire.hpp"
#include "actors/worker_pool.hpp"
#include "bench/ceiling.hpp"
#include "cli/commands.hpp"
#include "models/zoo.hpp"

namespace reel::cli {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
Error usage(const std::string& m) { return make_error(Errc::invalid_argument, m); }

struct Setup {
  caf::actor_system& system;
  models::T2VModel& model;
  pipeline::Conditioning cond;
  actors::ModelSpec spec;
  const WorkersBenchArgs& args;
};

// A pool of `k` local workers of one thread each, loaded and conditioned.
Expected<std::unique_ptr<actors::WorkerPool>> make_pool(Setup& s, int k, uint64_t id) {
  auto node = actors::spawn_node(s.system, s.spec.zoo);
  auto members = actors::request_workers(s.system, node, "local", k);
  if (!members) return members.error();
  auto pool = std::make_unique<actors::WorkerPool>(s.system, std::move(*members));
  if (auto infos = pool->load(s.spec); !infos) return infos.error();
  REEL_RETURN_IF_ERROR(pool->condition(id, s.cond, s.model.defaults.guidance));
  return pool;
}

struct Timed {
  double seconds = 0;
  std::vector<torch::Tensor> out;
};

Expected<Timed> time_fifo(Setup& s, int k) {
  const auto& c = s.model.dit->config();
  pipeline::FifoOptions fo;
  fo.window_frames = s.model.defaults.frames;
  fo.lookahead = true;
  fo.batch_windows = false;
  fo.steps = (s.model.defaults.steps + fo.window_frames - 1) / fo.window_frames * fo.window_frames;
  fo.shift = s.model.defaults.shift;
  fo.solver = s.model.defaults.solver;
  fo.guidance = s.model.defaults.guidance;
  fo.seed = s.args.seed;
  const torch::Tensor clip = pipeline::make_noise(
      {1, c.in_channels, fo.window_frames, s.model.defaults.height / s.model.spatial_compression,
       s.model.defaults.width / s.model.spatial_compression},
      s.args.seed + 1);
  auto pool = make_pool(s, k, 1);
  if (!pool) return pool.error();
  Timed best;
  best.seconds = 1e30;
  for (int r = 0; r < s.args.repeats; ++r) {
    actors::PoolWindowRunner runner(**pool, 1, s.model.prediction);
    auto queue = pipeline::FifoQueue::from_clip(clip, fo);
    if (!queue) return queue.error();
    Timed t;
    const auto t0 = Clock::now();
    auto stats = queue->run(runner, s.args.fifo_frames, [&](int64_t, const torch::Tensor& f) -> Status {
      t.out.push_back(f.clone());
      return {};
    });
    t.seconds = since(t0);
    if (!stats) return stats.error();
    if (t.seconds < best.seconds) best = std::move(t);
  }
  return best;
}

Expected<Timed> time_clips(Setup& s, int k) {
  const auto& c = s.model.dit->config();
  pipeline::ClipsOptions co;
  co.clips = s.args.clips;
  co.batch_clips = false;
  co.steps = s.model.defaults.steps;
  co.shift = s.model.defaults.shift;
  co.solver = s.model.defaults.solver;
  co.guidance = s.model.defaults.guidance;
  co.seed = s.args.seed;
  const std::vector<int64_t> shape{1, c.in_channels, s.args.clip_frames,
                                   s.model.defaults.height / s.model.spatial_compression,
                                   s.model.defaults.width / s.model.spatial_compression};
  auto pool = make_pool(s, k, 2);
  if (!pool) return pool.error();
  Timed best;
  best.seconds = 1e30;
  for (int r = 0; r < s.args.repeats; ++r) {
    actors::PoolClipRunner runner(**pool, 2, s.model.prediction);
    auto clips = pipeline::VideoClips::start(shape, co);
    if (!clips) return clips.error();
    const auto t0 = Clock::now();
    auto result = clips->run(runner, {});
    Timed t{since(t0), {}};
    if (!result) return result.error();
    t.out.push_back(result->latent);
    if (t.seconds < best.seconds) best = std::move(t);
  }
  return best;
}

Expected<Timed> time_cfg(Setup& s, bool parallel) {
  const auto& c = s.model.dit->config();
  pipeline::SampleOptions o;
  o.steps = s.model.defaults.steps;
  o.shift = s.model.defaults.shift;
  o.solver = s.model.defaults.solver;
  o.guidance = s.model.defaults.guidance;
  o.seed = s.args.seed;
  const std::vector<int64_t> shape{1, c.in_channels, s.model.defaults.frames,
                                   s.model.defaults.height / s.model.spatial_compression,
                                   s.model.defaults.width / s.model.spatial_compression};
  auto pool = make_pool(s, parallel ? 2 : 1, 3);
  if (!pool) return pool.error();
  Timed best;
  best.seconds = 1e30;
  for (int r = 0; r < s.args.repeats; ++r) {
    const auto t0 = Clock::now();
    auto result = actors::sample_on_pool(**pool, 3, s.model.prediction, s.cond, shape, o, parallel);
    Timed t{since(t0), {}};
    if (!result) return result.error();
    t.out.push_back(result->latent);
    if (t.seconds < best.seconds) best = std::move(t);
  }
  return best;
}

bool identical(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

double max_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

// Plain TCP over loopback: a reader thread drains `total` bytes sent in `chunk` writes. MB/s.
Expected<double> loopback_tcp_mbs(size_t total, size_t chunk) {
  const int server = socket(AF_INET, SOCK_STREAM, 0);
  if (server < 0) return make_error(Errc::io_error, "socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(server, 1) != 0 ||
      getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(server);
    return make_error(Errc::io_error, "cannot listen on loopback");
  }
  std::thread reader([&] {
    const int c = accept(server, nullptr, nullptr);
    std::vector<char> buf(1 << 20);
    size_t got = 0;
    while (got < total) {
      const ssize_t r = read(c, buf.data(), buf.size());
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    const char ack = 1;
    if (write(c, &ack, 1) != 1) {}
    close(c);
  });
  const int client = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(client);
    close(server);
    reader.join();
    return make_error(Errc::io_error, "cannot connect on loopback");
  }
  std::string data(chunk, 'r');
  const auto t0 = Clock::now();
  size_t sent = 0;
  while (sent < total) {
    const size_t n = std::min(chunk, total - sent);
    size_t off = 0;
    while (off < n) {
      const ssize_t w = write(client, data.data() + off, n - off);
      if (w <= 0) break;
      off += static_cast<size_t>(w);
    }
    sent += n;
  }
  char ack = 0;
  if (read(client, &ack, 1) != 1) {}
  const double secs = since(t0);
  close(client);
  reader.join();
  close(server);
  return static_cast<double>(total) / secs / 1e6;
}

// Tensors to a `reel node` process through the middleman, four in flight; the node checks each
// tensor's checksums before it answers. MB/s of tensor bytes.
Expected<double> middleman_mbs(caf::actor_system& system, const std::string& reel, size_t total, size_t tensor_bytes) {
  auto proc = actors::NodeProcess::start(reel, "");
  if (!proc) return proc.error();
  auto node = actors::connect_node(system, proc->address());
  if (!node) return node.error();
  const int64_t floats = static_cast<int64_t>(tensor_bytes / 4);
  auto wire = actors::to_wire(torch::randn({floats}));
  if (!wire) return wire.error();
  const size_t count = std::max<size_t>(1, total / wire->bytes.size());
  caf::scoped_actor self{system};
  // One warm-up round trip opens the connection's buffers.
  bool failed = false;
  self->request(*node, caf::infinite, actors::sink_atom::value, *wire).receive([](uint64_t) {}, [&](caf::error&) { failed = true; });
  if (failed) return make_error(Errc::io_error, "the node refused a tensor");
  const auto t0 = Clock::now();
  size_t sent = 0, answered = 0;
  uint64_t bytes = 0;
  constexpr size_t kInFlight = 4;
  while (sent < std::min(count, kInFlight)) {
    self->send(*node, actors::sink_atom::value, *wire);
    ++sent;
  }
  while (answered < count && !failed) {
    self->receive([&](uint64_t n) {
      bytes += n;
      ++answered;
      if (sent < count) {
        self->send(*node, actors::sink_atom::value, *wire);
        ++sent;
      }
    },
                  [&](caf::error&) { failed = true; }, caf::after(std::chrono::seconds(60)) >> [&] { failed = true; });
  }
  const double secs = since(t0);
  if (failed) return make_error(Errc::io_error, "tensor transfer to the node failed");
  return static_cast<double>(bytes) / secs / 1e6;
}

std::string self_exe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("reel") : p.string();
}

}  // namespace

CLI::App* add_bench_workers(CLI::App* bench, WorkersBenchArgs& a) {
  auto* sub = bench->add_subcommand("workers", "FIFO, clips and CFG over worker actors; tensor throughput between processes");
  sub->add_option("--model,-m", a.model, "zoo name or .safetensors path")->capture_default_str();
  sub->add_option("--workers,-k", a.workers, "K: workers of one thread each")->capture_default_str();
  sub->add_option("--fifo-frames", a.fifo_frames, "frames of the FIFO video")->capture_default_str();
  sub->add_option("--clip-frames", a.clip_frames, "frames of the clips video")->capture_default_str();
  sub->add_option("--clips", a.clips, "clips of the clips video")->capture_default_str();
  sub->add_option("--repeats", a.repeats, "timed runs per configuration (best kept)")->capture_default_str();
  sub->add_option("--transfer-mb", a.transfer_mb, "MB sent in the data-plane test")->capture_default_str();
  sub->add_option("--tensor-mb", a.tensor_mb, "MB per tensor in the data-plane test")->capture_default_str();
  sub->add_option("--parts", a.parts, "comma-separated: fifo, clips, cfg, transfer")->capture_default_str();
  sub->add_option("--seed", a.seed, "noise seed")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--json", a.json, "where to write the JSON ('' = nowhere)")->capture_default_str();
  return sub;
}

int run_bench_workers(const WorkersBenchArgs& in, const Config& cfg) {
  WorkersBenchArgs a = in;
  if (a.zoo.empty()) a.zoo = cfg.zoo;
  if (a.workers < 2) return report(usage("--workers must be at least 2"));
  if (a.repeats < 1) return report(usage("--repeats must be at least 1"));
  if (a.transfer_mb <= 0 || a.tensor_mb <= 0 || a.tensor_mb > 512) return report(usage("--transfer-mb and --tensor-mb must be positive (tensor at most 512 MB)"));
  auto wants = [&](const std::string& part) { return ("," + a.parts + ",").find("," + part + ",") != std::string::npos; };
  {
    std::stringstream ss(a.parts);
    std::string part;
    while (std::getline(ss, part, ','))
      if (part != "fifo" && part != "clips" && part != "cfg" && part != "transfer")
        return report(usage("--parts: unknown part '" + part + "' (fifo, clips, cfg, transfer)"));
  }

  auto model = models::open_model(a.model, a.zoo);
  if (!model) return report(model.error());
  torch::NoGradGuard no_grad;
  auto text = model->text_encoder->encode({"a red circle on a blue background"});
  if (!text) return report(text.error());

  caf::actor_system_config ccfg;
  actors::configure(ccfg);
  caf::actor_system system{ccfg};
  Setup s{system, *model, {*text, torch::zeros_like(*text)}, actors::ModelSpec{a.model, a.zoo, 1}, a};

  nlohmann::json out{{"benchmark", "workers"}, {"model", model->name}, {"workers", a.workers},
                     {"cores", std::thread::hardware_concurrency()}};
  at::set_num_threads(1);
  const double sgemm = bench::sgemm_gflops(512, 5);
  out["sgemm_gflops_1thread"] = sgemm;
  // What K one-thread workers can get from this machine right now: K threads multiplying at
  // once against one. A speedup is read against this, not against K.
  const double concurrent = bench::concurrent_sgemm_gflops(a.workers, 512) / bench::concurrent_sgemm_gflops(1, 512);
  out["concurrency_ceiling"] = concurrent;
  std::printf("reel bench workers: %s, K = %d workers of 1 thread; %u cores; sgemm 512^3 on 1 thread %.1f GFLOP/s; "
              "%d threads at once %.2fx one\n",
              model->name.c_str(), a.workers, std::thread::hardware_concurrency(), sgemm, a.workers, concurrent);
  std::printf("%-10s %10s %10s %9s  %s\n", "part", "1 worker", "K workers", "speedup", "result");

  auto row = [&](const char* name, const Expected<Timed>& one, const Expected<Timed>& many, bool exact) -> Status {
    if (!one) return one.error();
    if (!many) return many.error();
    const double speedup = one->seconds / many->seconds;
    const bool same = identical(one->out, many->out);
    const double diff = max_diff(one->out, many->out);
    std::printf("%-10s %9.2fs %9.2fs %8.2fx  %s\n", name, one->seconds, many->seconds, speedup,
                same ? "identical" : ("max |diff| " + std::to_string(diff)).c_str());
    out[name] = {{"one_seconds", one->seconds}, {"k_seconds", many->seconds}, {"speedup", speedup},
                 {"identical", same}, {"max_abs_diff", diff}, {"ceiling", exact ? a.workers : 2}};
    return {};
  };
  if (wants("fifo")) {
    auto one = time_fifo(s, 1);
    auto many = time_fifo(s, a.workers);
    if (auto st = row("fifo", one, many, true); !st) return report(st.error());
  }
  if (wants("clips")) {
    auto one = time_clips(s, 1);
    auto many = time_clips(s, a.workers);
    if (auto st = row("clips", one, many, true); !st) return report(st.error());
  }
  if (wants("cfg")) {
    auto one = time_cfg(s, false);
    auto many = time_cfg(s, true);
    if (auto st = row("cfg", one, many, false); !st) return report(st.error());
  }
  if (wants("transfer")) {
    const size_t total = static_cast<size_t>(a.transfer_mb * 1e6);
    const size_t chunk = static_cast<size_t>(a.tensor_mb * 1e6);
    auto tcp = loopback_tcp_mbs(total, chunk);
    if (!tcp) return report(tcp.error());
    auto mm = middleman_mbs(system, self_exe(), total, chunk);
    if (!mm) return report(mm.error());
    std::printf("transfer   %.0f MB in %.1f MB tensors: middleman to a node process %.0f MB/s, plain loopback TCP %.0f MB/s: %.2f\n",
                a.transfer_mb, a.tensor_mb, *mm, *tcp, *mm / *tcp);
    out["transfer"] = {{"mb", a.transfer_mb}, {"tensor_mb", a.tensor_mb}, {"middleman_mbs", *mm},
                       {"tcp_mbs", *tcp}, {"ratio", *mm / *tcp}};
  }
  if (!a.json.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(a.json).parent_path(), ec);
    if (auto st = write_file_atomic(a.json, out.dump(1) + "\n"); !st) return report(st.error());
    std::printf("wrote %s\n", a.json.c_str());
  }
  const double after = bench::concurrent_sgemm_gflops(a.workers, 512) / bench::concurrent_sgemm_gflops(1, 512);
  std::printf("%d threads at once after the runs: %.2fx one (before: %.2fx)\n", a.workers, after, concurrent);
  return kExitOk;
}

}  // namespace reel::cli
