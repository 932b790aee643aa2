#include "cli/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace reel::cli {

namespace fs = std::filesystem;

std::string config_path_from(int argc, char** argv) {
  // Only before the subcommand: after it, --config belongs to the subcommand (reel train).
  for (int i = 1; i < argc && argv[i][0] == '-'; ++i) {
    if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) return argv[i + 1];
    if (std::strncmp(argv[i], "--config=", 9) == 0) return argv[i] + 9;
  }
  if (const char* env = std::getenv("REEL_CONFIG"); env != nullptr && *env != '\0') return env;
  const std::string builtin = std::string(REEL_SOURCE_DIR) + "/configs/default.yaml";
  return fs::exists(builtin) ? builtin : "";
}

namespace {

template <class T>
void read(const YAML::Node& section, const char* key, T& out) {
  if (section && section[key] && !section[key].IsNull()) out = section[key].as<T>();
}

template <class T>
void read(const YAML::Node& section, const char* key, std::optional<T>& out) {
  if (section && section[key] && !section[key].IsNull()) out = section[key].as<T>();
}

}  // namespace

Expected<Config> load_config(const std::string& path) {
  Config cfg;
  if (path.empty()) return cfg;
  cfg.path = path;
  std::error_code ec;
  if (!fs::exists(path, ec)) return make_error(Errc::not_found, "config " + path + ": no such file");
  if (!fs::is_regular_file(path, ec)) return make_error(Errc::invalid_argument, "config " + path + ": not a regular file");
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root.IsNull() && !root.IsMap())
      return make_error(Errc::invalid_argument, "config " + path + ": expected a mapping of sections at the top");
    read(root["runtime"], "threads", cfg.threads);
    read(root["models"], "zoo", cfg.zoo);
    read(root["models"], "default", cfg.model);
    auto g = root["generate"];
    read(g, "frames", cfg.frames);
    read(g, "steps", cfg.steps);
    read(g, "size", cfg.size);
    read(g, "guidance", cfg.guidance);
    read(g, "shift", cfg.shift);
    read(g, "solver", cfg.solver);
    read(g, "fps", cfg.fps);
    read(g, "seed", cfg.seed);
    read(g, "crf", cfg.crf);
    read(g, "upscale", cfg.upscale);
    read(g, "upscale_filter", cfg.upscale_filter);
    read(g, "out", cfg.out);
    auto c = root["cache"];
    read(c, "path", cfg.cache_path);
    read(c, "budget_mb", cfg.cache_budget_mb);
    read(c, "policy", cfg.cache_policy);
    read(c, "table", cfg.cache_table);
    read(c, "decoupled", cfg.cache_decoupled);
    read(c, "compress", cfg.cache_compress);
    read(c, "tenant", cfg.cache_tenant);
    read(c, "embedder", cfg.cache_embedder);
    read(c, "index_save_every", cfg.cache_index_save_every);
  } catch (const YAML::BadFile&) {
    return make_error(Errc::not_found, "config " + path + ": cannot read the file");
  } catch (const YAML::Exception& e) {
    return make_error(Errc::invalid_argument, "config " + path + ": " + e.what());
  } catch (const std::exception& e) {  // a read error below yaml-cpp (std::ios_base::failure)
    return make_error(Errc::io_error, "config " + path + ": cannot read the file: " + e.what());
  }
  // Relative folders in a config under <root>/configs/ are relative to <root>.
  fs::path base = fs::absolute(path).parent_path();
  if (base.filename() == "configs") base = base.parent_path();
  if (!cfg.zoo.empty() && fs::path(cfg.zoo).is_relative()) cfg.zoo = (base / cfg.zoo).lexically_normal().string();
  if (!cfg.cache_path.empty() && fs::path(cfg.cache_path).is_relative())
    cfg.cache_path = (base / cfg.cache_path).lexically_normal().string();
  return cfg;
}

}  // namespace reel::cli
