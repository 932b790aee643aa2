#include "models/weights_checksum.hpp"

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <vector>

namespace reel::models {

Expected<std::string> weights_file_checksum(const std::string& source) {
  if (source.rfind("builtin:", 0) == 0) return std::string("builtin");
  std::ifstream in(source, std::ios::binary);
  if (!in) return make_error(Errc::not_found, "cannot read model file '" + source + "'");
  uint64_t h = 0xcbf29ce484222325ull;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h ^= static_cast<unsigned char>(buf[static_cast<size_t>(i)]);
      h *= 0x100000001b3ull;
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string(hex);
}

}  // namespace reel::models
