// The model zoo: models shipped in a folder (models/zoo/<name>.safetensors) plus built-ins.
#pragma once

#include <string>
#include <vector>

#include "base/expected.hpp"
#include "models/t2v_model.hpp"

namespace reel::models {

struct ZooEntry {
  std::string name;
  std::string path;         // file, or "builtin:<name>"
  std::string description;
  int64_t bytes = 0;        // file size (0 for built-ins)
};

// Built-ins first, then every *.safetensors in `zoo_dir` (a missing folder is not an error).
[[nodiscard]] std::vector<ZooEntry> list_zoo(const std::string& zoo_dir);

// Opens a model by zoo name or by path (anything containing '/' or ending in .safetensors is a
// path). not_found lists the names that exist.
[[nodiscard]] Expected<T2VModel> open_model(const std::string& name_or_path, const std::string& zoo_dir);

}  // namespace reel::models
