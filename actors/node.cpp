#include "actors/node.hpp"

#include <unistd.h>

#include <charconv>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "actors/worker.hpp"
#include "codecs/tensor.hpp"

namespace reel::actors {
namespace {

std::string this_host() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

node_actor::behavior_type node(node_actor::pointer self, std::string zoo) {
  return {
      [=](worker_atom) -> worker_actor { return spawn_worker(self->system(), zoo); },
      [=](stage_atom) -> stage_actor { return spawn_stage(self->system(), zoo); },
      [=](info_atom) -> NodeInfo {
        return NodeInfo{this_host(), static_cast<int32_t>(getpid()),
                        static_cast<int32_t>(std::thread::hardware_concurrency()), node_version()};
      },
      [=](sink_atom, const WireTensor& t) -> caf::result<uint64_t> {
        auto parsed = codecs::parse(t.bytes);
        if (!parsed) return caf::make_error(caf::sec::invalid_argument, parsed.error().message);
        return static_cast<uint64_t>(t.bytes.size());
      },
  };
}

}  // namespace

const char* node_version() { return "reel-node/1"; }

node_actor spawn_node(caf::actor_system& system, std::string zoo) { return system.spawn(node, std::move(zoo)); }

Expected<std::pair<std::string, uint16_t>> parse_address(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return make_error(Errc::invalid_argument, "'" + address + "' is not HOST:PORT");
  }
  const std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) {
    return make_error(Errc::invalid_argument, "'" + address + "': the port must be a number in 0..65535");
  }
  return std::pair<std::string, uint16_t>{host, static_cast<uint16_t>(port)};
}

Expected<uint16_t> publish_node(caf::actor_system& system, const node_actor& node, const std::string& host,
                                uint16_t port) {
  auto bound = system.middleman().publish(node, port, host.c_str(), /*reuse_addr=*/true);
  if (!bound) {
    return make_error(Errc::io_error, "cannot listen on " + host + ":" + std::to_string(port) + ": " +
                                          system.render(bound.error()));
  }
  return *bound;
}

Expected<node_actor> connect_node(caf::actor_system& system, const std::string& address) {
  auto parsed = parse_address(address);
  if (!parsed) return parsed.error();
  if (parsed->second == 0) return make_error(Errc::invalid_argument, "'" + address + "': port 0 cannot be reached");
  auto node = system.middleman().remote_actor<node_actor>(parsed->first, parsed->second);
  if (!node) {
    return make_error(Errc::io_error, "node " + address + " is unreachable: " + system.render(node.error()));
  }
  auto info = node_info(system, *node);
  if (!info) return make_error(Errc::io_error, "node " + address + ": " + info.error().message);
  if (info->version != node_version()) {
    return make_error(Errc::unsupported, "node " + address + " runs " + info->version + ", this client speaks " +
                                             node_version());
  }
  return *node;
}

Expected<std::vector<stage_actor>> request_stages(caf::actor_system& system, const node_actor& node,
                                                  const std::string& label, int count) {
  caf::scoped_actor self{system};
  std::vector<stage_actor> stages;
  for (int i = 0; i < count; ++i) {
    Expected<stage_actor> st = make_error(Errc::internal, "no answer");
    self->request(node, std::chrono::seconds(30), stage_atom::value)
        .receive([&](stage_actor& h) { st = std::move(h); },
                 [&](caf::error& e) {
                   st = make_error(Errc::io_error, "node " + label + " gave no stage: " + system.render(e));
                 });
    if (!st) return st.error();
    stages.push_back(std::move(*st));
  }
  return stages;
}

Expected<NodeInfo> node_info(caf::actor_system& system, const node_actor& node, std::chrono::milliseconds timeout) {
  caf::scoped_actor self{system};
  Expected<NodeInfo> result = make_error(Errc::internal, "no answer");
  self->request(node, caf::duration(timeout), info_atom::value)
      .receive([&](NodeInfo& info) { result = std::move(info); },
               [&](caf::error& e) { result = make_error(Errc::io_error, system.render(e)); });
  return result;
}

Expected<std::vector<PoolMember>> request_workers(caf::actor_system& system, const node_actor& node,
                                                  const std::string& label, int count) {
  caf::scoped_actor self{system};
  std::vector<PoolMember> members;
  for (int i = 0; i < count; ++i) {
    Expected<worker_actor> w = make_error(Errc::internal, "no answer");
    self->request(node, std::chrono::seconds(30), worker_atom::value)
        .receive([&](worker_actor& h) { w = std::move(h); },
                 [&](caf::error& e) {
                   w = make_error(Errc::io_error, "node " + label + " gave no worker: " + system.render(e));
                 });
    if (!w) return w.error();
    members.push_back(PoolMember{std::move(*w), label + "/worker" + std::to_string(i)});
  }
  return members;
}

}  // namespace reel::actors
