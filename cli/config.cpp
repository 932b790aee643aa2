#include "cli/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
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

// Reads keys from the sections of a config file and remembers which it asked for, so that
// anything else in the file (a typo, or a setting of another version, which silently ignored would
// run with the default the user meant to change) can be named afterwards.
class SectionReader {
 public:
  explicit SectionReader(YAML::Node root) : root_(std::move(root)) {}

  template <class T>
  void operator()(const char* section, const char* key, T& out) {
    if (auto value = find(section, key)) out = value->as<T>();
  }
  template <class T>
  void operator()(const char* section, const char* key, std::optional<T>& out) {
    if (auto value = find(section, key)) out = value->as<T>();
  }

  // "" when every section and key of the file was asked for; else what is wrong with the first
  // that was not (known ones named).
  [[nodiscard]] std::string unknown() const {
    auto list = [](const auto& names) {
      std::string out;
      for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
      return out;
    };
    if (!bad_section_.empty()) return "section '" + bad_section_ + "' must be a mapping of keys";
    std::vector<std::string> sections;
    for (const auto& [name, keys] : asked_) sections.push_back(name);
    for (const auto& section : root_) {
      const std::string name = section.first.as<std::string>();
      auto it = asked_.find(name);
      if (it == asked_.end()) return "unknown section '" + name + "' (known: " + list(sections) + ")";
      if (section.second.IsNull()) continue;
      for (const auto& key : section.second) {
        const std::string k = key.first.as<std::string>();
        if (!it->second.count(k)) return "unknown key '" + name + "." + k + "' (known: " + list(it->second) + ")";
      }
    }
    return {};
  }

 private:
  // The value at section.key; none when it is absent or null.
  std::optional<YAML::Node> find(const char* section, const char* key) {
    asked_[section].insert(key);
    const YAML::Node& root = root_;
    const YAML::Node s = root[section];
    if (!s || s.IsNull()) return std::nullopt;
    if (!s.IsMap()) {
      if (bad_section_.empty()) bad_section_ = section;
      return std::nullopt;
    }
    const YAML::Node value = s[key];
    if (!value || value.IsNull()) return std::nullopt;
    return value;
  }

  YAML::Node root_;
  std::map<std::string, std::set<std::string>> asked_;  // section -> keys
  std::string bad_section_;                              // the first section that is not a mapping
};

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
    SectionReader read(root);
    read("runtime", "threads", cfg.threads);
    read("models", "zoo", cfg.zoo);
    read("models", "default", cfg.model);
    read("generate", "frames", cfg.frames);
    read("generate", "steps", cfg.steps);
    read("generate", "size", cfg.size);
    read("generate", "guidance", cfg.guidance);
    read("generate", "shift", cfg.shift);
    read("generate", "solver", cfg.solver);
    read("generate", "fps", cfg.fps);
    read("generate", "seed", cfg.seed);
    read("generate", "crf", cfg.crf);
    read("generate", "upscale", cfg.upscale);
    read("generate", "upscale_filter", cfg.upscale_filter);
    read("generate", "out", cfg.out);
    read("cache", "path", cfg.cache_path);
    read("cache", "budget_mb", cfg.cache_budget_mb);
    read("cache", "policy", cfg.cache_policy);
    read("cache", "table", cfg.cache_table);
    read("cache", "decoupled", cfg.cache_decoupled);
    read("cache", "compress", cfg.cache_compress);
    read("cache", "tenant", cfg.cache_tenant);
    read("cache", "embedder", cfg.cache_embedder);
    read("cache", "index_save_every", cfg.cache_index_save_every);
    read("serve", "listen", cfg.serve_listen);
    read("serve", "data", cfg.serve_data);
    read("serve", "queue", cfg.serve_queue);
    read("serve", "workers", cfg.serve_workers);
    read("serve", "cache", cfg.serve_cache);
    read("serve", "tokens", cfg.serve_tokens);
    read("serve", "retention_hours", cfg.serve_retention_hours);
    read("serve", "body_limit_mb", cfg.serve_body_limit_mb);
    if (root.IsMap())
      if (auto unknown = read.unknown(); !unknown.empty())
        return make_error(Errc::invalid_argument, "config " + path + ": " + unknown);
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
