// What the actors say to each other: atoms, payload types and their inspect() functions, so that
// every message can cross to a remote node through CAF's middleman. No LibTorch here: tensors
// travel as WireTensor, the bytes of codecs' one binary format (wire.hpp converts).
#pragma once

#include <cstdint>
#include <string>

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

namespace reel::actors {

// Atoms name the operations (CAF 0.17: at most 10 characters).
using load_atom = caf::atom_constant<caf::atom("load")>;      // load a model
using cond_atom = caf::atom_constant<caf::atom("cond")>;      // a request's text conditioning
using run_atom = caf::atom_constant<caf::atom("run")>;        // one model call
using result_atom = caf::atom_constant<caf::atom("result")>;  // a model call's output
using drop_atom = caf::atom_constant<caf::atom("drop")>;      // forget a request
using worker_atom = caf::atom_constant<caf::atom("worker")>;  // a node: spawn a worker
using info_atom = caf::atom_constant<caf::atom("info")>;      // describe yourself
using sink_atom = caf::atom_constant<caf::atom("sink")>;      // receive a tensor, keep nothing
using stage_atom = caf::atom_constant<caf::atom("stage")>;    // a node: spawn a PipeFusion stage

// A tensor on the wire: codecs::serialize bytes (header with dtype, shape and checksums, then
// the payload). Empty bytes mean "no tensor" (e.g. no negative prompt).
struct WireTensor {
  std::string bytes;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, WireTensor& x) {
  return f(caf::meta::type_name("reel.WireTensor"), x.bytes);
}

// Which model a worker or stage loads: a zoo name or a .safetensors path, resolved on the node
// that loads it (each node has its own zoo), and the compute threads it may use.
struct ModelSpec {
  std::string model;
  std::string zoo;
  int32_t threads = 1;  // LibTorch intra-op threads of the loading actor; >= 1
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ModelSpec& x) {
  return f(caf::meta::type_name("reel.ModelSpec"), x.model, x.zoo, x.threads);
}

// What a worker loaded, so that a client can check all its workers hold the same weights.
struct WorkerInfo {
  std::string model;         // the model's name
  std::string source;        // the file it came from on that node, or "builtin:<name>"
  uint64_t weights = 0;      // checksum of the DiT's parameters (names, shapes and values)
  std::string host;          // hostname of the node
  int32_t pid = 0;           // process id on that host
  int32_t threads = 0;       // compute threads the worker runs with
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, WorkerInfo& x) {
  return f(caf::meta::type_name("reel.WorkerInfo"), x.model, x.source, x.weights, x.host, x.pid,
           x.threads);
}

// A node process (reel node): where it runs and what it offers.
struct NodeInfo {
  std::string host;
  int32_t pid = 0;
  int32_t cores = 0;
  std::string version;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, NodeInfo& x) {
  return f(caf::meta::type_name("reel.NodeInfo"), x.host, x.pid, x.cores, x.version);
}

// What a worker's model call computes from its request's conditioning (cond_atom).
enum class CallKind : int32_t {
  guided = 0,    // classifier-free guidance with the request's text, negative and scale
  text = 1,      // the raw model output for the text alone (one half of CFG parallel)
  negative = 2,  // the raw model output for the negative prompt alone (the other half)
};

// Registers every payload type above (and the typed handles of actors.hpp) with a system's
// configuration, and loads CAF's middleman so that handles can refer to remote nodes. Call once
// per configuration, before the actor_system is built.
void configure(caf::actor_system_config& cfg);

}  // namespace reel::actors
