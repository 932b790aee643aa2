// `reel serve` as users meet it: a real server process on a loopback port, driven over HTTP
// (cluster/http_client.hpp), writing real MP4s, killed with SIGKILL and started again.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cluster/http_client.hpp"
#include "cluster/http_server.hpp"
#include "cluster/video_api.hpp"
#include "video/metrics.hpp"
#include "video/mp4_reader.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using reel::cluster::HttpCall;
using reel::cluster::HttpReply;

const std::string kReel = std::string(REEL_BINARY_DIR) + "/cli/reel";
const std::string kPrompt = "a large red circle moving right on a striped navy background";

// A `reel serve` child process; its stdout's first line gives the port.
class Server {
 public:
  Server(const fs::path& data, const std::vector<std::string>& extra = {}) {
    int out[2];
    EXPECT_EQ(::pipe(out), 0);
    log_ = (data.parent_path() / ("serve-" + std::to_string(++starts_) + ".log")).string();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      FILE* err = std::fopen(log_.c_str(), "w");
      if (err != nullptr) ::dup2(fileno(err), 2);
      ::close(out[0]);
      ::setenv("OMP_WAIT_POLICY", "passive", 1);
      std::vector<std::string> args{kReel, "serve", "--listen", "127.0.0.1:0", "--data", data.string(), "--threads", "1"};
      for (const auto& e : extra) args.push_back(e);
      // The config (and with it serve.tokens) comes first when given.
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(kReel.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    char c = 0;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line.push_back(c);
    ::close(out[0]);
    const std::string marker = "http://127.0.0.1:";
    const size_t at = line.find(marker);
    if (at != std::string::npos) port_ = std::stoi(line.substr(at + marker.size()));
    EXPECT_GT(port_, 0) << "reel serve did not start: '" << line << "'\n" << log();
  }
  ~Server() { stop(SIGTERM); }

  // SIGTERM: an orderly stop; SIGKILL: a crash. Returns the exit status (-1 when killed).
  int stop(int signal) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::string log() const {
    std::ifstream in(log_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
  static inline int starts_ = 0;
};

HttpReply call(const std::string& method, const std::string& url, const std::string& body = "",
               std::vector<std::pair<std::string, std::string>> headers = {}, const std::string& type = "") {
  HttpCall c;
  c.method = method;
  c.url = url;
  c.body = body;
  c.headers = std::move(headers);
  c.content_type = type;
  c.timeout = std::chrono::seconds(120);
  auto r = reel::cluster::http_call(c);
  EXPECT_TRUE(r.ok()) << method << " " << url << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : HttpReply{};
}

json body_of(const HttpReply& r) {
  json j = json::parse(r.body, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.body;
  return j;
}

// Polls until the video reaches a final state (or ten minutes pass).
json wait_for(const Server& s, const std::string& id) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  json v;
  while (std::chrono::steady_clock::now() < deadline) {
    v = body_of(call("GET", s.url("/v1/videos/" + id)));
    const std::string status = v.value("status", "");
    if (status == "completed" || status == "failed" || status == "cancelled") return v;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ADD_FAILURE() << id << " did not end: " << v.dump();
  return v;
}

class Serve : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reel_serve_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path data() const { return dir_ / "data"; }
  // A video's content from the server, decoded.
  std::vector<reel::video::Frame> frames_of(const Server& s, const std::string& id) const {
    auto r = call("GET", s.url("/v1/videos/" + id + "/content"));
    const fs::path file = dir_ / (id + ".mp4");
    std::ofstream(file, std::ios::binary) << r.body;
    auto decoded = reel::video::read_video(file.string());
    EXPECT_TRUE(decoded.ok()) << id;
    return decoded.ok() ? std::move(*decoded) : std::vector<reel::video::Frame>{};
  }
  std::vector<fs::path> videos() const {
    std::vector<fs::path> out;
    if (fs::exists(data() / "videos"))
      for (const auto& e : fs::directory_iterator(data() / "videos")) out.push_back(e.path());
    return out;
  }
  fs::path dir_;
};

std::string create_json(const std::string& prompt, const std::string& extra = "") {
  return "{\"prompt\": \"" + prompt + "\"" + (extra.empty() ? "" : ", " + extra) + "}";
}

TEST_F(Serve, CreateRetrieveDownloadListAndDeleteAVideo) {
  Server s(data());
  auto created = call("POST", s.url("/v1/videos"), create_json(kPrompt, "\"size\": \"128x128\", \"num_inference_steps\": 4, \"seed\": 7"));
  ASSERT_EQ(created.status, 200) << created.body;
  json v = body_of(created);
  EXPECT_EQ(v["object"], "video");
  EXPECT_EQ(v["status"], "queued");
  EXPECT_EQ(v["size"], "128x128");
  EXPECT_EQ(v["mode"], "standard");  // the model's window, so one standard job
  const std::string id = v["id"];
  EXPECT_EQ(id.rfind("video_", 0), 0u);

  v = wait_for(s, id);
  ASSERT_EQ(v["status"], "completed") << v.dump();
  EXPECT_EQ(v["progress"], 100);
  EXPECT_EQ(v["frames_done"], v["frames"]);
  EXPECT_GE(v["completed_at"].get<int64_t>(), v["created_at"].get<int64_t>());

  auto mp4 = call("GET", s.url("/v1/videos/" + id + "/content"));
  ASSERT_EQ(mp4.status, 200);
  EXPECT_EQ(mp4.headers["content-type"], "video/mp4");
  ASSERT_GT(mp4.body.size(), 16u);
  EXPECT_EQ(mp4.body.substr(4, 4), "ftyp");
  const fs::path copy = dir_ / "copy.mp4";
  std::ofstream(copy, std::ios::binary) << mp4.body;
  auto info = reel::video::probe(copy.string());
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->width, 128);
  EXPECT_EQ(info->frames, v["frames"].get<int>());

  // A byte range is exactly those bytes.
  auto part = call("GET", s.url("/v1/videos/" + id + "/content"), "", {{"Range", "bytes=4-11"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, mp4.body.substr(4, 8));
  EXPECT_EQ(part.headers["content-range"], "bytes 4-11/" + std::to_string(mp4.body.size()));
  auto outside = call("GET", s.url("/v1/videos/" + id + "/content"), "", {{"Range", "bytes=99999999-"}});
  EXPECT_EQ(outside.status, 416);

  for (const std::string variant : {"thumbnail", "spritesheet"}) {
    auto png = call("GET", s.url("/v1/videos/" + id + "/content?variant=" + variant));
    ASSERT_EQ(png.status, 200) << variant << ": " << png.body;
    EXPECT_EQ(png.headers["content-type"], "image/png");
    EXPECT_EQ(png.body.substr(1, 3), "PNG") << variant;
  }

  auto list = body_of(call("GET", s.url("/v1/videos?limit=10")));
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], id);
  EXPECT_EQ(list["has_more"], false);

  auto deleted = call("DELETE", s.url("/v1/videos/" + id));
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(body_of(deleted)["deleted"], true);
  EXPECT_EQ(call("GET", s.url("/v1/videos/" + id)).status, 404);
  EXPECT_TRUE(videos().empty()) << "files left: " << videos().size();
  EXPECT_EQ(s.stop(SIGTERM), 0) << s.log();
}

TEST_F(Serve, BadRequestsAreAnsweredInOpenAIsErrorShapeNamingTheField) {
  Server s(data());
  auto expect_error = [&](const HttpReply& r, int status, const std::string& param, const std::string& mentions) {
    EXPECT_EQ(r.status, status) << r.body;
    json e = body_of(r);
    ASSERT_TRUE(e.contains("error")) << r.body;
    if (!param.empty()) {
      EXPECT_EQ(e["error"]["param"], param) << r.body;
    }
    EXPECT_NE(e["error"]["message"].get<std::string>().find(mentions), std::string::npos) << r.body;
  };
  const std::string videos = s.url("/v1/videos");
  expect_error(call("POST", videos, create_json("a red glorp moving left")), 400, "prompt", "glorp");
  expect_error(call("POST", videos, create_json(kPrompt, "\"size\": \"7x5\"")), 400, "size", "cannot be made");
  expect_error(call("POST", videos, create_json(kPrompt, "\"size\": \"big\"")), 400, "size", "WIDTHxHEIGHT");
  expect_error(call("POST", videos, create_json(kPrompt, "\"seconds\": \"soon\"")), 400, "seconds", "number");
  expect_error(call("POST", videos, create_json(kPrompt, "\"num_inference_steps\": 0")), 400, "num_inference_steps", "between");
  expect_error(call("POST", videos, create_json(kPrompt, "\"mode\": \"sideways\"")), 400, "mode", "sideways");
  expect_error(call("POST", videos, create_json(kPrompt, "\"model\": \"no-such-model\"")), 400, "model", "no-such-model");
  expect_error(call("POST", videos, create_json(kPrompt, "\"colour\": 3")), 400, "colour", "colour");
  expect_error(call("POST", videos, "{\"seconds\": 2}"), 400, "prompt", "required");
  expect_error(call("POST", videos, "{not json"), 400, "", "JSON");
  expect_error(call("GET", s.url("/v1/videos/video_999")), 404, "video_id", "video_999");
  expect_error(call("GET", s.url("/v1/videos/nonsense/content")), 404, "video_id", "nonsense");
  expect_error(call("PUT", videos, "{}"), 405, "", "allowed");
  expect_error(call("GET", s.url("/v2/things")), 404, "", "no route");
  // Over the body limit (1 MB by default): 413 before the body is read.
  expect_error(call("POST", videos, std::string(2'000'000, ' ')), 413, "", "limit");
  // A file upload in a form: refused, the field named.
  const std::string form = "--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n" + kPrompt +
                           "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"input_reference\"; filename=\"a.png\"\r\n"
                           "Content-Type: image/png\r\n\r\nPNG\r\n--XyZ--\r\n";
  expect_error(call("POST", videos, form, {}, "multipart/form-data; boundary=XyZ"), 400, "", "input_reference");
  // Nothing was accepted, nothing written, and the server still answers.
  auto list = body_of(call("GET", videos));
  EXPECT_TRUE(list["data"].empty()) << list.dump();
  EXPECT_TRUE(this->videos().empty());
  EXPECT_EQ(call("GET", s.url("/health")).status, 200);
}

TEST_F(Serve, AMultipartFormAsTheSdkSendsItMakesAFifoVideoWhenLongerThanTheWindow) {
  Server s(data());
  const std::string form = "--b0undary\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n" + kPrompt +
                           "\r\n--b0undary\r\nContent-Disposition: form-data; name=\"seconds\"\r\n\r\n3\r\n"
                           "--b0undary\r\nContent-Disposition: form-data; name=\"size\"\r\n\r\n64x64\r\n"
                           "--b0undary\r\nContent-Disposition: form-data; name=\"num_inference_steps\"\r\n\r\n8\r\n"
                           "--b0undary--\r\n";
  auto created = call("POST", s.url("/v1/videos"), form, {}, "multipart/form-data; boundary=b0undary");
  ASSERT_EQ(created.status, 200) << created.body;
  json v = body_of(created);
  EXPECT_EQ(v["mode"], "fifo");   // 3 s at 8 fps = 24 frames, more than the model's 16
  EXPECT_EQ(v["frames"], 24);
  EXPECT_EQ(v["seconds"], "3");
  v = wait_for(s, v["id"]);
  EXPECT_EQ(v["status"], "completed") << v.dump();
}

TEST_F(Serve, DeletingARunningFifoJobStopsItAtOnceAndRemovesItsFiles) {
  Server s(data());
  auto created = call("POST", s.url("/v1/videos"), create_json(kPrompt, "\"num_frames\": 2000, \"size\": \"64x64\""));
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string id = body_of(created)["id"];
  // Wait for frames to exist: the partial MP4 plays while the job runs.
  json v;
  for (int i = 0; i < 600; ++i) {
    v = body_of(call("GET", s.url("/v1/videos/" + id)));
    if (v["frames_done"].get<int>() >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(v["status"], "in_progress") << v.dump();
  auto partial = call("GET", s.url("/v1/videos/" + id + "/content"));
  EXPECT_EQ(partial.status, 200);
  EXPECT_EQ(partial.body.substr(4, 4), "ftyp");
  EXPECT_EQ(partial.headers["reel-partial"], "true");
  EXPECT_EQ(call("GET", s.url("/v1/videos/" + id + "/content?variant=thumbnail")).status, 409);

  const auto t0 = std::chrono::steady_clock::now();
  auto deleted = call("DELETE", s.url("/v1/videos/" + id));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_LT(seconds, 30.0);  // a frame takes well under a second; the bound only catches a run to the end
  EXPECT_EQ(call("GET", s.url("/v1/videos/" + id)).status, 404);
  EXPECT_TRUE(videos().empty()) << "files left: " << videos().size();
  // The service goes on: its queue is free for the next job.
  EXPECT_EQ(body_of(call("GET", s.url("/health")))["queue_depth"], 0);
}

TEST_F(Serve, AFullQueueIsAnswered429WithRetryAfter) {
  Server s(data(), {"--queue", "1"});
  auto first = call("POST", s.url("/v1/videos"), create_json(kPrompt, "\"num_frames\": 2000, \"size\": \"64x64\""));
  ASSERT_EQ(first.status, 200) << first.body;
  auto second = call("POST", s.url("/v1/videos"), create_json(kPrompt));
  EXPECT_EQ(second.status, 429) << second.body;
  EXPECT_EQ(second.headers["retry-after"], "5");
  EXPECT_EQ(body_of(second)["error"]["type"], "rate_limit_error");
  EXPECT_EQ(call("DELETE", s.url("/v1/videos/" + body_of(first)["id"].get<std::string>())).status, 200);
  EXPECT_EQ(call("POST", s.url("/v1/videos"), create_json(kPrompt, "\"num_inference_steps\": 2")).status, 200);
}

TEST_F(Serve, EventsStreamEveryStepAndEndWithTheFinalState) {
  Server s(data());
  auto created = call("POST", s.url("/v1/videos"), create_json(kPrompt, "\"num_inference_steps\": 6"));
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string id = body_of(created)["id"];
  HttpCall c;
  c.url = s.url("/v1/videos/" + id + "/events");
  c.timeout = std::chrono::seconds(120);
  std::string stream;
  auto r = reel::cluster::http_stream(c, [&](std::string_view piece) {
    stream.append(piece);
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->headers["content-type"], "text/event-stream");
  std::vector<json> events;
  for (size_t at = 0; (at = stream.find("data: ", at)) != std::string::npos;) {
    const size_t end = stream.find('\n', at);
    events.push_back(json::parse(stream.substr(at + 6, end - at - 6)));
    at = end;
  }
  ASSERT_GE(events.size(), 3u) << stream;
  EXPECT_EQ(events.back()["status"], "completed");
  int last = -1;
  for (const auto& e : events) {
    EXPECT_GE(e["progress"].get<int>(), last) << stream;  // never goes back
    last = e["progress"];
  }
}

TEST_F(Serve, TokensMapToTenantsThatSeeOnlyTheirOwnJobs) {
  const fs::path config = dir_ / "serve.yaml";
  std::ofstream(config) << "models:\n  zoo: " << REEL_SOURCE_DIR << "/models/zoo\n"
                        << "serve:\n  tokens: {\"token-of-alice\": alice, \"token-of-bob1\": bob}\n";
  // --config goes before the subcommand: set it through the environment for the child.
  ::setenv("REEL_CONFIG", config.c_str(), 1);
  Server s(data());
  ::unsetenv("REEL_CONFIG");
  const auto alice = std::vector<std::pair<std::string, std::string>>{{"Authorization", "Bearer token-of-alice"}};
  const auto bob = std::vector<std::pair<std::string, std::string>>{{"Authorization", "Bearer token-of-bob1"}};
  EXPECT_EQ(call("GET", s.url("/v1/videos")).status, 401);
  EXPECT_EQ(call("GET", s.url("/v1/videos"), "", {{"Authorization", "Bearer wrong-token"}}).status, 401);
  auto created = call("POST", s.url("/v1/videos"), create_json(kPrompt, "\"num_inference_steps\": 2"), alice);
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string id = body_of(created)["id"];
  EXPECT_EQ(call("GET", s.url("/v1/videos/" + id), "", alice).status, 200);
  EXPECT_EQ(call("GET", s.url("/v1/videos/" + id), "", bob).status, 404);
  EXPECT_EQ(call("DELETE", s.url("/v1/videos/" + id), "", bob).status, 404);
  EXPECT_EQ(body_of(call("GET", s.url("/v1/videos"), "", bob))["data"].size(), 0u);
  EXPECT_EQ(body_of(call("GET", s.url("/v1/videos"), "", alice))["data"].size(), 1u);
}

TEST_F(Serve, AfterKillDashNineARestartFinishesEveryAcceptedJobWithTheSameVideo) {
  const std::string fifo = create_json(kPrompt, "\"num_frames\": 48, \"size\": \"32x32\", \"seed\": 5");
  const std::string standard = create_json("a small green square moving up on a checkered background",
                                           "\"num_inference_steps\": 6, \"size\": \"32x32\", \"seed\": 9, "
                                           "\"cache\": false");  // the twin below would be a cache hit
  std::string fifo_id, standard_id;
  {
    Server s(data());
    auto a = call("POST", s.url("/v1/videos"), fifo);
    auto b = call("POST", s.url("/v1/videos"), standard);
    ASSERT_EQ(a.status, 200) << a.body;
    ASSERT_EQ(b.status, 200) << b.body;
    fifo_id = body_of(a)["id"];
    standard_id = body_of(b)["id"];
    for (int i = 0; i < 1200; ++i) {  // killed mid-job, past its first checkpoint (every 8 frames)
      if (body_of(call("GET", s.url("/v1/videos/" + fifo_id)))["frames_done"].get<int>() >= 12) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    EXPECT_EQ(s.stop(SIGKILL), -1);
  }
  Server s(data());
  json a = wait_for(s, fifo_id);
  json b = wait_for(s, standard_id);
  ASSERT_EQ(a["status"], "completed") << a.dump() << s.log();
  ASSERT_EQ(b["status"], "completed") << b.dump() << s.log();
  // The FIFO job went on from its checkpoint: the frames before it were not made again.
  EXPECT_GE(a["resumed_frames"].get<int>(), 8) << a.dump();
  EXPECT_EQ(a["resumed_frames"].get<int>() % 8, 0) << a.dump();
  // A completed FIFO job keeps only its end state (for extensions), until it is deleted.
  EXPECT_TRUE(fs::exists(data() / "checkpoints" / fifo_id.substr(6) / "state.safetensors"));
  // The same jobs undisturbed make the same frames.
  json a2 = wait_for(s, body_of(call("POST", s.url("/v1/videos"), fifo))["id"]);
  json b2 = wait_for(s, body_of(call("POST", s.url("/v1/videos"), standard))["id"]);
  for (const auto& [x, y] : {std::pair{a, a2}, std::pair{b, b2}}) {
    auto fx = frames_of(s, x["id"]), fy = frames_of(s, y["id"]);
    ASSERT_EQ(fx.size(), fy.size());
    ASSERT_FALSE(fx.empty());
    for (size_t i = 0; i < fx.size(); ++i) EXPECT_EQ(fx[i].rgb, fy[i].rgb) << x["id"] << " frame " << i;
  }
  EXPECT_EQ(call("DELETE", s.url("/v1/videos/" + fifo_id)).status, 200);
  EXPECT_FALSE(fs::exists(data() / "checkpoints" / fifo_id.substr(6))) << "the end state outlived its job";
}

TEST_F(Serve, AClipsJobKilledMidwayGoesOnFromItsCheckpointAndMakesTheSameVideo) {
  const std::string clips = create_json(kPrompt, "\"mode\": \"clips\", \"num_frames\": 32, \"clips\": 2, "
                                                 "\"num_inference_steps\": 160, \"size\": \"32x32\", \"seed\": 4");
  std::string id;
  {
    Server s(data());
    auto a = call("POST", s.url("/v1/videos"), clips);
    ASSERT_EQ(a.status, 200) << a.body;
    id = body_of(a)["id"];
    for (int i = 0; i < 2400; ++i) {  // killed past a checkpoint (every 8 steps), before the end
      if (body_of(call("GET", s.url("/v1/videos/" + id)))["progress"].get<int>() >= 20) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    EXPECT_EQ(s.stop(SIGKILL), -1);
  }
  Server s(data());
  json a = wait_for(s, id);
  ASSERT_EQ(a["status"], "completed") << a.dump() << s.log();
  EXPECT_GE(a["resumed_steps"].get<int>(), 8) << a.dump();
  EXPECT_LT(a["resumed_steps"].get<int>(), 160) << a.dump();
  EXPECT_EQ(a["resumed_steps"].get<int>() % 8, 0) << a.dump();
  json b = wait_for(s, body_of(call("POST", s.url("/v1/videos"), clips))["id"]);
  EXPECT_EQ(b["resumed_steps"], 0);
  const std::vector<std::vector<reel::video::Frame>> videos{frames_of(s, a["id"]), frames_of(s, b["id"])};
  ASSERT_EQ(videos[0].size(), 32u);
  ASSERT_EQ(videos[1].size(), 32u);
  for (size_t i = 0; i < videos[0].size(); ++i) EXPECT_EQ(videos[0][i].rgb, videos[1][i].rgb) << "frame " << i;
}

TEST_F(Serve, AnExtensionContinuesACompletedFifoVideoWithANewPrompt) {
  Server s(data());
  auto created = call("POST", s.url("/v1/videos"),
                      create_json(kPrompt, "\"mode\": \"fifo\", \"num_frames\": 32, \"size\": \"32x32\", \"seed\": 6"));
  ASSERT_EQ(created.status, 200) << created.body;
  json source = wait_for(s, body_of(created)["id"]);
  ASSERT_EQ(source["status"], "completed") << source.dump();
  const std::string id = source["id"];
  // As the SDK's videos.extend sends it: a form with video[id].
  const std::string form = "--e\r\nContent-Disposition: form-data; name=\"video[id]\"\r\n\r\n" + id +
                           "\r\n--e\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n"
                           "a small green square moving up on a checkered background\r\n"
                           "--e\r\nContent-Disposition: form-data; name=\"seconds\"\r\n\r\n2\r\n--e--\r\n";
  auto extended = call("POST", s.url("/v1/videos/extensions"), form, {}, "multipart/form-data; boundary=e");
  ASSERT_EQ(extended.status, 200) << extended.body;
  json v = body_of(extended);
  EXPECT_EQ(v["frames"], 32 + 16);  // 2 s at 8 fps more
  EXPECT_EQ(v["mode"], "fifo");
  v = wait_for(s, v["id"]);
  ASSERT_EQ(v["status"], "completed") << v.dump() << s.log();
  EXPECT_EQ(v["resumed_frames"], 32);  // the source's frames were taken, not made again
  auto before = frames_of(s, id), after = frames_of(s, v["id"]);
  ASSERT_EQ(before.size(), 32u);
  ASSERT_EQ(after.size(), 48u);
  // The first 32 frames are the source's (encoded again: x264 may round them a little apart).
  after.resize(32);
  auto psnr = reel::video::psnr(before, after);
  ASSERT_TRUE(psnr.ok());
  EXPECT_GT(*psnr, 40.0);
  // Only completed FIFO videos can be continued; unknown ones are 404.
  auto standard = call("POST", s.url("/v1/videos"), create_json(kPrompt, "\"num_inference_steps\": 2"));
  const std::string sid = body_of(standard)["id"];
  wait_for(s, sid);
  auto refused = call("POST", s.url("/v1/videos/extensions"),
                      "{\"video\": {\"id\": \"" + sid + "\"}, \"prompt\": \"" + kPrompt + "\", \"seconds\": 2}");
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_EQ(body_of(refused)["error"]["code"], "not_extendable");
  EXPECT_EQ(call("POST", s.url("/v1/videos/extensions"),
                 "{\"video_id\": \"video_99\", \"prompt\": \"" + kPrompt + "\", \"seconds\": 2}").status, 404);
}

TEST_F(Serve, MetricsCountJobsByStateAndTheirLatency) {
  Server s(data());
  auto created = call("POST", s.url("/v1/videos"), create_json(kPrompt, "\"num_inference_steps\": 2"));
  ASSERT_EQ(created.status, 200);
  wait_for(s, body_of(created)["id"]);
  auto m = call("GET", s.url("/metrics"));
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("reel_jobs{state=\"completed\"} 1"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("reel_job_seconds_count 1"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("reel_queue_depth 0"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("reel_model_calls_total"), std::string::npos) << m.body;
}

TEST_F(Serve, AnAddressInUseOrABadFlagExitsWithAMessage) {
  Server first(data());
  const std::string port = first.url("").substr(std::string("http://127.0.0.1:").size());
  const std::string cmd = kReel + " serve --listen 127.0.0.1:" + port + " --data " + (dir_ / "other").string() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  EXPECT_EQ(WEXITSTATUS(status), 1) << out;
  EXPECT_NE(out.find("cannot listen on 127.0.0.1:" + port), std::string::npos) << out;
  p = ::popen((kReel + " serve --listen nowhere --data " + (dir_ / "other").string() + " 2>&1").c_str(), "r");
  out.clear();
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(WEXITSTATUS(::pclose(p)), 2) << out;
  EXPECT_NE(out.find("--listen"), std::string::npos) << out;
}

TEST(VideoApi, SizesAreMadeByTheWholeFactorNearestTheModelsOwnSize) {
  using reel::cluster::plan_size;
  auto p = plan_size(256, 256, 32, 32, 8, 8);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->width, 32);
  EXPECT_EQ(p->upscale, 8);
  p = plan_size(32, 32, 32, 32, 8, 8);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->upscale, 1);
  p = plan_size(96, 64, 32, 32, 8, 8);  // 48x32 at x2 is nearer 32x32 than 96x64 at x1 or 24x16 at x4
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->upscale, 2);
  EXPECT_EQ(p->width, 48);
  auto bad = plan_size(7, 5, 32, 32, 8, 8);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("256x256"), std::string::npos) << bad.error().message;
}

TEST(VideoApi, VideoIdsAreTheJobIdsAndNothingElse) {
  using reel::cluster::parse_video_id;
  EXPECT_EQ(reel::cluster::video_id(12), "video_12");
  EXPECT_EQ(parse_video_id("video_12"), 12u);
  EXPECT_FALSE(parse_video_id("video_"));
  EXPECT_FALSE(parse_video_id("video_1x"));
  EXPECT_FALSE(parse_video_id("12"));
  EXPECT_FALSE(parse_video_id("video_99999999999999999999999"));
  EXPECT_EQ(reel::cluster::percent_decode("a%20b+c%zz", true), "a b c%zz");
}

}  // namespace
