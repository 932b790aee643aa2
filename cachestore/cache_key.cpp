#include "cachestore/cache_key.hpp"

#include <charconv>
#include <cmath>
#include <system_error>

#include "codecs/checksum.hpp"

namespace reel::cachestore {
namespace {

// Bumped whenever a field is added, removed or written differently.
constexpr std::string_view kCanonicalVersion = "reel.compat.v1";
// "compat" in ASCII: keeps key hashes apart from every other checksum64 domain.
constexpr uint64_t kCompatSeed = 0x636f6d706174ULL;

void append_text(std::string& out, std::string_view name, std::string_view value) {
  out += ';';
  out += name;
  out += '=';
  out += std::to_string(value.size());
  out += ':';
  out += value;
}

void append_int(std::string& out, std::string_view name, long long value) {
  out += ';';
  out += name;
  out += '=';
  out += std::to_string(value);
}

void append_real(std::string& out, std::string_view name, double value) {
  out += ';';
  out += name;
  out += '=';
  if (std::isnan(value)) {
    out += "nan";  // every NaN payload is one value here
    return;
  }
  if (value == 0.0) value = 0.0;  // -0 and +0 denoise identically
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);  // shortest exact form
  if (ec != std::errc{}) {
    out += "?";  // cannot happen with 64 bytes; kept out of the hash path's failure modes
    return;
  }
  out.append(buf, end);
}

}  // namespace

std::string CompatKey::canonical() const {
  std::string out(kCanonicalVersion);
  append_text(out, "model", model);
  append_text(out, "weights", weights_hash);
  append_text(out, "scheduler", scheduler);
  append_int(out, "steps", steps);
  append_real(out, "shift", shift);
  append_int(out, "height", height);
  append_int(out, "width", width);
  append_int(out, "frames", frames);
  append_real(out, "guidance", guidance);
  append_text(out, "prediction", prediction);
  append_text(out, "embedder", embedder);
  append_text(out, "tenant", tenant);
  return out;
}

uint64_t CompatKey::hash() const { return compat_hash(canonical()); }

uint64_t compat_hash(std::string_view canonical) {
  return codecs::checksum64(canonical, kCompatSeed);
}

}  // namespace reel::cachestore
