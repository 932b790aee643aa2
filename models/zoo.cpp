#include "models/zoo.hpp"

#include <algorithm>
#include <filesystem>

#include "models/safetensors.hpp"

namespace reel::models {

namespace fs = std::filesystem;

std::vector<ZooEntry> list_zoo(const std::string& zoo_dir) {
  std::vector<ZooEntry> out{{"tiny-random", "builtin:tiny-random",
                             "randomly initialised 32x32 pixel-space DiT; its videos are noise", 0}};
  std::error_code ec;
  if (!fs::is_directory(zoo_dir, ec)) return out;
  std::vector<ZooEntry> files;
  for (const auto& entry : fs::directory_iterator(zoo_dir, ec)) {
    if (entry.path().extension() != ".safetensors") continue;
    ZooEntry e;
    e.name = entry.path().stem().string();
    e.path = entry.path().string();
    e.bytes = static_cast<int64_t>(entry.file_size(ec));
    auto file = SafeTensors::open(e.path);
    if (!file) {
      e.description = "unreadable: " + file.error().message;
    } else if (auto it = file->metadata().find("reel.description"); it != file->metadata().end()) {
      e.description = it->second;
    }
    files.push_back(std::move(e));
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  out.insert(out.end(), files.begin(), files.end());
  return out;
}

Expected<T2VModel> open_model(const std::string& name_or_path, const std::string& zoo_dir) {
  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       fs::path(name_or_path).extension() == ".safetensors";
  if (is_path) return load_t2v(name_or_path);
  if (name_or_path == "tiny-random") return make_tiny_random();
  const std::string path = (fs::path(zoo_dir) / (name_or_path + ".safetensors")).string();
  if (fs::exists(path)) return load_t2v(path);
  std::string names;
  for (const auto& e : list_zoo(zoo_dir)) names += (names.empty() ? "" : ", ") + e.name;
  return make_error(Errc::not_found, "no model named '" + name_or_path + "' (known: " + names + ")");
}

}  // namespace reel::models
