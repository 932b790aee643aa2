// A `reel node` child process on this machine, for tests, benchmarks and a local cluster: started
// on 127.0.0.1 with a free port, stopped (SIGTERM, then SIGKILL) when the handle goes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/expected.hpp"

namespace reel::actors {

class NodeProcess {
 public:
  // Runs `reel_binary node --listen 127.0.0.1:0 --zoo zoo --port-file ...` and waits (up to
  // `wait_seconds`) until it listens. Errors: io_error when it cannot start or exits first.
  [[nodiscard]] static Expected<NodeProcess> start(const std::string& reel_binary, const std::string& zoo,
                                                   double wait_seconds = 60.0);
  NodeProcess(NodeProcess&& other) noexcept;
  NodeProcess& operator=(NodeProcess&& other) noexcept;
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;
  ~NodeProcess();

  [[nodiscard]] std::string address() const;  // "127.0.0.1:PORT"
  [[nodiscard]] pid_t pid() const { return pid_; }
  // SIGKILL, as a crash: no goodbye to anyone. Waits for the process to be gone.
  void kill_hard();
  // SIGTERM and wait (SIGKILL after 10 s).
  void stop();

 private:
  NodeProcess(pid_t pid, uint16_t port, std::string dir) : pid_(pid), port_(port), dir_(std::move(dir)) {}
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string dir_;  // temporary folder of the port file
};

}  // namespace reel::actors
