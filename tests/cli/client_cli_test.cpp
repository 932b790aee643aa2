// reel submit | status | ls | wait | cancel | fetch end to end: against a real `reel serve`
// child process, and against a scripted fake server for what a healthy server rarely does
// (events that fail, 429, 5xx, the token header).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kReel = std::string(REEL_BINARY_DIR) + "/cli/reel";
const std::string kPrompt = "\"a large red circle moving right on a striped navy background\"";
// Any one client command gets this long before `timeout` kills it: a slow 2-core machine runs
// the server's jobs beside it.
constexpr int kCommandSeconds = 300;

struct Result {
  int code = -1;
  std::string out, err;  // stdout, stderr
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

class ClientCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reel_client_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "out");
    // The commands must not pick these up from whoever runs the tests.
    ::unsetenv("REEL_SERVER");
    ::unsetenv("REEL_TOKEN");
  }

  void TearDown() override {
    stop_server();
    fs::remove_all(dir_);
  }

  std::string path(const std::string& name) const { return (dir_ / "out" / name).string(); }

  // `reel ARGS`, killed after kCommandSeconds; `env` goes before it ("REEL_TOKEN=x").
  Result reel(const std::string& args, const std::string& env = "") const {
    const std::string err_file = (dir_ / "stderr.txt").string();
    const std::string cmd = env + " OMP_WAIT_POLICY=passive timeout -k 10 " + std::to_string(kCommandSeconds) + " " +
                            kReel + " " + args + " 2>" + err_file;
    Result run;
    FILE* pipe = popen(cmd.c_str(), "r");
    if (pipe == nullptr) return run;
    std::array<char, 4096> buf{};
    size_t n = 0;
    while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) run.out.append(buf.data(), n);
    const int status = pclose(pipe);
    run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    run.err = read_file(err_file);
    return run;
  }

  // A client command against the server started by start_server().
  Result client(const std::string& args) const { return reel(args + " --server " + server_); }

  // Starts `reel serve --listen 127.0.0.1:0 --data DIR` and reads its URL from the first line.
  void start_server() {
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    const std::string data = (dir_ / "data").string();
    server_pid_ = ::fork();
    ASSERT_GE(server_pid_, 0);
    if (server_pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      ::setenv("OMP_WAIT_POLICY", "passive", 1);
      ::execl(kReel.c_str(), kReel.c_str(), "serve", "--listen", "127.0.0.1:0", "--data", data.c_str(),
              static_cast<char*>(nullptr));
      std::perror("exec reel serve");
      ::_exit(127);
    }
    ::close(out[1]);
    server_out_fd_ = out[0];
    // The first line, within 3 minutes (the server loads its default model first).
    std::string first;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
    while (first.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{server_out_fd_, POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      char c[256];
      const ssize_t n = ::read(server_out_fd_, c, sizeof c);
      if (n <= 0) break;
      first.append(c, static_cast<size_t>(n));
    }
    const std::string prefix = "reel: serving on ";
    ASSERT_EQ(first.rfind(prefix, 0), 0u) << "reel serve's first line: '" << first << "'";
    // The URL, up to the end of the line or the details that may follow it.
    server_ = first.substr(prefix.size(), first.find_first_of(" \n", prefix.size()) - prefix.size());
    ASSERT_EQ(server_.rfind("http://127.0.0.1:", 0), 0u) << server_;
    // Keep reading what it prints, so that a full pipe never blocks it.
    drain_ = std::thread([fd = server_out_fd_] {
      char c[4096];
      while (::read(fd, c, sizeof c) > 0) {
      }
    });
  }

  // SIGTERM, then at most 2 minutes for it to stop; it must exit 0.
  void stop_server() {
    if (server_pid_ > 0) {
      ::kill(server_pid_, SIGTERM);
      int status = 0;
      pid_t done = 0;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
      while ((done = ::waitpid(server_pid_, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (done == 0) {
        ::kill(server_pid_, SIGKILL);
        ::waitpid(server_pid_, &status, 0);
        ADD_FAILURE() << "reel serve did not stop within 2 minutes of SIGTERM";
      } else {
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
            << "reel serve after SIGTERM: " << (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                                                  : "signal " + std::to_string(WTERMSIG(status)));
      }
      server_pid_ = -1;
    }
    if (drain_.joinable()) drain_.join();
    if (server_out_fd_ >= 0) ::close(server_out_fd_);
    server_out_fd_ = -1;
  }

  // Submits and returns the id, the only line on stdout.
  std::string submit(const std::string& args) {
    auto run = client("submit " + kPrompt + " " + args);
    EXPECT_EQ(run.code, 0) << run.err;
    auto lines = lines_of(run.out);
    EXPECT_EQ(lines.size(), 1u) << run.out;
    if (lines.empty()) return "";
    EXPECT_EQ(lines[0].rfind("video_", 0), 0u) << run.out;
    return lines[0];
  }

  // Exit 2, stderr one "reel: error:" line that mentions `mentions`, nothing on stdout.
  void expect_usage_error(const Result& run, const std::string& what, const std::string& mentions) {
    EXPECT_EQ(run.code, 2) << what << "\n" << run.err;
    EXPECT_EQ(run.err.rfind("reel: error:", 0), 0u) << what << "\n" << run.err;
    EXPECT_EQ(lines_of(run.err).size(), 1u) << what << "\n" << run.err;
    EXPECT_NE(run.err.find(mentions), std::string::npos) << what << "\n" << run.err;
    EXPECT_EQ(run.out, "") << what;
  }

  fs::path dir_;
  std::string server_;
  pid_t server_pid_ = -1;
  int server_out_fd_ = -1;
  std::thread drain_;
};

// An MP4 starts with its ftyp box: 4 bytes of size, then "ftyp".
void expect_mp4(const std::string& file) {
  ASSERT_TRUE(fs::exists(file)) << file;
  const std::string bytes = read_file(file);
  ASSERT_GT(bytes.size(), 8u) << file;
  EXPECT_EQ(bytes.substr(4, 4), "ftyp") << file;
  EXPECT_FALSE(fs::exists(file + ".part")) << file;
}

TEST_F(ClientCli, SubmitWaitFetchStatusLsAndCancelFollowAJobToItsVideo) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  const std::string id = submit("--steps 2");
  ASSERT_FALSE(id.empty());

  auto wait = client("wait " + id + " --timeout 600");
  ASSERT_EQ(wait.code, 0) << wait.err;
  EXPECT_NE(wait.err.find(id + " completed"), std::string::npos) << wait.err;
  EXPECT_EQ(wait.out, "");

  auto fetch = client("fetch " + id + " -o " + path("v.mp4"));
  ASSERT_EQ(fetch.code, 0) << fetch.err;
  expect_mp4(path("v.mp4"));
  auto thumb = client("fetch " + id + " --variant thumbnail -o " + path("t.png"));
  ASSERT_EQ(thumb.code, 0) << thumb.err;
  EXPECT_EQ(read_file(path("t.png")).substr(0, 8), "\x89PNG\r\n\x1a\n");

  auto status = client("status " + id);
  ASSERT_EQ(status.code, 0) << status.err;
  ASSERT_EQ(lines_of(status.out).size(), 1u) << status.out;
  EXPECT_EQ(status.out.rfind(id + "  completed  100%", 0), 0u) << status.out;
  EXPECT_NE(status.out.find("shapes-m"), std::string::npos) << status.out;
  auto raw = client("status " + id + " --json");
  ASSERT_EQ(raw.code, 0) << raw.err;
  auto video = json::parse(raw.out, nullptr, false);
  ASSERT_TRUE(video.is_object()) << raw.out;
  EXPECT_EQ(video["id"], id);
  EXPECT_EQ(video["object"], "video");
  EXPECT_EQ(video["status"], "completed");

  auto ls = client("ls");
  ASSERT_EQ(ls.code, 0) << ls.err;
  ASSERT_EQ(lines_of(ls.out).size(), 1u) << ls.out;
  EXPECT_EQ(ls.out.rfind(id + "  completed", 0), 0u) << ls.out;
  auto ls_json = client("ls --json");
  ASSERT_EQ(ls_json.code, 0) << ls_json.err;
  auto list = json::parse(ls_json.out, nullptr, false);
  ASSERT_TRUE(list.is_object() && list["data"].is_array() && list["data"].size() == 1) << ls_json.out;
  EXPECT_EQ(list["data"][0]["id"], id);

  auto cancel = client("cancel " + id);
  ASSERT_EQ(cancel.code, 0) << cancel.err;
  EXPECT_EQ(cancel.out, "reel: deleted " + id + "\n");
  expect_usage_error(client("status " + id), "status after delete", id);
  expect_usage_error(client("fetch " + id + " -o " + path("gone.mp4")), "fetch after delete", id);
  EXPECT_FALSE(fs::exists(path("gone.mp4")));
  EXPECT_FALSE(fs::exists(path("gone.mp4.part")));
  auto empty = client("ls");
  ASSERT_EQ(empty.code, 0) << empty.err;
  EXPECT_EQ(empty.out, "");
}

TEST_F(ClientCli, SubmitWithOutWaitsDownloadsAndLsListsNewestFirst) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  auto run = client("submit " + kPrompt + " --steps 2 --seed 5 --size 64x64 --timeout 600 -o " + path("w.mp4"));
  ASSERT_EQ(run.code, 0) << run.err;
  auto lines = lines_of(run.out);
  ASSERT_EQ(lines.size(), 1u) << run.out;
  const std::string first = lines[0];
  EXPECT_NE(run.err.find(first + " completed"), std::string::npos) << run.err;
  expect_mp4(path("w.mp4"));

  const std::string second = submit("--steps 2 --wait --timeout 600");
  ASSERT_FALSE(second.empty());
  EXPECT_NE(second, first);
  auto ls = client("ls");
  ASSERT_EQ(ls.code, 0) << ls.err;
  auto rows = lines_of(ls.out);
  ASSERT_EQ(rows.size(), 2u) << ls.out;
  EXPECT_EQ(rows[0].rfind(second + " ", 0), 0u) << ls.out;
  EXPECT_EQ(rows[1].rfind(first + " ", 0), 0u) << ls.out;
  EXPECT_NE(rows[1].find("64x64"), std::string::npos) << ls.out;
  auto one = client("ls --limit 1");
  ASSERT_EQ(one.code, 0) << one.err;
  ASSERT_EQ(lines_of(one.out).size(), 1u) << one.out;
  EXPECT_EQ(one.out.rfind(second + " ", 0), 0u) << one.out;
}

TEST_F(ClientCli, ARunningJobCannotBeFetchedTimesOutAWaitAndIsGoneOnceCancelled) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  // A minute or more of work on this machine: it is still running when the commands below ask.
  // Standard mode: a running FIFO or clips job's video can be fetched as far as it is written.
  const std::string id = submit("--mode standard --frames 32 --steps 1000");
  ASSERT_FALSE(id.empty());
  auto fetch = client("fetch " + id + " -o " + path("early.mp4"));
  EXPECT_EQ(fetch.code, 2) << fetch.err;  // 409: not ready
  EXPECT_EQ(fetch.err.rfind("reel: error:", 0), 0u) << fetch.err;
  EXPECT_FALSE(fs::exists(path("early.mp4")));
  EXPECT_FALSE(fs::exists(path("early.mp4.part")));

  auto wait = client("wait " + id + " --timeout 1");
  EXPECT_EQ(wait.code, 1) << wait.err;
  EXPECT_NE(wait.err.find("timed out"), std::string::npos) << wait.err;
  EXPECT_NE(wait.err.find(id), std::string::npos) << wait.err;

  auto cancel = client("cancel " + id);
  ASSERT_EQ(cancel.code, 0) << cancel.err;
  EXPECT_EQ(cancel.out, "reel: deleted " + id + "\n");
  expect_usage_error(client("wait " + id + " --timeout 60"), "wait after delete", id);
  expect_usage_error(client("cancel " + id), "cancel after delete", id);
}

TEST_F(ClientCli, FieldsTheServerRefusesAreUsageErrorsWithItsMessage) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  expect_usage_error(client("submit " + kPrompt + " --size 7x5"), "--size 7x5", "size");
  expect_usage_error(client("submit " + kPrompt + " --steps 0"), "--steps 0", "num_inference_steps");
  expect_usage_error(client("submit " + kPrompt + " --mode sideways"), "--mode sideways", "mode");
  expect_usage_error(client("submit \"a purple dragon\""), "unknown words", "prompt");
  expect_usage_error(client("submit " + kPrompt + " --model no-such-model"), "--model", "no-such-model");
  expect_usage_error(client("status video_999999"), "unknown id", "video_999999");
  expect_usage_error(client("fetch video_999999 -o " + path("x.mp4")), "unknown id", "video_999999");
  auto ls = client("ls");  // nothing was queued
  ASSERT_EQ(ls.code, 0) << ls.err;
  EXPECT_EQ(ls.out, "");
}

TEST_F(ClientCli, AnUnreachableServerIsAFailureThatNamesIt) {
  // Port 1: nothing listens there.
  for (const std::string& args : {"submit " + kPrompt, std::string("status video_1"), std::string("ls"),
                                 std::string("wait video_1"), std::string("cancel video_1"),
                                 "fetch video_1 -o " + path("v.mp4")}) {
    auto run = reel(args + " --server http://127.0.0.1:1");
    EXPECT_EQ(run.code, 1) << args << "\n" << run.err;
    EXPECT_EQ(run.err.rfind("reel: error:", 0), 0u) << args << "\n" << run.err;
    EXPECT_NE(run.err.find("http://127.0.0.1:1"), std::string::npos) << args << "\n" << run.err;
    EXPECT_EQ(run.out, "") << args;
  }
  auto from_env = reel("ls", "REEL_SERVER=http://127.0.0.1:1");
  EXPECT_EQ(from_env.code, 1) << from_env.err;
  EXPECT_NE(from_env.err.find("http://127.0.0.1:1"), std::string::npos) << from_env.err;
  EXPECT_TRUE(fs::is_empty(dir_ / "out"));
}

TEST_F(ClientCli, BadFlagsAreUsageErrors) {
  auto usage = [&](const std::string& args, const std::string& mentions) {
    auto run = reel(args + " --server http://127.0.0.1:1");
    EXPECT_EQ(run.code, 2) << args << "\n" << run.err;
    EXPECT_EQ(run.err.rfind("reel: error:", 0), 0u) << args << "\n" << run.err;
    EXPECT_NE(run.err.find(mentions), std::string::npos) << args << "\n" << run.err;
  };
  usage("submit", "prompt");
  usage("submit " + kPrompt + " --steps two", "--steps");
  usage("submit " + kPrompt + " --seed -3", "--seed");
  usage("submit " + kPrompt + " -o " + path("v.avi"), ".mp4");
  usage("submit " + kPrompt + " --wait --timeout -1", "--timeout");
  usage("status", "id");
  usage("ls --limit 0", "--limit");
  usage("wait video_1 --timeout -1", "--timeout");
  usage("fetch video_1 --variant gif", "--variant");
  usage("fetch video_1 -o " + path("v.png"), ".mp4");
  usage("fetch video_1 --variant thumbnail -o " + path("t.mp4"), ".png");
  auto bad_url = reel("ls --server ftp://127.0.0.1:1");
  EXPECT_EQ(bad_url.code, 2) << bad_url.err;
  EXPECT_NE(bad_url.err.find("http://"), std::string::npos) << bad_url.err;
  EXPECT_TRUE(fs::is_empty(dir_ / "out"));
}

// A server on 127.0.0.1 that answers each request (one per connection) with what `reply`
// returns for it, and records the requests' heads.
class FakeServer {
 public:
  using Reply = std::function<std::string(const std::string& method, const std::string& target)>;

  explicit FakeServer(Reply reply) : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      return;
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> heads() {
    std::lock_guard lock(mutex_);
    return heads_;
  }

  static std::string answer(int status, const std::string& body, const std::string& extra_headers = "") {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\n" + extra_headers + "\r\n" + body;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string request;
      char buf[4096];
      ssize_t n = 0;
      while (request.find("\r\n\r\n") == std::string::npos && (n = ::read(c, buf, sizeof buf)) > 0)
        request.append(buf, static_cast<size_t>(n));
      const std::string head = request.substr(0, request.find("\r\n\r\n"));
      {
        std::lock_guard lock(mutex_);
        heads_.push_back(head);
      }
      std::istringstream line(head);
      std::string method, target;
      line >> method >> target;
      const std::string out = reply_(method, target);
      size_t sent = 0;
      while (sent < out.size() && (n = ::write(c, out.data() + sent, out.size() - sent)) > 0) sent += static_cast<size_t>(n);
      ::shutdown(c, SHUT_WR);
      while (::read(c, buf, sizeof buf) > 0) {
      }
      ::close(c);
    }
  }

  Reply reply_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> heads_;
};

std::string video_json(const std::string& status, int progress, const std::string& error = "null") {
  return R"({"id":"video_7","object":"video","status":")" + status + R"(","progress":)" + std::to_string(progress) +
         R"(,"model":"shapes-m","size":"256x256","frames":8,"frames_done":0,"error":)" + error + "}";
}

TEST_F(ClientCli, WaitPollsWhenTheEventsStreamFails) {
  std::atomic<int> gets{0};
  FakeServer fake([&](const std::string& method, const std::string& target) {
    if (target == "/v1/videos/video_7/events")
      return FakeServer::answer(500, R"({"error":{"message":"no events today","type":"server_error"}})");
    if (method == "GET" && target == "/v1/videos/video_7") {
      const bool done = ++gets >= 3;
      return FakeServer::answer(200, video_json(done ? "completed" : "in_progress", done ? 100 : 50),
                                "openai-poll-after-ms: 100\r\n");
    }
    return FakeServer::answer(404, R"({"error":{"message":"no route"}})");
  });
  auto run = reel("wait video_7 --timeout 60 --server " + fake.url());
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.err.find("video_7 completed"), std::string::npos) << run.err;
  EXPECT_EQ(gets.load(), 3);
}

TEST_F(ClientCli, WaitFollowsEventsAndAFailedJobExitsOneWithItsError) {
  FakeServer fake([&](const std::string&, const std::string& target) {
    if (target != "/v1/videos/video_7/events") return FakeServer::answer(404, R"({"error":{"message":"no route"}})");
    // Split lines, a comment and CRLF line ends: what a stream may look like on the wire.
    const std::string body = ": keep-alive\r\n\r\nevent: video\ndata: " + video_json("in_progress", 40) +
                             "\n\nevent: video\r\ndata: " +
                             video_json("failed", 40, R"({"code":"internal","message":"the model ran out of memory"})") +
                             "\r\n\r\n";
    return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + body;
  });
  auto run = reel("wait video_7 --server " + fake.url());
  EXPECT_EQ(run.code, 1) << run.err;
  EXPECT_EQ(run.err.rfind("reel: error:", 0), 0u) << run.err;
  EXPECT_NE(run.err.find("the model ran out of memory"), std::string::npos) << run.err;
  EXPECT_EQ(fake.heads().size(), 1u) << "the events stream alone should have told";
}

TEST_F(ClientCli, BusyAndBrokenServersAreFailuresAndTheTokenIsSent) {
  FakeServer fake([&](const std::string& method, const std::string& target) {
    if (method == "POST")
      return FakeServer::answer(429, R"({"error":{"message":"the queue is full","type":"invalid_request_error"}})",
                                "Retry-After: 7\r\n");
    if (target.rfind("/v1/videos?", 0) == 0) return std::string("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\noops");
    return FakeServer::answer(401, R"({"error":{"message":"invalid token","type":"invalid_request_error"}})");
  });
  auto busy = reel("submit " + kPrompt + " --server " + fake.url(), "REEL_TOKEN=sesame");
  EXPECT_EQ(busy.code, 1) << busy.err;
  EXPECT_NE(busy.err.find("the queue is full"), std::string::npos) << busy.err;
  EXPECT_NE(busy.err.find("retry after 7 s"), std::string::npos) << busy.err;
  auto broken = reel("ls --server " + fake.url());
  EXPECT_EQ(broken.code, 1) << broken.err;
  EXPECT_NE(broken.err.find("HTTP 502"), std::string::npos) << broken.err;
  auto denied = reel("status video_7 --server " + fake.url());
  EXPECT_EQ(denied.code, 2) << denied.err;
  EXPECT_NE(denied.err.find("invalid token"), std::string::npos) << denied.err;
  auto heads = fake.heads();
  ASSERT_EQ(heads.size(), 3u);
  EXPECT_NE(heads[0].find("Authorization: Bearer sesame"), std::string::npos) << heads[0];
  EXPECT_EQ(heads[1].find("Authorization"), std::string::npos) << heads[1];
}

}  // namespace
