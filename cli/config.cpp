#include "cli/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

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

// The keys load_config reads, by section. Anything else is a typo or a setting of another version,
// and silently ignoring it would run with a default the user meant to change.
const std::map<std::string, std::set<std::string>>& known_keys() {
  static const std::map<std::string, std::set<std::string>> keys = {
      {"runtime", {"threads"}},
      {"models", {"zoo", "default"}},
      {"generate",
       {"frames", "steps", "size", "guidance", "shift", "solver", "fps", "seed", "crf", "upscale", "upscale_filter",
        "out"}},
      {"cache",
       {"path", "budget_mb", "policy", "table", "decoupled", "compress", "tenant", "embedder", "index_save_every"}},
  };
  return keys;
}

// "unknown ..." for the first key of `root` that known_keys() does not have; "" when all are known.
std::string unknown_key(const YAML::Node& root) {
  auto list = [](const auto& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  std::vector<std::string> sections;
  for (const auto& [name, keys] : known_keys()) sections.push_back(name);
  for (const auto& section : root) {
    const std::string name = section.first.as<std::string>();
    auto it = known_keys().find(name);
    if (it == known_keys().end()) return "unknown section '" + name + "' (known: " + list(sections) + ")";
    if (section.second.IsNull()) continue;
    if (!section.second.IsMap()) return "section '" + name + "' must be a mapping of keys";
    for (const auto& key : section.second) {
      const std::string k = key.first.as<std::string>();
      if (!it->second.count(k)) return "unknown key '" + name + "." + k + "' (known: " + list(it->second) + ")";
    }
  }
  return {};
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
    if (root.IsMap())
      if (auto unknown = unknown_key(root); !unknown.empty())
        return make_error(Errc::invalid_argument, "config " + path + ": " + unknown);
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
