#include "bench/serve_bench.hpp"

#include <signal.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/ceiling.hpp"
#include "cluster/http_client.hpp"

namespace reel::bench {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::string kPrompt = "a large red circle moving right on a striped navy background";

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Starts argv[0] with its stdout on a pipe (stderr dropped, OpenMP threads that sleep when idle):
// the child's pid and the pipe's reading end; pid -1 when it cannot be started.
std::pair<pid_t, int> spawn(const std::vector<std::string>& args) {
  int out[2];
  if (::pipe(out) != 0) return {-1, -1};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    ::close(out[0]);
    ::setenv("OMP_WAIT_POLICY", "passive", 1);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  if (pid < 0) ::close(out[0]);
  return {pid, pid < 0 ? -1 : out[0]};
}

// Runs argv to its end: the exit code and what it printed on stdout.
std::pair<int, std::string> run_process(const std::vector<std::string>& args) {
  auto [pid, out] = spawn(args);
  if (pid < 0) return {-1, ""};
  std::string text;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(out, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  ::close(out);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

// The job time `reel generate` reports in its summary ("... in 12.3 s; ..." or "in 2 min 05 s"):
// the run without the process's start (loading LibTorch and the rest).
std::optional<double> reported_seconds(const std::string& summary) {
  const size_t at = summary.find(" in ");
  if (at == std::string::npos) return std::nullopt;
  double a = 0, b = 0;
  char unit[8] = {0};
  if (std::sscanf(summary.c_str() + at + 4, "%lf min %lf s", &a, &b) == 2) return a * 60 + b;
  if (std::sscanf(summary.c_str() + at + 4, "%lf %7s", &a, unit) == 2 && unit[0] == 's') return a;
  return std::nullopt;
}

// A `reel serve` child.
class Server {
 public:
  static Expected<Server> start(const ServeBenchOptions& o, const fs::path& data) {
    auto [pid, out] = spawn({o.reel, "serve", "--listen", "127.0.0.1:0", "--data", data.string(), "--threads",
                             std::to_string(o.threads), "--no-cache", "-q"});
    if (pid < 0) return make_error(Errc::io_error, "cannot start " + o.reel);
    std::string line;
    char c = 0;
    while (::read(out, &c, 1) == 1 && c != '\n') line.push_back(c);
    ::close(out);
    Server s;
    s.pid_ = pid;
    const std::string marker = "http://";
    const size_t at = line.find(marker);
    if (at == std::string::npos) {
      s.kill(SIGKILL);
      return make_error(Errc::io_error, "reel serve did not start: '" + line + "'");
    }
    s.url_ = line.substr(at, line.find(' ', at) - at);
    return s;
  }
  Server() = default;
  Server(Server&& o) noexcept : pid_(o.pid_), url_(std::move(o.url_)) { o.pid_ = -1; }
  ~Server() { kill(SIGTERM); }
  void kill(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  const std::string& url() const { return url_; }

 private:
  pid_t pid_ = -1;
  std::string url_;
};

Expected<json> request(const std::string& method, const std::string& url, const std::string& body = "") {
  cluster::HttpCall c;
  c.method = method;
  c.url = url;
  c.body = body;
  c.timeout = std::chrono::minutes(10);
  auto r = cluster::http_call(c);
  if (!r) return r.error();
  json j = json::parse(r->body, nullptr, false);
  if (r->status != 200 || j.is_discarded())
    return make_error(Errc::internal, method + " " + url + ": " + std::to_string(r->status) + " " + r->body);
  return j;
}

// POSTs a job and follows its events to the end: the video object and the seconds it took.
Expected<std::pair<json, double>> serve_job(const Server& s, const json& fields) {
  const auto t0 = Clock::now();
  auto created = request("POST", s.url() + "/v1/videos", fields.dump());
  if (!created) return created.error();
  const std::string id = (*created)["id"];
  cluster::HttpCall c;
  c.url = s.url() + "/v1/videos/" + id + "/events";
  c.timeout = std::chrono::minutes(10);
  json last;
  std::string buffer;
  auto streamed = cluster::http_stream(c, [&](std::string_view piece) {
    buffer.append(piece);
    size_t at = 0;
    while ((at = buffer.find("\n\n")) != std::string::npos) {
      const std::string event = buffer.substr(0, at);
      buffer.erase(0, at + 2);
      const size_t data = event.find("data: ");
      if (data != std::string::npos) last = json::parse(event.substr(data + 6), nullptr, false);
    }
    return true;
  });
  const double seconds = since(t0);
  if (!streamed) return streamed.error();
  if (last.is_discarded() || last.value("status", "") != "completed")
    return make_error(Errc::internal, id + " did not complete: " + last.dump());
  return std::make_pair(last, seconds);
}

Expected<json> wait_completed(const Server& s, const std::string& id) {
  for (;;) {
    auto v = request("GET", s.url() + "/v1/videos/" + id);
    if (!v) return v.error();
    const std::string status = (*v)["status"];
    if (status == "completed") return v;
    if (status == "failed" || status == "cancelled") return make_error(Errc::internal, id + " " + status + ": " + v->dump());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

Status run_serve_bench(const ServeBenchOptions& o) {
  const fs::path dir = fs::temp_directory_path() / ("reel-bench-serve-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  std::printf("reel bench serve: %d threads, %d repeats, model %s\n", o.threads, o.repeats,
              o.model.empty() ? "(default)" : o.model.c_str());
  const double gflops = sgemm_gflops();
  std::printf("machine: sgemm %.1f GFLOP/s with these threads\n\n", gflops);

  // ---- 1. overhead ----
  struct Job {
    const char* name;
    json fields;
    std::vector<std::string> generate;  // the same job's `reel generate` flags
  };
  auto base_fields = [&](json j) {
    j["prompt"] = kPrompt;
    j["seed"] = 1;
    j["cache"] = false;
    if (!o.model.empty()) j["model"] = o.model;
    return j;
  };
  std::vector<std::string> common{"--seed", "1", "--threads", std::to_string(o.threads), "-q"};
  if (!o.model.empty()) common.insert(common.end(), {"--model", o.model});
  json standard_fields = base_fields(json{{"mode", "standard"}});
  standard_fields["num_inference_steps"] = o.standard_steps;
  json fifo_fields = base_fields(json{{"mode", "fifo"}, {"num_frames", o.fifo_frames}});
  if (o.steps > 0) fifo_fields["num_inference_steps"] = o.steps;
  std::vector<std::string> fifo_flags{"--mode", "fifo", "--frames", std::to_string(o.fifo_frames)};
  if (o.steps > 0) fifo_flags.insert(fifo_flags.end(), {"--steps", std::to_string(o.steps)});
  std::vector<Job> jobs{
      {"standard", standard_fields, {"--mode", "standard", "--steps", std::to_string(o.standard_steps)}},
      {"fifo", fifo_fields, fifo_flags},
  };
  auto server = Server::start(o, dir / "data");
  if (!server) return server.error();
  json out{{"threads", o.threads}, {"repeats", o.repeats}, {"sgemm_gflops", gflops}, {"overhead", json::array()}};
  std::printf("served: POST to the final event; generate: the time it reports (its run, the model's loading\n"
              "included), and its whole process (LibTorch's start too); overhead: served against reported\n\n");
  std::printf("%-10s %7s %7s %10s %12s %12s %10s\n", "job", "frames", "steps", "served s", "generate s", "process s",
              "overhead");
  for (const auto& job : jobs) {
    std::vector<double> served, local, reported;
    int frames = 0, steps = 0;
    for (int r = 0; r < o.repeats; ++r) {
      std::vector<std::string> args{o.reel, "generate", kPrompt, "-o", (dir / "local.mp4").string()};
      args.insert(args.end(), common.begin(), common.end());
      args.insert(args.end(), job.generate.begin(), job.generate.end());
      const auto t0 = Clock::now();
      auto [code, printed] = run_process(args);
      if (code != 0)
        return make_error(Errc::internal, "reel generate (" + std::string(job.name) + ") exited " + std::to_string(code));
      local.push_back(since(t0));
      auto own = reported_seconds(printed);
      if (!own) return make_error(Errc::internal, "reel generate printed no time: " + printed);
      reported.push_back(*own);
      auto s = serve_job(*server, job.fields);
      if (!s) return s.error();
      served.push_back(s->second);
      frames = s->first["frames"];
      steps = s->first["num_inference_steps"];
      // The served video stays in the data folder: delete it so the folder does not grow.
      (void)request("DELETE", server->url() + "/v1/videos/" + s->first["id"].get<std::string>());
    }
    const double ms = median(served), ml = median(local), mr = median(reported);
    const double overhead = 100.0 * (ms - mr) / mr;
    std::printf("%-10s %7d %7d %10.2f %12.2f %12.2f %9.1f%%\n", job.name, frames, steps, ms, mr, ml, overhead);
    out["overhead"].push_back(json{{"job", job.name},
                                   {"frames", frames},
                                   {"steps", steps},
                                   {"served_seconds", served},
                                   {"generate_reported_seconds", reported},
                                   {"generate_process_seconds", local},
                                   {"served_median", ms},
                                   {"generate_reported_median", mr},
                                   {"generate_process_median", ml},
                                   {"overhead_percent", overhead}});
  }

  // ---- 2. cancellation ----
  {
    auto created = request("POST", server->url() + "/v1/videos",
                           base_fields(json{{"mode", "fifo"}, {"num_frames", 100000}}).dump());
    if (!created) return created.error();
    const std::string id = (*created)["id"];
    std::optional<std::pair<Clock::time_point, int>> first;
    double frame_seconds = 0;
    for (;;) {
      auto v = request("GET", server->url() + "/v1/videos/" + id);
      if (!v) return v.error();
      const int done = (*v)["frames_done"];
      if (done >= 4 && !first) first = std::make_pair(Clock::now(), done);
      if (first && done >= first->second + 16) {
        frame_seconds = since(first->first) / (done - first->second);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto t0 = Clock::now();
    auto deleted = request("DELETE", server->url() + "/v1/videos/" + id);
    const double delete_seconds = since(t0);
    if (!deleted) return deleted.error();
    const bool met = delete_seconds <= frame_seconds + 0.1;
    std::printf("\ncancel a running FIFO job: DELETE answered in %.0f ms (the job had stopped); a frame takes %.0f ms; "
                "target <= frame + 100 ms: %s\n",
                delete_seconds * 1000, frame_seconds * 1000, met ? "met" : "not met");
    out["cancel"] = json{{"delete_ms", delete_seconds * 1000}, {"frame_ms", frame_seconds * 1000}, {"met", met}};
  }
  server->kill(SIGTERM);

  // ---- 3. kill -9 and restart ----
  {
    const fs::path data = dir / "crash";
    std::vector<json> specs{base_fields(json{{"mode", "fifo"}, {"num_frames", o.fifo_frames}}),
                            base_fields(json{{"mode", "fifo"}, {"num_frames", o.fifo_frames / 2}, {"seed", 2}}),
                            base_fields(json{{"mode", "standard"}, {"seed", 3}})};
    std::vector<std::string> ids;
    int done_at_kill = 0;
    {
      auto s = Server::start(o, data);
      if (!s) return s.error();
      for (const auto& spec : specs) {
        auto v = request("POST", s->url() + "/v1/videos", spec.dump());
        if (!v) return v.error();
        ids.push_back((*v)["id"]);
      }
      for (;;) {  // killed a third of the way into the first job
        auto v = request("GET", s->url() + "/v1/videos/" + ids[0]);
        if (!v) return v.error();
        done_at_kill = (*v)["frames_done"];
        if (done_at_kill >= o.fifo_frames / 3) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      s->kill(SIGKILL);
    }
    auto s = Server::start(o, data);
    if (!s) return s.error();
    int completed = 0;
    int64_t resumed = 0;
    for (const auto& id : ids) {
      auto v = wait_completed(*s, id);
      if (!v) {
        std::printf("  %s: %s\n", id.c_str(), v.error().message.c_str());
        continue;
      }
      ++completed;
      if (id == ids[0]) resumed = (*v)["resumed_frames"];
    }
    const int64_t redone = done_at_kill - resumed;
    std::printf("\nkill -9 with %zu jobs accepted (the first %d frames into a %d-frame FIFO job), then a restart:\n"
                "  jobs completed / accepted: %d / %zu (%.0f%%); the FIFO job went on from frame %lld "
                "(its checkpoint), so %lld frames were made twice\n",
                ids.size(), done_at_kill, o.fifo_frames, completed, ids.size(), 100.0 * completed / ids.size(),
                static_cast<long long>(resumed), static_cast<long long>(redone));
    out["crash"] = json{{"accepted", ids.size()},       {"completed", completed}, {"frames_done_at_kill", done_at_kill},
                        {"resumed_from_frame", resumed}, {"frames_redone", redone}};
  }

  if (!o.json.empty()) {
    std::error_code ec;
    if (fs::path(o.json).has_parent_path()) fs::create_directories(fs::path(o.json).parent_path(), ec);
    std::ofstream f(o.json);
    if (!f) return make_error(Errc::invalid_argument, "cannot write " + o.json);
    f << out.dump(2) << "\n";
    std::printf("wrote %s\n", o.json.c_str());
  }
  return {};
}

}  // namespace reel::bench
