// reel submit | status | ls | wait | cancel | fetch: the client of `reel serve`'s videos API
// (OpenAI's /v1/videos shapes). Each command is one or a few HTTP calls; the server validates
// the request, so its messages are the ones the user sees.
//
// Server: --server URL, else $REEL_SERVER, else http://127.0.0.1:8000. Token: $REEL_TOKEN, sent
// as "Authorization: Bearer TOKEN" (no header when unset or empty).
// Exit codes: 0 done; 2 bad input (flags, a request the server refuses: 400, 401, 404, 409,
// 413); 1 anything else (server unreachable or busy, 429, 5xx, a failed or cancelled job, a
// wait that timed out).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/durable.hpp"
#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "cluster/http_client.hpp"

namespace reel::cli {
namespace {

using json = nlohmann::json;
using cluster::HttpCall;
using cluster::HttpReply;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kDefaultServer = "http://127.0.0.1:8000";
constexpr milliseconds kCallTimeout{60000};      // one request and its whole reply
constexpr milliseconds kDownloadTimeout{300000};  // GET .../content
constexpr milliseconds kEventsReadTimeout{30000};  // silence on /events before falling back to polling
constexpr milliseconds kDefaultPoll{1000};         // when the reply has no openai-poll-after-ms

// Where the commands send their requests.
struct Server {
  std::string url;    // without a trailing '/'
  std::string token;  // "" = no Authorization header
};

Expected<Server> server_of(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  auto parsed = cluster::parse_url(url);
  if (!parsed) return make_error(Errc::invalid_argument, "--server: " + parsed.error().message);
  if (parsed->target != "/")
    return make_error(Errc::invalid_argument, "--server '" + url + "' must be http://HOST:PORT, without a path");
  const char* token = std::getenv("REEL_TOKEN");
  return Server{url, token == nullptr ? "" : token};
}

// A video id as one path segment: anything but unreserved characters percent-encoded.
std::string segment(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

HttpCall call_to(const Server& server, std::string method, const std::string& path, milliseconds timeout = kCallTimeout) {
  HttpCall call;
  call.method = std::move(method);
  call.url = server.url + path;
  call.timeout = timeout;
  if (!server.token.empty()) call.headers.emplace_back("Authorization", "Bearer " + server.token);
  return call;
}

// A failure to talk to the server at all names the server and how to point at another.
Error unreachable(const Server& server, const Error& error) {
  if (error.code != Errc::io_error) return error;
  std::string message = "reel server " + server.url + ": " + error.message;
  if (error.message.rfind("cannot connect", 0) == 0 || error.message.rfind("cannot resolve", 0) == 0)
    message += " (is 'reel serve' running there? set --server or REEL_SERVER)";
  return make_error(Errc::io_error, message);
}

// The error for a reply that is not 2xx: the server's message from {"error":{"message":...}}.
Error reply_error(const Server& server, const HttpReply& reply) {
  std::string message;
  auto body = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("error") && body["error"].is_object() && body["error"].contains("message") &&
      body["error"]["message"].is_string())
    message = body["error"]["message"].get<std::string>();
  if (message.empty()) {
    message = "HTTP " + std::to_string(reply.status) + " from " + server.url;
    const std::string text = reply.body.substr(0, 200);
    if (!text.empty() && text.find('\0') == std::string::npos) message += ": " + text;
  }
  if (reply.status == 429) {
    auto retry = reply.headers.find("retry-after");
    message += retry == reply.headers.end() ? " (server busy)" : " (server busy; retry after " + retry->second + " s)";
  }
  switch (reply.status) {
    case 404: return make_error(Errc::not_found, message);
    case 400:
    case 401:
    case 403:
    case 409:
    case 413:
    case 422: return make_error(Errc::invalid_argument, message);
    default: return make_error(Errc::io_error, message);
  }
}

Expected<HttpReply> send(const Server& server, const HttpCall& call) {
  auto reply = cluster::http_call(call);
  if (!reply) return unreachable(server, reply.error());
  if (reply->status < 200 || reply->status > 299) return reply_error(server, *reply);
  return reply;
}

Expected<json> send_json(const Server& server, const HttpCall& call) {
  auto reply = send(server, call);
  if (!reply) return reply.error();
  auto body = json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object())
    return make_error(Errc::io_error, "reel server " + server.url + ": " + call.method + " " + call.url +
                                          " did not answer a JSON object");
  return body;
}

// Fields of a video object; absent or null fields read as "" or -1.
std::string text_of(const json& v, const char* key) {
  if (!v.is_object() || !v.contains(key)) return "";
  const json& f = v[key];
  if (f.is_string()) return f.get<std::string>();
  if (f.is_null()) return "";
  return f.dump();
}
long long number_of(const json& v, const char* key) {
  if (!v.is_object() || !v.contains(key) || !v[key].is_number()) return -1;
  return v[key].get<long long>();
}

bool is_final(const std::string& status) { return status == "completed" || status == "failed" || status == "cancelled"; }

std::string error_text(const json& video) {
  if (!video.contains("error") || !video["error"].is_object()) return "";
  const std::string code = text_of(video["error"], "code");
  const std::string message = text_of(video["error"], "message");
  return code.empty() ? message : code + ": " + message;
}

// "video_12  completed  100%  8/8 frames  shapes-m  256x256  cache hit (whole, from step 3)  error: ..."
std::string summary(const json& v) {
  std::string line = text_of(v, "id") + "  " + text_of(v, "status");
  if (const long long p = number_of(v, "progress"); p >= 0) line += "  " + std::to_string(p) + "%";
  if (const long long n = number_of(v, "frames"); n >= 0)
    line += "  " + std::to_string(std::max(0LL, number_of(v, "frames_done"))) + "/" + std::to_string(n) + " frames";
  for (const char* key : {"model", "size", "mode"})
    if (const std::string f = text_of(v, key); !f.empty()) line += "  " + f;
  if (v.contains("cache") && v["cache"].is_object()) {
    line += "  cache hit (" + text_of(v["cache"], "hit");
    if (const long long k = number_of(v["cache"], "start_step"); k >= 0) line += ", from step " + std::to_string(k);
    line += ")";
  }
  if (const std::string e = error_text(v); !e.empty()) line += "  error: " + e;
  return line;
}

// Server-sent events, fed in pieces as they arrive: `on_event(data)` gets each event's data;
// returning false stops. Comments (": ...", heartbeats) and other fields are skipped.
class EventStream {
 public:
  explicit EventStream(std::function<bool(const std::string&)> on_event) : on_event_(std::move(on_event)) {}

  bool feed(std::string_view piece) {
    pending_.append(piece);
    size_t start = 0, end = 0;
    while ((end = pending_.find('\n', start)) != std::string::npos) {
      std::string_view line(pending_.data() + start, end - start);
      start = end + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) {
        if (has_data_ && !on_event_(data_)) return false;
        data_.clear();
        has_data_ = false;
      } else if (line.rfind("data:", 0) == 0) {
        line.remove_prefix(5);
        if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        if (has_data_) data_ += '\n';
        data_.append(line);
        has_data_ = true;
      }
    }
    pending_.erase(0, start);
    return true;
  }

 private:
  std::function<bool(const std::string&)> on_event_;
  std::string pending_, data_;
  bool has_data_ = false;
};

milliseconds poll_interval(const HttpReply& reply) {
  auto it = reply.headers.find("openai-poll-after-ms");
  if (it == reply.headers.end()) return kDefaultPoll;
  char* end = nullptr;
  const long ms = std::strtol(it->second.c_str(), &end, 10);
  if (end == it->second.c_str()) return kDefaultPoll;
  return milliseconds(std::clamp(ms, 100L, 10000L));
}

// Follows a video until it is completed, failed or cancelled, and returns its final object:
// from /events while that stream works, then by polling GET. `timeout` 0 = no limit.
Expected<json> wait_for(const Server& server, const std::string& id, double timeout_s, Progress& progress) {
  const std::optional<Clock::time_point> deadline =
      timeout_s > 0 ? std::optional(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                      std::chrono::duration<double>(timeout_s)))
                    : std::nullopt;
  auto left = [&](milliseconds most) {
    if (!deadline) return most;
    auto ms = std::chrono::duration_cast<milliseconds>(*deadline - Clock::now());
    return std::clamp(ms, milliseconds(1), most);
  };
  auto past_deadline = [&] { return deadline && Clock::now() >= *deadline; };
  json last;
  auto show = [&](const json& video) {
    last = video;
    progress.update(static_cast<int>(std::clamp(number_of(video, "progress"), 0LL, 100LL)), 100);
  };
  auto timed_out = [&] {
    std::string where = last.is_object() ? " (" + text_of(last, "status") + ", " +
                                               std::to_string(std::max(0LL, number_of(last, "progress"))) + "%)"
                                         : "";
    return make_error(Errc::io_error, "timed out after " + format_seconds(timeout_s) + " waiting for " + id + where);
  };

  // The events stream; any way it ends short of a final state (an error reply, a stream that
  // closes or goes silent) falls back to polling, which reports what is wrong, if anything.
  bool done = false;
  EventStream events([&](const std::string& data) {
    auto video = json::parse(data, nullptr, /*allow_exceptions=*/false);
    if (!video.is_object() || text_of(video, "id") != id) return true;
    show(video);
    done = is_final(text_of(video, "status"));
    return !done && !past_deadline();
  });
  auto call = call_to(server, "GET", "/v1/videos/" + segment(id) + "/events", left(kEventsReadTimeout));
  call.headers.emplace_back("Accept", "text/event-stream");
  auto streamed = cluster::http_stream(call, [&](std::string_view piece) { return events.feed(piece); });
  if (!streamed) ignore_status(streamed.error());  // polling below says what is wrong, if anything
  if (done) return last;

  for (;;) {
    if (past_deadline()) return timed_out();
    auto reply = cluster::http_call(call_to(server, "GET", "/v1/videos/" + segment(id), left(kCallTimeout)));
    if (!reply) return unreachable(server, reply.error());
    milliseconds pause = poll_interval(*reply);
    if (reply->status == 429 || reply->status == 503) {  // busy: ask again later
      if (auto it = reply->headers.find("retry-after"); it != reply->headers.end())
        pause = milliseconds(std::clamp(std::atol(it->second.c_str()), 1L, 60L) * 1000);
    } else if (reply->status < 200 || reply->status > 299) {
      return reply_error(server, *reply);
    } else {
      auto video = json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
      if (!video.is_object()) return make_error(Errc::io_error, "reel server " + server.url + ": GET " + id + " did not answer a JSON object");
      show(video);
      if (is_final(text_of(video, "status"))) return video;
    }
    if (past_deadline()) return timed_out();
    std::this_thread::sleep_for(left(pause));
  }
}

// Prints how a finished video ended; the exit code.
int report_final(const json& video) {
  const std::string id = text_of(video, "id");
  const std::string status = text_of(video, "status");
  if (status == "completed") {
    std::string facts;  // "16 frames, 128x128, 21 s"
    auto add = [&](const std::string& fact) { facts += (facts.empty() ? "" : ", ") + fact; };
    if (const long long n = number_of(video, "frames"); n >= 0) add(std::to_string(n) + " frames");
    if (const std::string size = text_of(video, "size"); !size.empty()) add(size);
    const long long created = number_of(video, "created_at"), completed = number_of(video, "completed_at");
    if (created >= 0 && completed >= created) add(std::to_string(completed - created) + " s");
    std::fprintf(stderr, "reel: %s completed%s\n", id.c_str(), facts.empty() ? "" : (" (" + facts + ")").c_str());
    return kExitOk;
  }
  std::string error = error_text(video);
  if (error.empty()) error = "no reason given";
  if (status == "cancelled") return report(make_error(Errc::cancelled, id + " was cancelled: " + error));
  return report(make_error(Errc::internal, id + " " + status + ": " + error));
}

// The file a variant is saved to by default, and the extension it must have.
const char* extension_of(const std::string& variant) { return variant == "video" ? ".mp4" : ".png"; }

Status check_variant(const std::string& variant) {
  if (variant == "video" || variant == "thumbnail" || variant == "spritesheet") return {};
  return make_error(Errc::invalid_argument, "--variant must be video, thumbnail or spritesheet, got '" + variant + "'");
}

// Downloads a video's content to `out` via `out.part`, renamed once whole.
Status fetch_to(const Server& server, const std::string& id, const std::string& variant, const std::string& out) {
  auto reply = send(server, call_to(server, "GET", "/v1/videos/" + segment(id) + "/content?variant=" + variant,
                                    kDownloadTimeout));
  if (!reply) return reply.error();
  if (reply->body.empty()) return make_error(Errc::io_error, "reel server " + server.url + " sent an empty " + variant + " for " + id);
  const std::string part = out + ".part";
  auto fail = [&](const std::string& why) {
    std::error_code ec;
    std::filesystem::remove(part, ec);
    return make_error(Errc::io_error, "cannot write " + out + ": " + why);
  };
  std::FILE* file = std::fopen(part.c_str(), "wb");
  if (file == nullptr) return fail(std::strerror(errno));
  const bool written = std::fwrite(reply->body.data(), 1, reply->body.size(), file) == reply->body.size();
  const int write_errno = errno;
  if (std::fclose(file) != 0 || !written) return fail(std::strerror(written ? errno : write_errno));
  if (auto st = sync_file(part); !st) return fail(st.error().message);
  if (std::rename(part.c_str(), out.c_str()) != 0) return fail(std::strerror(errno));
  sync_parent(out);
  std::fprintf(stderr, "reel: wrote %s (%zu bytes)\n", out.c_str(), reply->body.size());
  if (reply->headers.count("reel-partial"))
    std::fprintf(stderr, "reel: note: %s is still running; this is the part made so far (it plays)\n", id.c_str());
  return {};
}

// Options every client command has.
struct ServerArgs {
  std::string server = kDefaultServer;
};

void add_server_option(CLI::App* sub, ServerArgs& a) {
  sub->add_option("--server", a.server, "URL of the reel server")->envname("REEL_SERVER")->capture_default_str();
}

struct SubmitArgs : ServerArgs {
  std::string prompt, negative, mode, size, seconds, model;
  std::optional<int> frames, fps, steps, partitions, clips, stages, patches;
  std::optional<double> guidance;
  std::optional<uint64_t> seed;
  bool no_cache = false;
  bool wait = false;
  double timeout = 0;
  std::string out;
};

json submit_body(const SubmitArgs& a) {
  json body = {{"prompt", a.prompt}};
  auto put_text = [&](const char* key, const std::string& v) {
    if (!v.empty()) body[key] = v;
  };
  auto put_int = [&](const char* key, const std::optional<int>& v) {
    if (v) body[key] = *v;
  };
  put_text("model", a.model);
  put_text("seconds", a.seconds);
  put_text("size", a.size);
  put_text("negative_prompt", a.negative);
  put_text("mode", a.mode);
  put_int("num_frames", a.frames);
  put_int("fps", a.fps);
  put_int("num_inference_steps", a.steps);
  put_int("partitions", a.partitions);
  put_int("clips", a.clips);
  put_int("stages", a.stages);
  put_int("patches", a.patches);
  if (a.guidance) body["guidance_scale"] = *a.guidance;
  if (a.seed) body["seed"] = *a.seed;
  if (a.no_cache) body["cache"] = false;
  return body;
}

int run_submit(const SubmitArgs& a) {
  auto server = server_of(a.server);
  if (!server) return report(server.error());
  if (a.timeout < 0) return report(make_error(Errc::invalid_argument, "--timeout must be >= 0 (0 = no limit)"));
  if (!a.out.empty())
    if (auto st = check_output(a.out, ".mp4", "output"); !st) return report(st.error());
  auto call = call_to(*server, "POST", "/v1/videos");
  call.body = submit_body(a).dump();
  auto video = send_json(*server, call);
  if (!video) return report(video.error());
  const std::string id = text_of(*video, "id");
  if (id.empty()) return report(make_error(Errc::io_error, "reel server " + server->url + " answered a video without an id"));
  std::printf("%s\n", id.c_str());
  std::fflush(stdout);
  if (!a.wait && a.out.empty()) return kExitOk;
  Progress progress(id, "%", Progress::stderr_is_terminal());
  auto final_video = wait_for(*server, id, a.timeout, progress);
  progress.finish();
  if (!final_video) return report(final_video.error());
  if (const int code = report_final(*final_video); code != kExitOk || a.out.empty()) return code;
  if (auto st = fetch_to(*server, id, "video", a.out); !st) return report(st.error());
  return kExitOk;
}

struct IdArgs : ServerArgs {
  std::string id;
  bool json_out = false;
  double timeout = 0;
  std::string out;
  std::string variant = "video";
};

int run_status(const IdArgs& a) {
  auto server = server_of(a.server);
  if (!server) return report(server.error());
  auto video = send_json(*server, call_to(*server, "GET", "/v1/videos/" + segment(a.id)));
  if (!video) return report(video.error());
  std::printf("%s\n", a.json_out ? video->dump().c_str() : summary(*video).c_str());
  return kExitOk;
}

int run_wait(const IdArgs& a) {
  auto server = server_of(a.server);
  if (!server) return report(server.error());
  if (a.timeout < 0) return report(make_error(Errc::invalid_argument, "--timeout must be >= 0 (0 = no limit)"));
  Progress progress(a.id, "%", Progress::stderr_is_terminal());
  auto video = wait_for(*server, a.id, a.timeout, progress);
  progress.finish();
  if (!video) return report(video.error());
  return report_final(*video);
}

int run_cancel(const IdArgs& a) {
  auto server = server_of(a.server);
  if (!server) return report(server.error());
  auto deleted = send_json(*server, call_to(*server, "DELETE", "/v1/videos/" + segment(a.id)));
  if (!deleted) return report(deleted.error());
  std::printf("reel: deleted %s\n", a.id.c_str());
  return kExitOk;
}

int run_fetch(const IdArgs& a) {
  auto server = server_of(a.server);
  if (!server) return report(server.error());
  if (auto st = check_variant(a.variant); !st) return report(st.error());
  const std::string out = a.out.empty() ? a.id + extension_of(a.variant) : a.out;
  if (auto st = check_output(out, extension_of(a.variant), "output"); !st) return report(st.error());
  if (auto st = fetch_to(*server, a.id, a.variant, out); !st) return report(st.error());
  return kExitOk;
}

struct ListArgs : ServerArgs {
  int limit = 20;
  bool json_out = false;
};

int run_ls(const ListArgs& a) {
  auto server = server_of(a.server);
  if (!server) return report(server.error());
  if (a.limit < 1) return report(make_error(Errc::invalid_argument, "--limit must be >= 1, got " + std::to_string(a.limit)));
  // Page by page (the server may cap a page below --limit), newest first.
  json videos = json::array();
  bool has_more = true;
  std::string after;
  while (has_more && static_cast<int>(videos.size()) < a.limit) {
    std::string path = "/v1/videos?order=desc&limit=" + std::to_string(a.limit - static_cast<int>(videos.size()));
    if (!after.empty()) path += "&after=" + segment(after);
    auto page = send_json(*server, call_to(*server, "GET", path));
    if (!page) return report(page.error());
    if (!page->contains("data") || !(*page)["data"].is_array())
      return report(make_error(Errc::io_error, "reel server " + server->url + ": GET /v1/videos did not answer a list"));
    for (auto& video : (*page)["data"])
      if (static_cast<int>(videos.size()) < a.limit) videos.push_back(video);
    has_more = page->value("has_more", false) && !(*page)["data"].empty();
    after = text_of(*page, "last_id");
    if (after.empty()) break;
  }
  if (a.json_out) {
    json list = {{"object", "list"}, {"data", videos}, {"has_more", has_more}};
    list["first_id"] = videos.empty() ? json(nullptr) : videos.front()["id"];
    list["last_id"] = videos.empty() ? json(nullptr) : videos.back()["id"];
    std::printf("%s\n", list.dump().c_str());
    return kExitOk;
  }
  for (const auto& video : videos) {
    std::string prompt = text_of(video, "prompt");
    if (prompt.size() > 60) prompt = prompt.substr(0, 57) + "...";
    std::printf("%s  \"%s\"\n", summary(video).c_str(), prompt.c_str());
  }
  return kExitOk;
}

CLI::App* add_id_command(CLI::App& app, const char* name, const char* help, IdArgs& a) {
  auto* sub = app.add_subcommand(name, help);
  sub->add_option("id", a.id, "the video's id (as 'reel submit' printed it)")->required();
  add_server_option(sub, a);
  return sub;
}

}  // namespace

Command add_submit(CLI::App& app, const Config&) {
  auto a = std::make_shared<SubmitArgs>();
  auto* sub = app.add_subcommand("submit", "queue a video on a reel server (reel serve); prints its id");
  sub->add_option("prompt", a->prompt, "what the video shows")->required();
  sub->add_option("--model,-m", a->model, "zoo name; default: the server's");
  sub->add_option("--seconds", a->seconds, "video length in seconds; default: the server's");
  sub->add_option("--size", a->size, "WxH of the output video; default: the server's");
  sub->add_option("--frames,-f", a->frames, "video length in frames (instead of --seconds)");
  sub->add_option("--fps", a->fps, "frames per second; default: the model's");
  sub->add_option("--steps,-s", a->steps, "solver steps; default: the model's");
  sub->add_option("--guidance,-g", a->guidance, "classifier-free guidance scale (1 = off); default: the model's");
  sub->add_option("--seed", a->seed, "seed of the initial noise; default: the server's")->check(CLI::NonNegativeNumber);
  sub->add_option("--negative", a->negative, "negative prompt");
  sub->add_option("--mode", a->mode, "standard, fifo, clips or pipefusion; default: standard");
  sub->add_option("--partitions", a->partitions, "fifo: windows in the queue");
  sub->add_option("--clips", a->clips, "clips: clips the video is split into");
  sub->add_option("--stages", a->stages, "pipefusion: pipeline stages");
  sub->add_option("--patches", a->patches, "pipefusion: patches per frame");
  sub->add_flag("--no-cache", a->no_cache, "do not use the server's approximate cache for this video");
  sub->add_flag("--wait,-w", a->wait, "then wait until it is done (exit 1 when it fails)");
  sub->add_option("--timeout", a->timeout, "with --wait: seconds to wait at most (0 = no limit)")->capture_default_str();
  sub->add_option("--out,-o", a->out, "then wait and download the video to this MP4 (implies --wait)");
  add_server_option(sub, *a);
  return [a] { return run_submit(*a); };
}

Command add_status(CLI::App& app, const Config&) {
  auto a = std::make_shared<IdArgs>();
  auto* sub = add_id_command(app, "status", "one video's state on a reel server", *a);
  sub->add_flag("--json", a->json_out, "print the video object as the server sent it");
  return [a] { return run_status(*a); };
}

Command add_ls(CLI::App& app, const Config&) {
  auto a = std::make_shared<ListArgs>();
  auto* sub = app.add_subcommand("ls", "the videos on a reel server, newest first");
  sub->add_option("--limit,-n", a->limit, "videos to list at most")->capture_default_str();
  sub->add_flag("--json", a->json_out, "print the list as JSON");
  add_server_option(sub, *a);
  return [a] { return run_ls(*a); };
}

Command add_wait(CLI::App& app, const Config&) {
  auto a = std::make_shared<IdArgs>();
  auto* sub = add_id_command(app, "wait", "wait until a video is done; exit 1 when it failed or was cancelled", *a);
  sub->add_option("--timeout", a->timeout, "seconds to wait at most, then exit 1 (0 = no limit)")->capture_default_str();
  return [a] { return run_wait(*a); };
}

Command add_cancel(CLI::App& app, const Config&) {
  auto a = std::make_shared<IdArgs>();
  add_id_command(app, "cancel", "stop a video and delete it and its files from the server", *a);
  return [a] { return run_cancel(*a); };
}

Command add_fetch(CLI::App& app, const Config&) {
  auto a = std::make_shared<IdArgs>();
  auto* sub = add_id_command(app, "fetch", "download a finished video (or its thumbnail or spritesheet)", *a);
  sub->add_option("--out,-o", a->out, "file to write (via FILE.part); default: ID.mp4, or ID.png for images");
  sub->add_option("--variant", a->variant, "video, thumbnail or spritesheet")->capture_default_str();
  return [a] { return run_fetch(*a); };
}

}  // namespace reel::cli
