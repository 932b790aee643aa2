// configs/default.yaml (or --config FILE) as a struct. Only the CLI reads YAML: everything below
// it takes plain structs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "base/expected.hpp"

namespace reel::cli {

struct Config {
  std::string path;  // file this came from ("" for built-in defaults)
  int threads = 0;
  std::string zoo = "models/zoo";
  std::string model = "shapes-m";
  std::optional<int> frames, steps, fps;
  std::optional<std::string> size, solver;
  std::optional<double> guidance, shift;
  uint64_t seed = 0;
  int crf = 18;
  int upscale = 4;
  std::string upscale_filter = "nearest";
  std::string out = "out/video.mp4";
  // cache: the approximate cache (see configs/default.yaml)
  std::string cache_path;  // "" = no cache unless --cache is given
  double cache_budget_mb = 1024;
  std::string cache_policy = "cost_aware";
  std::string cache_table;
  bool cache_decoupled = true;
  bool cache_compress = true;
  std::string cache_tenant;
  std::string cache_embedder = "ngram";  // ngram, text-encoder or text-encoder:MODEL
  int64_t cache_index_save_every = 1000;  // save the index after this many new entries; 0 = only at close
  // serve: `reel serve` (see configs/default.yaml)
  std::string serve_listen = "127.0.0.1:8000";
  std::string serve_data = "reel-data";  // relative: to the folder reel serve starts in
  int serve_queue = 16;
  int serve_workers = 1;
  bool serve_cache = true;
  std::map<std::string, std::string> serve_tokens;  // bearer token -> tenant
  double serve_retention_hours = 168;
  double serve_body_limit_mb = 1;
};

// Where the configuration comes from: --config in argv before the subcommand, else $REEL_CONFIG, else the
// repository's configs/default.yaml when it exists, else built-in defaults.
[[nodiscard]] std::string config_path_from(int argc, char** argv);

// Reads a config file; relative paths in it (zoo) are resolved against the repository root
// (the folder holding configs/). Errors are invalid_argument with the file and key.
[[nodiscard]] Expected<Config> load_config(const std::string& path);

}  // namespace reel::cli
