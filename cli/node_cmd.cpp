// reel node --listen HOST:PORT: a node process. It publishes a node actor through CAF's
// middleman; clients (reel generate --nodes) ask it for workers, which load models from this
// node's zoo and run model calls for them. Runs until SIGINT or SIGTERM.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include "actors/node.hpp"
#include "base/durable.hpp"
#include "cli/commands.hpp"

namespace reel::cli {
namespace {

struct NodeArgs {
  std::string listen;
  std::string zoo;
  std::string port_file;
};

int run_node(const NodeArgs& a) {
  auto address = actors::parse_address(a.listen);
  if (!address) return report(address.error());
  if (!a.port_file.empty())
    if (auto st = check_output(a.port_file, "", "--port-file"); !st) return report(st.error());
  // Workers open models from the zoo only when a job asks; a zoo that is not there would fail
  // every job then, far from the mistake.
  if (std::error_code ec; !a.zoo.empty() && !std::filesystem::is_directory(a.zoo, ec))
    return report(make_error(Errc::invalid_argument, "--zoo '" + a.zoo + "' is not a folder"));

  // Block the stop signals in every thread (CAF's threads inherit the mask) and wait for them
  // here, so a stop is an orderly shutdown of the actor system.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  caf::actor_system_config cfg;
  actors::configure(cfg);
  caf::actor_system system{cfg};
  auto node = actors::spawn_node(system, a.zoo);
  auto port = actors::publish_node(system, node, address->first, address->second);
  if (!port) {
    caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
    return report(port.error());
  }
  if (!a.port_file.empty()) {
    if (auto st = write_file_atomic(a.port_file, std::to_string(*port) + "\n"); !st) {
      caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
      return report(make_error(Errc::io_error, "cannot write --port-file '" + a.port_file + "': " + st.error().message));
    }
  }
  std::printf("reel node: listening on %s:%u (pid %d, zoo %s)\n", address->first.c_str(), *port, getpid(),
              a.zoo.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  std::printf("reel node: stopping (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stdout);
  caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
  return kExitOk;
}

}  // namespace

Command add_node(CLI::App& app, const Config& cfg) {
  auto a = std::make_shared<NodeArgs>();
  a->zoo = cfg.zoo;
  auto* sub = app.add_subcommand("node", "serve workers to other reel processes (reel generate --nodes)");
  sub->add_option("--listen,-l", a->listen, "HOST:PORT to listen on (port 0: any free port)")->required();
  sub->add_option("--zoo", a->zoo, "folder of models the workers load from")->capture_default_str();
  sub->add_option("--port-file", a->port_file, "write the port bound to this file once listening");
  return [a] { return run_node(*a); };
}

}  // namespace reel::cli
