#include "cluster/video_api.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <torch/torch.h>

#include "models/zoo.hpp"
#include "video/image.hpp"
#include "video/mp4_reader.hpp"

namespace reel::cluster {

namespace fs = std::filesystem;
using json = nlohmann::json;
using actors::JobRecord;
using actors::JobSpec;
using actors::JobState;

std::string video_id(uint64_t id) { return "video_" + std::to_string(id); }

std::optional<uint64_t> parse_video_id(const std::string& text) {
  const std::string prefix = "video_";
  if (text.rfind(prefix, 0) != 0 || text.size() == prefix.size() || text.size() > prefix.size() + 19) return std::nullopt;
  uint64_t id = 0;
  for (size_t i = prefix.size(); i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    id = id * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  return id;
}

Expected<SizePlan> plan_size(int width, int height, int model_w, int model_h, int cell_w, int cell_h) {
  std::optional<SizePlan> best;
  const double own = static_cast<double>(model_w) * model_h;
  auto distance = [own](const SizePlan& p) { return std::abs(std::log(static_cast<double>(p.width) * p.height / own)); };
  for (int f = 1; f <= 16; ++f) {
    if (width % f != 0 || height % f != 0) continue;
    SizePlan p{width / f, height / f, f};
    if (p.width % cell_w != 0 || p.height % cell_h != 0) continue;
    if (!best || distance(p) <= distance(*best)) best = p;
  }
  if (best) return *best;
  std::string sizes;
  for (int f : {1, 2, 4, 8}) sizes += (sizes.empty() ? "" : ", ") + std::to_string(model_w * f) + "x" + std::to_string(model_h * f);
  return make_error(Errc::invalid_argument,
                    "size " + std::to_string(width) + "x" + std::to_string(height) +
                        " cannot be made: the model's frames are multiples of " + std::to_string(cell_w) + "x" +
                        std::to_string(cell_h) + ", upscaled by a whole factor of 1 to 16; for example " + sizes);
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kCallTimeout = std::chrono::seconds(30);

// ---- replies ---------------------------------------------------------------------------------

HttpResponse json_response(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

// An error in OpenAI's shape.
HttpResponse api_error(int status, const std::string& message, const std::string& param = "",
                       const std::string& code = "") {
  const char* type = status == 401 ? "authentication_error"
                     : status == 404 ? "not_found_error"
                     : status == 429 ? "rate_limit_error"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  json e{{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return json_response(status, json{{"error", e}});
}

HttpAnswer answer(HttpResponse r) { return HttpAnswer{std::move(r), {}}; }

// A request's problem: a status and a message, with the field it is about.
struct Refusal {
  int status = 400;
  std::string message;
  std::string param;
  std::string code;
};

HttpAnswer refuse(const Refusal& r) { return answer(api_error(r.status, r.message, r.param, r.code)); }

// ---- request bodies --------------------------------------------------------------------------

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(std::string_view s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string_view::npos) return {};
  const size_t b = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(a, b - a + 1));
}

// The value of `name=` in a header such as `form-data; name="prompt"` ("" when absent).
std::string header_param(const std::string& header, const std::string& name) {
  size_t pos = 0;
  while ((pos = header.find(';', pos)) != std::string::npos) {
    ++pos;
    const size_t eq = header.find('=', pos);
    if (eq == std::string::npos) break;
    if (lower(trim(std::string_view(header).substr(pos, eq - pos))) != name) continue;
    std::string value = header.substr(eq + 1);
    const size_t end = value.find(';');
    if (value.size() > 0 && trim(value).front() == '"') {
      value = trim(value);
      const size_t close = value.find('"', 1);
      return value.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    }
    return trim(value.substr(0, end));
  }
  return {};
}

// multipart/form-data fields as strings. A file part is refused (reel takes no reference images).
Expected<json> parse_multipart(const std::string& body, const std::string& content_type) {
  const std::string boundary = header_param(content_type, "boundary");
  if (boundary.empty()) return make_error(Errc::invalid_argument, "multipart/form-data without a boundary");
  const std::string delimiter = "--" + boundary;
  json out = json::object();
  size_t pos = body.find(delimiter);
  if (pos == std::string::npos) return make_error(Errc::invalid_argument, "multipart body without its boundary");
  for (;;) {
    pos += delimiter.size();
    if (body.compare(pos, 2, "--") == 0) break;  // the closing delimiter
    if (body.compare(pos, 2, "\r\n") != 0) return make_error(Errc::invalid_argument, "malformed multipart body");
    pos += 2;
    const size_t head_end = body.find("\r\n\r\n", pos);
    if (head_end == std::string::npos) return make_error(Errc::invalid_argument, "malformed multipart part headers");
    std::string name, filename;
    bool disposition = false;
    for (size_t line = pos; line < head_end;) {
      size_t eol = body.find("\r\n", line);
      if (eol == std::string::npos || eol > head_end) eol = head_end;
      const std::string header = body.substr(line, eol - line);
      const size_t colon = header.find(':');
      if (colon != std::string::npos && lower(trim(header.substr(0, colon))) == "content-disposition") {
        disposition = true;
        name = header_param(header, "name");
        filename = header_param(header, "filename");
      }
      line = eol + 2;
    }
    const size_t data = head_end + 4;
    const size_t next = body.find("\r\n" + delimiter, data);
    if (next == std::string::npos) return make_error(Errc::invalid_argument, "multipart body is cut short");
    if (!disposition || name.empty()) return make_error(Errc::invalid_argument, "a multipart part has no field name");
    if (!filename.empty())
      return make_error(Errc::invalid_argument, "field '" + name + "': files are not accepted (reel makes videos from text)");
    out[name] = body.substr(data, next - data);
    pos = next + 2;
  }
  return out;
}

Expected<json> parse_fields(const HttpRequest& request) {
  auto it = request.headers.find("content-type");
  const std::string type = it == request.headers.end() ? "" : lower(it->second);
  if (type.rfind("multipart/form-data", 0) == 0) return parse_multipart(request.body, it->second);
  // curl -d sends JSON labelled as a form: a body that starts as an object is read as JSON.
  const bool looks_json = trim(request.body.substr(0, 16)).rfind('{', 0) == 0;
  if (type.rfind("application/x-www-form-urlencoded", 0) == 0 && !looks_json) return json(parse_query(request.body));
  if (type.empty() || type.rfind("application/json", 0) == 0 || looks_json) {
    json j = json::parse(request.body, nullptr, false);
    if (j.is_discarded()) return make_error(Errc::invalid_argument, "the request body is not valid JSON");
    if (!j.is_object()) return make_error(Errc::invalid_argument, "the request body must be a JSON object");
    return j;
  }
  return make_error(Errc::invalid_argument, "unsupported content type '" + it->second +
                                                "' (application/json or multipart/form-data)");
}

// Typed fields: JSON numbers, booleans and strings, or the strings a form sends.
class Fields {
 public:
  explicit Fields(json j) : j_(std::move(j)) {}
  bool has(const char* name) const { return j_.contains(name) && !j_[name].is_null(); }
  std::optional<Refusal> string(const char* name, std::string& out) const {
    if (!has(name)) return std::nullopt;
    if (!j_[name].is_string()) return bad(name, "must be a string");
    out = j_[name].get<std::string>();
    return std::nullopt;
  }
  template <class T>
  std::optional<Refusal> integer(const char* name, T& out, long long lo, long long hi) const {
    if (!has(name)) return std::nullopt;
    const json& v = j_[name];
    long long value = 0;
    if (v.is_number_integer()) {
      value = v.get<long long>();
    } else if (v.is_string()) {
      const std::string s = trim(v.get<std::string>());
      size_t used = 0;
      try {
        value = std::stoll(s, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (s.empty() || used != s.size()) return bad(name, "must be a whole number, got '" + s + "'");
    } else if (v.is_number_unsigned()) {
      return bad(name, "is out of range");
    } else {
      return bad(name, "must be a whole number");
    }
    if (value < lo || value > hi)
      return bad(name, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + std::to_string(value));
    out = static_cast<T>(value);
    return std::nullopt;
  }
  std::optional<Refusal> number(const char* name, double& out, double lo, double hi) const {
    if (!has(name)) return std::nullopt;
    const json& v = j_[name];
    double value = 0;
    if (v.is_number()) {
      value = v.get<double>();
    } else if (v.is_string()) {
      const std::string s = trim(v.get<std::string>());
      size_t used = 0;
      try {
        value = std::stod(s, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (s.empty() || used != s.size()) return bad(name, "must be a number, got '" + s + "'");
    } else {
      return bad(name, "must be a number");
    }
    if (!std::isfinite(value) || value < lo || value > hi)
      return bad(name, "must be between " + fmt(lo) + " and " + fmt(hi));
    out = value;
    return std::nullopt;
  }
  std::optional<Refusal> boolean(const char* name, bool& out) const {
    if (!has(name)) return std::nullopt;
    const json& v = j_[name];
    if (v.is_boolean()) {
      out = v.get<bool>();
    } else if (v.is_string() && (v == "true" || v == "1")) {
      out = true;
    } else if (v.is_string() && (v == "false" || v == "0")) {
      out = false;
    } else {
      return bad(name, "must be true or false");
    }
    return std::nullopt;
  }
  const json& raw() const { return j_; }

  static std::string fmt(double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", v);
    return text;
  }
  static Refusal bad(const std::string& name, const std::string& what) { return Refusal{400, "'" + name + "' " + what, name, ""}; }

 private:
  json j_;
};

const std::set<std::string> kFields = {
    "model", "prompt", "seconds", "size", "num_frames", "fps", "num_inference_steps", "guidance_scale", "seed",
    "negative_prompt", "mode", "partitions", "clips", "stages", "patches", "cache"};

bool is_loopback(const std::string& peer) {
  return peer.rfind("127.", 0) == 0 || peer == "::1" || peer.rfind("::ffff:127.", 0) == 0;
}

std::string seconds_text(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", std::round(s * 1000) / 1000);
  return text;
}

const char* status_name(JobState s) {
  switch (s) {
    case JobState::queued: return "queued";
    case JobState::running: return "in_progress";
    case JobState::done: return "completed";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
  }
  return "failed";
}

}  // namespace

// ---- the API ---------------------------------------------------------------------------------

struct VideoApi::Impl {
  caf::actor_system& system;
  actors::coordinator_actor coordinator;
  VideoApiOptions options;
  std::string videos_dir;

  std::mutex models_mutex;
  std::map<std::string, std::shared_ptr<models::T2VModel>> models;  // opened for validation

  std::mutex submit_mutex;  // the queue bound is checked and a job submitted as one step
  std::atomic<uint64_t> name_counter{0};

  // Metrics.
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Gauge>& jobs_gauge =
      prometheus::BuildGauge().Name("reel_jobs").Help("Jobs the service knows, by state").Register(*registry);
  prometheus::Gauge& queue_depth =
      prometheus::BuildGauge().Name("reel_queue_depth").Help("Jobs queued or running").Register(*registry).Add({});
  prometheus::Histogram& latency =
      prometheus::BuildHistogram()
          .Name("reel_job_seconds")
          .Help("Time from a job's submission to its end, for jobs that completed")
          .Register(*registry)
          .Add({}, prometheus::Histogram::BucketBoundaries{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600});
  prometheus::Family<prometheus::Counter>& ended = prometheus::BuildCounter()
                                                       .Name("reel_jobs_ended_total")
                                                       .Help("Jobs that ended, by final state")
                                                       .Register(*registry);
  prometheus::Counter& frames = prometheus::BuildCounter()
                                    .Name("reel_frames_total")
                                    .Help("Frames written by completed jobs")
                                    .Register(*registry)
                                    .Add({});
  prometheus::Counter& model_calls = prometheus::BuildCounter()
                                         .Name("reel_model_calls_total")
                                         .Help("Model calls of ended jobs")
                                         .Register(*registry)
                                         .Add({});
  prometheus::Family<prometheus::Counter>& cache_hits = prometheus::BuildCounter()
                                                            .Name("reel_cache_hits_total")
                                                            .Help("Standard jobs that started from the cache, by kind")
                                                            .Register(*registry);
  prometheus::Counter& steps_saved = prometheus::BuildCounter()
                                         .Name("reel_cache_steps_saved_total")
                                         .Help("Denoising steps skipped by cache hits")
                                         .Register(*registry)
                                         .Add({});
  prometheus::Family<prometheus::Counter>& requests = prometheus::BuildCounter()
                                                          .Name("reel_http_requests_total")
                                                          .Help("HTTP requests answered, by status code")
                                                          .Register(*registry);
  std::set<uint64_t> counted;  // ended jobs the service still knows that are in the counters

  // The watcher: the retention sweep, every minute (metrics are brought up to date when scraped).
  std::mutex watch_mutex;
  std::condition_variable watch_wake;
  bool stopping = false;
  std::thread watcher;

  Impl(caf::actor_system& sys, actors::coordinator_actor c, VideoApiOptions o)
      : system(sys), coordinator(std::move(c)), options(std::move(o)) {
    videos_dir = (fs::path(options.data_dir) / "videos").string();
  }

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }

  // ---- the coordinator ----

  template <class Result, class... Ts>
  Expected<Result> call(Ts&&... xs) {
    caf::scoped_actor self{system};
    std::optional<Expected<Result>> out;
    self->request(coordinator, kCallTimeout, std::forward<Ts>(xs)...)
        .receive([&](Result& r) { out = std::move(r); },
                 [&](caf::error& e) { out = actors::from_caf_error(e); });
    return std::move(*out);
  }

  Expected<std::vector<JobRecord>> list_jobs() { return call<std::vector<JobRecord>>(actors::list_atom::value); }
  Expected<JobRecord> job(uint64_t id) { return call<JobRecord>(actors::status_atom::value, id); }

  // ---- models ----

  Expected<std::shared_ptr<models::T2VModel>> model(const std::string& name) {
    std::lock_guard lock(models_mutex);
    if (auto it = models.find(name); it != models.end()) return it->second;
    auto opened = models::open_model(name, options.zoo);
    if (!opened) return opened.error();
    auto shared = std::make_shared<models::T2VModel>(std::move(*opened));
    models[name] = shared;
    return shared;
  }

  // ---- auth ----

  // The tenant the request acts for.
  std::optional<Refusal> tenant_of(const HttpRequest& request, std::string& tenant) const {
    if (options.tokens.empty()) {
      if (!is_loopback(request.peer))
        return Refusal{401, "this server has no tokens configured and answers loopback clients only", "", ""};
      tenant.clear();
      return std::nullopt;
    }
    auto it = request.headers.find("authorization");
    if (it == request.headers.end() || it->second.rfind("Bearer ", 0) != 0)
      return Refusal{401, "missing bearer token (Authorization: Bearer <token>)", "", "invalid_api_key"};
    auto t = options.tokens.find(trim(it->second.substr(7)));
    if (t == options.tokens.end()) return Refusal{401, "invalid bearer token", "", "invalid_api_key"};
    tenant = t->second;
    return std::nullopt;
  }

  // The job `text` names, if this tenant may see it.
  Expected<JobRecord> visible_job(const std::string& text, const std::string& tenant) {
    auto id = parse_video_id(text);
    auto none = make_error(Errc::not_found, "no video '" + text + "'");
    if (!id) return none;
    auto rec = job(*id);
    if (!rec) return rec.error().code == Errc::not_found ? none : rec.error();
    if (rec->spec.tenant != tenant) return none;
    return rec;
  }

  // ---- the video object ----

  json video_object(const JobRecord& r) const {
    const auto& s = r.spec;
    int progress = 0;
    if (r.state == JobState::done) progress = 100;
    else if (r.total > 0) progress = static_cast<int>(std::min<int64_t>(99, 100 * r.done / r.total));
    int64_t frames_done = 0;
    if (r.state == JobState::done) frames_done = r.stats.frames > 0 ? r.stats.frames : s.frames;
    else if (s.mode == actors::JobMode::fifo && r.state == JobState::running) frames_done = r.done;
    json o{{"id", video_id(r.id)},
           {"object", "video"},
           {"status", status_name(r.state)},
           {"progress", progress},
           {"created_at", r.created_ms / 1000},
           {"completed_at", nullptr},
           {"expires_at", nullptr},
           {"model", s.model},
           {"prompt", s.prompt},
           {"seconds", seconds_text(s.fps > 0 ? static_cast<double>(s.frames) / s.fps : 0)},
           {"size", std::to_string(s.width * s.upscale) + "x" + std::to_string(s.height * s.upscale)},
           {"error", nullptr},
           {"mode", actors::to_string(s.mode)},
           {"frames", s.frames},
           {"frames_done", frames_done},
           {"fps", s.fps},
           {"num_inference_steps", s.steps},
           {"seed", s.seed},
           {"cache", nullptr},
           {"resumed_frames", r.stats.resumed_frames},
           {"resumed_steps", r.stats.resumed_steps}};
    if (actors::is_final(r.state) && r.finished_ms > 0) {
      o["completed_at"] = r.finished_ms / 1000;
      o["expires_at"] = r.finished_ms / 1000 + options.retention_s;
    }
    if (r.state == JobState::failed) o["error"] = json{{"code", "generation_failed"}, {"message", r.error}};
    if (!r.stats.cache_hit.empty())
      o["cache"] = json{{"hit", r.stats.cache_hit}, {"start_step", r.stats.cache_start_step},
                        {"similarity", r.stats.cache_similarity}};
    if (r.state == JobState::running && r.started_ms > 0 && r.done > 0 && r.total > 0) {
      const double elapsed = static_cast<double>(actors::unix_ms_now() - r.started_ms) / 1000.0;
      o["eta_seconds"] = std::round(elapsed * static_cast<double>(r.total - r.done) / static_cast<double>(r.done) * 10) / 10;
    }
    return o;
  }

  // ---- POST /v1/videos ----

  HttpAnswer create(const HttpRequest& request, const std::string& tenant) {
    auto parsed = parse_fields(request);
    if (!parsed) return refuse({400, parsed.error().message, "", ""});
    for (auto it = parsed->begin(); it != parsed->end(); ++it)
      if (!kFields.count(it.key()))
        return refuse({400, "unrecognized request argument supplied: " + it.key(), it.key(), "unknown_parameter"});
    const Fields f(*parsed);
    JobSpec spec;
    spec.tenant = tenant;
    spec.seed = options.seed;
    spec.crf = options.crf;
    spec.upscale_filter = options.upscale_filter;
    std::string mode, size;
    std::optional<double> seconds;
    int num_frames = 0;
    bool use_cache = true;
    spec.model = options.default_model;
    if (auto e = f.string("model", spec.model)) return refuse(*e);
    if (auto e = f.string("prompt", spec.prompt)) return refuse(*e);
    if (auto e = f.string("negative_prompt", spec.negative_prompt)) return refuse(*e);
    if (auto e = f.string("mode", mode)) return refuse(*e);
    if (auto e = f.string("size", size)) return refuse(*e);
    if (f.has("seconds")) {
      double s = 0;
      if (auto e = f.number("seconds", s, 0.001, 3600)) return refuse(*e);
      seconds = s;
    }
    if (auto e = f.integer("num_frames", num_frames, 1, 100000)) return refuse(*e);
    if (auto e = f.integer("fps", spec.fps, 1, 240)) return refuse(*e);
    if (auto e = f.integer("num_inference_steps", spec.steps, 1, 1000)) return refuse(*e);
    if (auto e = f.number("guidance_scale", spec.guidance, 0, 100)) return refuse(*e);
    if (auto e = f.integer("seed", spec.seed, 0, std::numeric_limits<int64_t>::max())) return refuse(*e);
    if (auto e = f.integer("partitions", spec.partitions, 1, 64)) return refuse(*e);
    if (auto e = f.integer("clips", spec.clips, 1, 64)) return refuse(*e);
    if (auto e = f.integer("stages", spec.stages, 1, 64)) return refuse(*e);
    if (auto e = f.integer("patches", spec.patches, 1, 256)) return refuse(*e);
    if (auto e = f.boolean("cache", use_cache)) return refuse(*e);
    spec.cache = use_cache;
    if (spec.prompt.find_first_not_of(" \t\r\n") == std::string::npos)
      return refuse({400, f.has("prompt") ? "'prompt' is empty" : "'prompt' is required", "prompt", ""});
    if (spec.prompt.size() > 10000) return refuse({400, "'prompt' is longer than 10000 bytes", "prompt", ""});

    auto m = model(spec.model);
    if (!m) return refuse({m.error().code == Errc::not_found ? 400 : 500, "model: " + m.error().message, "model", "model_not_found"});
    const models::T2VModel& mdl = **m;
    const auto& c = mdl.dit->config();
    const int cell_w = static_cast<int>(c.patch[2]) * mdl.spatial_compression;
    const int cell_h = static_cast<int>(c.patch[1]) * mdl.spatial_compression;
    const int temporal = static_cast<int>(c.patch[0]);

    // size: the output's; the model makes a size it can and the writer upscales it.
    if (!size.empty()) {
      int w = 0, h = 0;
      char x = 0, extra = 0;
      if (std::sscanf(size.c_str(), "%d%c%d%c", &w, &x, &h, &extra) != 3 || (x != 'x' && x != 'X') || w <= 0 || h <= 0 ||
          w > 8192 || h > 8192)
        return refuse({400, "'size' must be WIDTHxHEIGHT, such as 256x256, got '" + size + "'", "size", ""});
      auto plan = plan_size(w, h, mdl.defaults.width, mdl.defaults.height, cell_w, cell_h);
      if (!plan) return refuse({400, plan.error().message, "size", "unsupported_size"});
      spec.width = plan->width;
      spec.height = plan->height;
      spec.upscale = plan->upscale;
    } else {
      spec.width = mdl.defaults.width;
      spec.height = mdl.defaults.height;
      spec.upscale = options.upscale;
    }
    // length: num_frames, else seconds at the fps, else the model's window.
    const int fps = spec.fps > 0 ? spec.fps : mdl.defaults.fps;
    if (num_frames > 0) {
      spec.frames = num_frames;
    } else if (seconds) {
      const int frames = static_cast<int>(std::ceil(*seconds * fps - 1e-9));
      spec.frames = std::max(temporal, (frames + temporal - 1) / temporal * temporal);
    }
    const int frames = spec.frames > 0 ? spec.frames : mdl.defaults.frames;
    // mode: a length beyond the model's window is a long video: FIFO unless asked otherwise.
    if (mode.empty()) mode = frames > mdl.defaults.frames ? "fifo" : "standard";
    auto parsed_mode = actors::parse_job_mode(mode);
    if (!parsed_mode) return refuse({400, "'mode': " + parsed_mode.error().message, "mode", ""});
    spec.mode = *parsed_mode;
    if (spec.mode == actors::JobMode::standard && frames > 4 * mdl.defaults.frames)
      return refuse({400, std::to_string(frames) + " frames in standard mode is more than 4 windows of the model (" +
                              std::to_string(mdl.defaults.frames) + " frames); use mode fifo or clips",
                     num_frames > 0 ? "num_frames" : "seconds", ""});
    return submit(std::move(spec), mdl, tenant);
  }

  // Names the job's files, checks it against its model, and submits it unless the queue is full.
  HttpAnswer submit(JobSpec spec, const models::T2VModel& mdl, const std::string& tenant) {
    // Output files: a name of their own, so a retried request never overwrites another's.
    const std::string name = std::to_string(actors::unix_ms_now()) + "-" + std::to_string(name_counter++) + "-" +
                             std::to_string(std::random_device{}() % 100000);
    spec.out = (fs::path(videos_dir) / (name + ".mp4")).string();
    spec.sheet = (fs::path(videos_dir) / (name + ".sheet.png")).string();

    auto resolved = actors::resolve_job(spec, mdl);
    if (!resolved) return refuse({400, resolved.error().message, "", ""});
    {
      torch::NoGradGuard no_grad;
      if (auto text = mdl.text_encoder->encode({spec.prompt}); !text)
        return refuse({400, "'prompt': " + text.error().message, "prompt", "unknown_words"});
      if (!spec.negative_prompt.empty())
        if (auto text = mdl.text_encoder->encode({spec.negative_prompt}); !text)
          return refuse({400, "'negative_prompt': " + text.error().message, "negative_prompt", "unknown_words"});
    }

    std::lock_guard lock(submit_mutex);
    auto jobs = list_jobs();
    if (!jobs) return refuse({503, "the coordinator does not answer: " + jobs.error().message, "", ""});
    int64_t waiting = 0;
    for (const auto& r : *jobs) waiting += actors::is_final(r.state) ? 0 : 1;
    if (waiting >= options.queue) {
      HttpResponse busy = api_error(429, "the queue is full (" + std::to_string(waiting) + " jobs waiting or running, at most " +
                                             std::to_string(options.queue) + "); retry later",
                                    "", "queue_full");
      busy.headers.emplace_back("Retry-After", "5");
      return answer(busy);
    }
    auto id = call<uint64_t>(actors::submit_atom::value, *resolved);
    if (!id) return refuse({id.error().code == Errc::invalid_argument ? 400 : 500, id.error().message, "", ""});
    auto rec = job(*id);
    if (!rec) return refuse({500, rec.error().message, "", ""});
    // The object as it was accepted: a runner that was idle may have started it since.
    if (rec->state == JobState::running) {
      rec->state = JobState::queued;
      rec->done = 0;
    }
    log("accepted " + video_id(*id) + " (" + actors::to_string(resolved->mode) + ", " + std::to_string(resolved->frames) +
        " frames)" + (tenant.empty() ? "" : " for " + tenant));
    return answer(json_response(200, video_object(*rec)));
  }

  // ---- POST /v1/videos/extensions ----

  HttpAnswer extend(const HttpRequest& request, const std::string& tenant) {
    auto parsed = parse_fields(request);
    if (!parsed) return refuse({400, parsed.error().message, "", ""});
    json fields = *parsed;
    // The SDK sends the video as {"id": ...} (a form: "video[id]"); video_id is accepted too.
    std::string source_id;
    if (fields.contains("video") && fields["video"].is_object() && fields["video"].contains("id") &&
        fields["video"]["id"].is_string())
      source_id = fields["video"]["id"];
    else if (fields.contains("video[id]") && fields["video[id]"].is_string())
      source_id = fields["video[id]"];
    else if (fields.contains("video_id") && fields["video_id"].is_string())
      source_id = fields["video_id"];
    for (auto it = fields.begin(); it != fields.end(); ++it)
      if (it.key() != "video" && it.key() != "video[id]" && it.key() != "video_id" && it.key() != "prompt" &&
          it.key() != "seconds" && it.key() != "num_frames")
        return refuse({400, "unrecognized request argument supplied: " + it.key(), it.key(), "unknown_parameter"});
    if (source_id.empty()) return refuse({400, "'video' is required: the id of a completed video ({\"id\": ...})", "video", ""});
    auto source = visible_job(source_id, tenant);
    if (!source) return failure(source.error(), "video");
    if (source->state != JobState::done || source->spec.mode != actors::JobMode::fifo ||
        options.checkpoint_dir.empty() ||
        !fs::exists(fs::path(options.checkpoint_dir) / std::to_string(source->id) / "state.safetensors"))
      return refuse({400, source_id + " cannot be extended: only completed fifo videos made by this server can", "video",
                     "not_extendable"});
    const Fields f(fields);
    JobSpec spec = source->spec;
    spec.extends = source->id;
    spec.tenant = tenant;
    if (auto e = f.string("prompt", spec.prompt)) return refuse(*e);
    if (spec.prompt.find_first_not_of(" \t\r\n") == std::string::npos)
      return refuse({400, f.has("prompt") ? "'prompt' is empty" : "'prompt' is required", "prompt", ""});
    int more = 0;
    if (auto e = f.integer("num_frames", more, 1, 100000)) return refuse(*e);
    if (more == 0) {
      double seconds = 0;
      if (auto e = f.number("seconds", seconds, 0.001, 3600)) return refuse(*e);
      if (seconds == 0) return refuse({400, "'seconds' (or num_frames) is required: how much longer", "seconds", ""});
      more = static_cast<int>(std::ceil(seconds * spec.fps - 1e-9));
    }
    auto m = model(spec.model);
    if (!m) return refuse({500, "model: " + m.error().message, "", ""});
    const int temporal = static_cast<int>((*m)->dit->config().patch[0]);
    more = (more + temporal - 1) / temporal * temporal;
    spec.frames += more;
    return submit(std::move(spec), **m, tenant);
  }

  // ---- GET /v1/videos ----

  HttpAnswer list(const HttpRequest& request, const std::string& tenant) {
    int limit = 20;
    if (auto it = request.query.find("limit"); it != request.query.end()) {
      const Fields f(json{{"limit", it->second}});
      if (auto e = f.integer("limit", limit, 1, 100)) return refuse(*e);
    }
    std::string order = "desc";
    if (auto it = request.query.find("order"); it != request.query.end()) order = it->second;
    if (order != "asc" && order != "desc") return refuse({400, "'order' must be asc or desc", "order", ""});
    std::optional<uint64_t> after;
    if (auto it = request.query.find("after"); it != request.query.end() && !it->second.empty()) {
      after = parse_video_id(it->second);
      if (!after) return refuse({400, "'after' must be a video id such as video_12", "after", ""});
    }
    auto jobs = list_jobs();
    if (!jobs) return refuse({503, jobs.error().message, "", ""});
    std::vector<const JobRecord*> mine;
    for (const auto& r : *jobs)
      if (r.spec.tenant == tenant) mine.push_back(&r);
    if (order == "desc") std::reverse(mine.begin(), mine.end());
    json data = json::array();
    bool has_more = false;
    for (const JobRecord* r : mine) {
      if (after && (order == "desc" ? r->id >= *after : r->id <= *after)) continue;
      if (static_cast<int>(data.size()) == limit) {
        has_more = true;
        break;
      }
      data.push_back(video_object(*r));
    }
    json body{{"object", "list"}, {"data", data}, {"has_more", has_more}, {"first_id", nullptr}, {"last_id", nullptr}};
    if (!data.empty()) {
      body["first_id"] = data.front()["id"];
      body["last_id"] = data.back()["id"];
    }
    return answer(json_response(200, body));
  }

  HttpAnswer retrieve(const std::string& text, const std::string& tenant) {
    auto rec = visible_job(text, tenant);
    if (!rec) return failure(rec.error(), "video_id");
    HttpResponse r = json_response(200, video_object(*rec));
    r.headers.emplace_back("openai-poll-after-ms", actors::is_final(rec->state) ? "0" : "1000");
    return answer(r);
  }

  HttpAnswer failure(const Error& e, const std::string& param) {
    if (e.code == Errc::not_found) return refuse({404, e.message, param, "not_found"});
    if (e.code == Errc::invalid_argument) return refuse({400, e.message, param, ""});
    return refuse({500, e.message, "", ""});
  }

  // ---- DELETE /v1/videos/{id} ----

  // Files of a job: the video, its partial, the sheet and the thumbnail.
  static std::vector<std::string> files_of(const JobSpec& s) {
    return {s.out, s.out + ".part", s.sheet, s.sheet + ".part", thumbnail_path(s), thumbnail_path(s) + ".part"};
  }
  static std::string thumbnail_path(const JobSpec& s) {
    return (fs::path(s.out).parent_path() / (fs::path(s.out).stem().string() + ".thumb.png")).string();
  }

  // Stops the job if it runs, waits for its end, forgets it, removes its files.
  Status remove(const JobRecord& rec) {
    if (!actors::is_final(rec.state)) {
      caf::scoped_actor self{system};
      std::optional<Error> failed;
      self->request(coordinator, kCallTimeout, actors::subscribe_atom::value, rec.id)
          .receive([](JobRecord&) {}, [&](caf::error& e) { failed = actors::from_caf_error(e); });
      if (failed) return *failed;
      self->request(coordinator, kCallTimeout, actors::cancel_atom::value, rec.id)
          .receive([](bool) {}, [&](caf::error& e) { failed = actors::from_caf_error(e); });
      if (failed) return *failed;
      // The runner stops at its next step or frame; a step of a big model may take a while.
      bool ended = false;
      const auto deadline = Clock::now() + std::chrono::minutes(10);
      while (!ended && Clock::now() < deadline) {
        self->receive(
            [&](actors::job_event_atom, actors::JobEvent& event) {
              if (event.id == rec.id && actors::is_final(event.state)) ended = true;
            },
            caf::after(std::chrono::seconds(1)) >> [] {});
        if (!ended) {
          auto now = job(rec.id);
          if (!now || actors::is_final(now->state)) ended = true;
        }
      }
      if (!ended) return make_error(Errc::internal, "the job did not stop within 10 minutes");
    }
    // Counted before it is forgotten, whether or not /metrics was read while it ran.
    if (auto last = job(rec.id); last && actors::is_final(last->state)) {
      std::lock_guard lock(watch_mutex);
      count_ended(*last);
    }
    auto erased = call<uint64_t>(actors::erase_atom::value, rec.id);
    if (!erased && erased.error().code != Errc::not_found) return erased.error();
    for (const auto& file : files_of(rec.spec)) {
      std::error_code ec;
      if (!file.empty()) fs::remove(file, ec);
    }
    {
      std::lock_guard lock(watch_mutex);
      counted.erase(rec.id);  // the job is gone: its id need not be remembered
    }
    if (!options.checkpoint_dir.empty()) {  // a completed FIFO job's end state, kept for extensions
      std::error_code ec;
      fs::remove_all(fs::path(options.checkpoint_dir) / std::to_string(rec.id), ec);
    }
    return {};
  }

  HttpAnswer erase(const std::string& text, const std::string& tenant) {
    auto rec = visible_job(text, tenant);
    if (!rec) return failure(rec.error(), "video_id");
    if (auto st = remove(*rec); !st) return failure(st.error(), "");
    log("deleted " + video_id(rec->id));
    return answer(json_response(200, json{{"id", video_id(rec->id)}, {"object", "video.deleted"}, {"deleted", true}}));
  }

  // ---- GET /v1/videos/{id}/content ----

  HttpAnswer content(const HttpRequest& request, const std::string& text, const std::string& tenant) {
    auto rec = visible_job(text, tenant);
    if (!rec) return failure(rec.error(), "video_id");
    std::string variant = "video";
    if (auto it = request.query.find("variant"); it != request.query.end()) variant = it->second;
    const bool done = rec->state == JobState::done;
    std::string path, type = "image/png";
    if (variant == "video") {
      type = "video/mp4";
      path = rec->spec.out;
      // A long job streams fragmented MP4: what is written so far plays.
      if (!done && rec->state == JobState::running && rec->spec.mode != actors::JobMode::standard &&
          fs::exists(rec->spec.out + ".part"))
        path = rec->spec.out + ".part";
      else if (!done)
        return not_ready(*rec);
    } else if (variant == "spritesheet") {
      if (!done) return not_ready(*rec);
      path = rec->spec.sheet;
    } else if (variant == "thumbnail") {
      if (!done) return not_ready(*rec);
      auto thumb = thumbnail(rec->spec);
      if (!thumb) return refuse({500, thumb.error().message, "", ""});
      path = *thumb;
    } else {
      return refuse({400, "'variant' must be video, thumbnail or spritesheet, got '" + variant + "'", "variant", ""});
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) return refuse({404, "the " + variant + " of " + text + " is not on disk", "video_id", "not_found"});
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    HttpResponse r;
    r.content_type = type;
    r.headers.emplace_back("Accept-Ranges", "bytes");
    if (!done) r.headers.emplace_back("Reel-Partial", "true");  // the frames made so far
    if (auto it = request.headers.find("range"); it != request.headers.end()) {
      auto range = byte_range(it->second, bytes.size());
      if (!range) {
        r.status = 416;
        r.headers.emplace_back("Content-Range", "bytes */" + std::to_string(bytes.size()));
        r.content_type = "application/json";
        r.body = api_error(416, "range '" + it->second + "' is outside the " + std::to_string(bytes.size()) + " bytes").body;
        return answer(r);
      }
      r.status = 206;
      r.headers.emplace_back("Content-Range", "bytes " + std::to_string(range->first) + "-" +
                                                  std::to_string(range->second) + "/" + std::to_string(bytes.size()));
      r.body = bytes.substr(range->first, range->second - range->first + 1);
      return answer(r);
    }
    r.body = std::move(bytes);
    return answer(r);
  }

  HttpAnswer not_ready(const JobRecord& r) {
    return refuse({409, video_id(r.id) + " is " + status_name(r.state) + "; its content is ready when it is completed", "",
                   "video_not_ready"});
  }

  // "bytes=a-b", "bytes=a-", "bytes=-n" of `size` bytes -> [first, last]; none when unsatisfiable.
  static std::optional<std::pair<size_t, size_t>> byte_range(const std::string& header, size_t size) {
    if (header.rfind("bytes=", 0) != 0 || size == 0) return std::nullopt;
    const std::string spec = header.substr(6);
    if (spec.find(',') != std::string::npos) return std::nullopt;  // one range only
    const size_t dash = spec.find('-');
    if (dash == std::string::npos) return std::nullopt;
    auto number = [](const std::string& s) -> std::optional<size_t> {
      if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
      return static_cast<size_t>(std::stoull(s));
    };
    const auto a = number(spec.substr(0, dash));
    const auto b = number(spec.substr(dash + 1));
    if (!a) {
      if (!b || *b == 0) return std::nullopt;
      return std::make_pair(size - std::min(*b, size), size - 1);
    }
    if (*a >= size) return std::nullopt;
    const size_t last = b ? std::min(*b, size - 1) : size - 1;
    if (last < *a) return std::nullopt;
    return std::make_pair(*a, last);
  }

  // The first frame as a PNG, made once.
  Expected<std::string> thumbnail(const JobSpec& s) {
    const std::string path = thumbnail_path(s);
    if (fs::exists(path)) return path;
    auto frames = video::read_video(s.out);
    if (!frames) return frames.error();
    if (frames->empty()) return make_error(Errc::corrupt_data, "the video has no frames");
    const std::string part = path + ".part";
    REEL_RETURN_IF_ERROR(video::write_png(part, frames->front()));
    std::error_code ec;
    fs::rename(part, path, ec);
    if (ec) return make_error(Errc::io_error, "cannot write the thumbnail: " + ec.message());
    return path;
  }

  // ---- GET /v1/videos/{id}/events ----

  HttpAnswer events(const std::string& text, const std::string& tenant) {
    auto rec = visible_job(text, tenant);
    if (!rec) return failure(rec.error(), "video_id");
    HttpAnswer a;
    a.response.content_type = "text/event-stream";
    const uint64_t id = rec->id;
    a.stream = [this, id](const StreamWriter& write) {
      caf::scoped_actor self{system};
      std::optional<JobRecord> current;
      self->request(coordinator, kCallTimeout, actors::subscribe_atom::value, id)
          .receive([&](JobRecord& r) { current = std::move(r); }, [](caf::error&) {});
      if (!current) return;
      auto send = [&](const JobRecord& r) { return write("event: video\ndata: " + video_object(r).dump() + "\n\n"); };
      if (!send(*current)) return;
      bool ended = actors::is_final(current->state);
      while (!ended) {
        std::optional<actors::JobEvent> got;
        self->receive(
            [&](actors::job_event_atom, actors::JobEvent& event) {
              if (event.id == id) got = std::move(event);
            },
            caf::after(std::chrono::seconds(10)) >> [] {});
        if (!got) {
          if (!write(": keep-alive\n\n")) return;  // the client has gone
          continue;
        }
        ended = actors::is_final(got->state);
        if (ended || got->state != current->state) {
          // A change of state: the whole record (times, statistics) once.
          auto now = job(id);
          if (!now) return;
          current = std::move(*now);
        } else {  // progress: what the event says is all that changed
          current->done = got->done;
          current->total = got->total;
        }
        if (!send(*current)) return;
      }
    };
    return a;
  }

  // ---- /health, /metrics ----

  HttpAnswer health() {
    auto jobs = list_jobs();
    if (!jobs) return answer(json_response(503, json{{"status", "unavailable"}, {"error", jobs.error().message}}));
    int64_t waiting = 0;
    for (const auto& r : *jobs) waiting += actors::is_final(r.state) ? 0 : 1;
    return answer(json_response(200, json{{"status", "ok"}, {"jobs", jobs->size()}, {"queue_depth", waiting}}));
  }

  HttpAnswer metrics() {
    update_metrics();
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = prometheus::TextSerializer().Serialize(registry->Collect());
    return answer(r);
  }

  // Adds an ended job to the counters once. Requires watch_mutex.
  void count_ended(const JobRecord& r) {
    if (!counted.insert(r.id).second) return;
    ended.Add({{"state", status_name(r.state)}}).Increment();
    model_calls.Increment(static_cast<double>(r.stats.model_calls));
    if (r.state == JobState::done) {
      latency.Observe(static_cast<double>(r.finished_ms - r.created_ms) / 1000.0);
      frames.Increment(static_cast<double>(r.stats.frames));
    }
    if (!r.stats.cache_hit.empty()) {
      cache_hits.Add({{"kind", r.stats.cache_hit}}).Increment();
      steps_saved.Increment(r.stats.cache_start_step);
    }
  }

  void update_metrics() {
    auto jobs = list_jobs();
    if (!jobs) return;
    std::map<std::string, int64_t> by_state{{"queued", 0}, {"in_progress", 0}, {"completed", 0}, {"failed", 0}, {"cancelled", 0}};
    int64_t waiting = 0;
    std::lock_guard lock(watch_mutex);
    for (const auto& r : *jobs) {
      ++by_state[status_name(r.state)];
      if (!actors::is_final(r.state)) {
        ++waiting;
        continue;
      }
      count_ended(r);
    }
    for (const auto& [state, n] : by_state) jobs_gauge.Add({{"state", state}}).Set(static_cast<double>(n));
    queue_depth.Set(static_cast<double>(waiting));
  }

  // ---- routing ----

  HttpAnswer route(const HttpRequest& request) {
    const std::string& path = request.path;
    const std::string& method = request.method;
    if (path == "/health") return method == "GET" ? health() : not_allowed("GET");
    if (path == "/metrics") return method == "GET" ? metrics() : not_allowed("GET");
    const std::string base = "/v1/videos";
    if (path.rfind(base, 0) != 0) return refuse({404, "no route " + method + " " + path, "", "not_found"});
    std::string tenant;
    if (auto e = tenant_of(request, tenant)) return refuse(*e);
    std::string rest = path.substr(base.size());
    if (!rest.empty() && rest.back() == '/') rest.pop_back();
    if (rest.empty()) {
      if (method == "POST") return create(request, tenant);
      if (method == "GET") return list(request, tenant);
      return not_allowed("GET, POST");
    }
    if (rest == "/extensions") return method == "POST" ? extend(request, tenant) : not_allowed("POST");
    if (rest.front() != '/') return refuse({404, "no route " + method + " " + path, "", "not_found"});
    rest.erase(0, 1);
    const size_t slash = rest.find('/');
    const std::string id = rest.substr(0, slash);
    const std::string what = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (what.empty()) {
      if (method == "GET") return retrieve(id, tenant);
      if (method == "DELETE") return erase(id, tenant);
      return not_allowed("GET, DELETE");
    }
    if (what == "content") return method == "GET" ? content(request, id, tenant) : not_allowed("GET");
    if (what == "events") return method == "GET" ? events(id, tenant) : not_allowed("GET");
    return refuse({404, "no route " + method + " " + path, "", "not_found"});
  }

  HttpAnswer not_allowed(const std::string& allow) {
    HttpResponse r = api_error(405, "method not allowed; allowed: " + allow);
    r.headers.emplace_back("Allow", allow);
    return answer(r);
  }

  // ---- the watcher ----

  void watch() {
    std::unique_lock lock(watch_mutex);
    while (!stopping) {
      lock.unlock();
      sweep_now();
      lock.lock();
      watch_wake.wait_for(lock, std::chrono::minutes(1), [this] { return stopping; });
    }
  }

  int sweep_now() {
    auto jobs = list_jobs();
    if (!jobs) return 0;
    const int64_t cutoff = actors::unix_ms_now() - options.retention_s * 1000;
    int removed = 0;
    for (const auto& r : *jobs) {
      if (!actors::is_final(r.state) || r.finished_ms == 0 || r.finished_ms > cutoff) continue;
      if (remove(r)) {
        ++removed;
        log("expired " + video_id(r.id));
      }
    }
    return removed;
  }
};

Expected<std::unique_ptr<VideoApi>> VideoApi::create(caf::actor_system& system, actors::coordinator_actor coordinator,
                                                     VideoApiOptions options) {
  auto impl = std::make_unique<Impl>(system, std::move(coordinator), std::move(options));
  std::error_code ec;
  fs::create_directories(impl->videos_dir, ec);
  if (ec || !fs::is_directory(impl->videos_dir))
    return make_error(Errc::io_error, "cannot create the videos folder '" + impl->videos_dir + "': " + ec.message());
  // Jobs that had ended before this start are not counted as ended now.
  if (auto jobs = impl->list_jobs())
    for (const auto& r : *jobs)
      if (actors::is_final(r.state)) impl->counted.insert(r.id);
  Impl* raw = impl.get();
  impl->watcher = std::thread([raw] { raw->watch(); });
  return std::unique_ptr<VideoApi>(new VideoApi(std::move(impl)));
}

VideoApi::VideoApi(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

VideoApi::~VideoApi() {
  {
    std::lock_guard lock(impl_->watch_mutex);
    impl_->stopping = true;
  }
  impl_->watch_wake.notify_all();
  if (impl_->watcher.joinable()) impl_->watcher.join();
}

HttpAnswer VideoApi::handle(const HttpRequest& request) {
  HttpAnswer a = impl_->route(request);
  impl_->requests.Add({{"code", std::to_string(a.response.status)}}).Increment();
  return a;
}

int VideoApi::sweep() { return impl_->sweep_now(); }

}  // namespace reel::cluster
