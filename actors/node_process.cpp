#include "actors/node_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

namespace reel::actors {
namespace {

bool wait_gone(pid_t pid, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || r < 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

Expected<NodeProcess> NodeProcess::start(const std::string& reel_binary, const std::string& zoo,
                                         double wait_seconds) {
  char tmpl[] = "/tmp/reel-node-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return make_error(Errc::io_error, "cannot create a temporary folder for a node");
  const std::string dir = tmpl;
  const std::string port_file = dir + "/port";
  std::vector<std::string> args{reel_binary, "node", "--listen", "127.0.0.1:0", "--zoo", zoo, "--port-file", port_file};
  // Buffered output would be written twice: once by us, once by the child's exit path.
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) return make_error(Errc::io_error, "cannot fork a node process");
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Quiet: a node's banner would mix with the parent's output.
    const int devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0 || dup2(devnull, STDOUT_FILENO) < 0) _exit(127);
    execv(reel_binary.c_str(), argv.data());
    _exit(127);
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_seconds);
  while (std::chrono::steady_clock::now() < end) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      std::filesystem::remove_all(dir);
      return make_error(Errc::io_error, "node process '" + reel_binary + " node' exited before listening (status " +
                                            std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
    }
    std::ifstream f(port_file);
    unsigned port = 0;
    if (f >> port && port > 0) return NodeProcess(pid, static_cast<uint16_t>(port), dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  wait_gone(pid, std::chrono::seconds(5));
  std::filesystem::remove_all(dir);
  return make_error(Errc::io_error, "node process did not listen within " + std::to_string(wait_seconds) + " s");
}

NodeProcess::NodeProcess(NodeProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), port_(other.port_), dir_(std::move(other.dir_)) {}

NodeProcess& NodeProcess::operator=(NodeProcess&& other) noexcept {
  if (this != &other) {
    stop();
    pid_ = std::exchange(other.pid_, -1);
    port_ = other.port_;
    dir_ = std::move(other.dir_);
  }
  return *this;
}

NodeProcess::~NodeProcess() { stop(); }

std::string NodeProcess::address() const { return "127.0.0.1:" + std::to_string(port_); }

void NodeProcess::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  wait_gone(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

void NodeProcess::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    if (!wait_gone(pid_, std::chrono::seconds(10))) {
      ::kill(pid_, SIGKILL);
      wait_gone(pid_, std::chrono::seconds(5));
    }
    pid_ = -1;
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
}

}  // namespace reel::actors
