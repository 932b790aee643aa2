#include "cachestore/entry_format.hpp"

#include <bit>
#include <cstring>

#include "codecs/checksum.hpp"

namespace reel::cachestore {

const char* entry_kind_name(EntryKind kind) {
  switch (kind) {
    case EntryKind::whole: return "whole";
    case EntryKind::object: return "object";
    case EntryKind::background: return "background";
  }
  return "unknown";
}

namespace detail {
namespace {

constexpr uint8_t kMetaVersion = 1;
constexpr uint64_t kVectorDomain = 0x766563746f72ULL;  // "vector"
constexpr uint64_t kGlobalDomain = 0x676c6f62616cULL;  // "global"

void put_be(std::string& out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((value >> (8 * i)) & 0xFF);
}

uint64_t get_be(std::string_view in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = (value << 8) | static_cast<uint8_t>(in[i]);
  return value;
}

void put_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((value >> (8 * i)) & 0xFF);
}

uint64_t get_le(std::string_view in, int bytes) {
  uint64_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(in[i]);
  return value;
}

void put_string(std::string& out, std::string_view text) {
  put_le(out, text.size(), 4);
  out += text;
}

// Reads fields front to back; any read past the end leaves it failed for good.
class MetaReader {
 public:
  explicit MetaReader(std::string_view in) : in_(in) {}
  uint64_t le(int bytes) {
    if (!take(bytes)) return 0;
    return get_le(in_.substr(pos_ - bytes, bytes), bytes);
  }
  std::string text() {
    uint64_t size = le(4);
    if (!take(size)) return {};
    return std::string(in_.substr(pos_ - size, size));
  }
  [[nodiscard]] bool failed() const { return failed_; }
  [[nodiscard]] bool at_end() const { return pos_ == in_.size(); }

 private:
  bool take(uint64_t bytes) {
    if (failed_ || bytes > in_.size() - pos_) {
      failed_ = true;
      return false;
    }
    pos_ += bytes;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

Error meta_error(std::string_view why) {
  return make_error(Errc::corrupt_data, "entry metadata: " + std::string(why));
}

}  // namespace

std::string id_key(uint64_t id) {
  std::string key;
  put_be(key, id, 8);
  return key;
}

std::string blob_key(uint64_t id, int step) {
  std::string key = id_key(id);
  put_be(key, static_cast<uint32_t>(step), 4);
  return key;
}

std::optional<uint64_t> key_id(std::string_view key) {
  if (key.size() < 8) return std::nullopt;
  return get_be(key, 8);
}

std::optional<int> key_step(std::string_view key) {
  if (key.size() != 12) return std::nullopt;
  return static_cast<int>(static_cast<uint32_t>(get_be(key.substr(8), 4)));
}

std::string encode_u64(uint64_t value) {
  std::string out;
  put_le(out, value, 8);
  return out;
}

std::optional<uint64_t> decode_u64(std::string_view bytes) {
  if (bytes.size() != 8) return std::nullopt;
  return get_le(bytes, 8);
}

std::string seal(std::string_view bytes, uint64_t seed) {
  std::string out;
  out.reserve(8 + bytes.size());
  put_le(out, codecs::checksum64(bytes, seed), 8);
  out += bytes;
  return out;
}

std::optional<std::string_view> unseal(std::string_view stored, uint64_t seed) {
  if (stored.size() < 8) return std::nullopt;
  std::string_view bytes = stored.substr(8);
  if (get_le(stored, 8) != codecs::checksum64(bytes, seed)) return std::nullopt;
  return bytes;
}

uint64_t blob_seed(uint64_t id, int step) {
  return id ^ static_cast<uint64_t>(static_cast<uint32_t>(step));
}

uint64_t vector_seed(uint64_t id) { return id ^ kVectorDomain; }

uint64_t global_seed(std::string_view name) { return codecs::checksum64(name, kGlobalDomain); }

std::string encode_meta(const EntryMeta& meta) {
  std::string out;
  out.reserve(96 + meta.key.size() + meta.prompt.size() + meta.phrase.size() +
              4 * meta.steps.size());
  out += static_cast<char>(kMetaVersion);
  put_le(out, meta.id, 8);
  put_le(out, meta.key_hash, 8);
  put_string(out, meta.key);
  out += static_cast<char>(meta.kind);
  put_string(out, meta.prompt);
  put_string(out, meta.phrase);
  put_le(out, meta.steps.size(), 4);
  for (int step : meta.steps) put_le(out, static_cast<uint32_t>(step), 4);
  put_le(out, meta.bytes, 8);
  put_le(out, meta.hits, 8);
  put_le(out, meta.last_access, 8);
  put_le(out, std::bit_cast<uint64_t>(meta.compute_saved), 8);
  put_le(out, static_cast<uint64_t>(meta.created_unix_ms), 8);
  out += static_cast<char>(meta.has_mask ? 1 : 0);
  put_le(out, codecs::checksum64(out, meta.id), 8);
  return out;
}

Expected<EntryMeta> decode_meta(std::string_view bytes) {
  if (bytes.size() < 1 + 8 + 8) return meta_error("too short");
  std::string_view body = bytes.substr(0, bytes.size() - 8);
  if (static_cast<uint8_t>(body[0]) != kMetaVersion) return meta_error("unknown version");
  uint64_t id = get_le(body.substr(1), 8);
  if (get_le(bytes.substr(body.size()), 8) != codecs::checksum64(body, id)) {
    return meta_error("checksum mismatch");
  }
  MetaReader in(body.substr(1));
  EntryMeta meta;
  meta.id = in.le(8);
  meta.key_hash = in.le(8);
  meta.key = in.text();
  uint64_t kind = in.le(1);
  if (kind > static_cast<uint64_t>(EntryKind::background)) return meta_error("unknown kind");
  meta.kind = static_cast<EntryKind>(kind);
  meta.prompt = in.text();
  meta.phrase = in.text();
  uint64_t n_steps = in.le(4);
  if (n_steps > body.size()) return meta_error("step count out of range");
  meta.steps.reserve(n_steps);
  for (uint64_t i = 0; i < n_steps && !in.failed(); ++i) {
    meta.steps.push_back(static_cast<int>(static_cast<uint32_t>(in.le(4))));
  }
  meta.bytes = in.le(8);
  meta.hits = in.le(8);
  meta.last_access = in.le(8);
  meta.compute_saved = std::bit_cast<double>(in.le(8));
  meta.created_unix_ms = static_cast<int64_t>(in.le(8));
  meta.has_mask = in.le(1) != 0;
  if (in.failed() || !in.at_end()) return meta_error("truncated or overlong");
  return meta;
}

std::string encode_vector(uint64_t id, std::span<const float> values) {
  std::string bytes;
  bytes.reserve(4 * values.size());
  for (float v : values) put_le(bytes, std::bit_cast<uint32_t>(v), 4);
  return seal(bytes, vector_seed(id));
}

Expected<std::vector<float>> decode_vector(uint64_t id, std::string_view stored) {
  auto bytes = unseal(stored, vector_seed(id));
  if (!bytes || bytes->size() % 4 != 0) {
    return make_error(Errc::corrupt_data, "prompt vector of entry " + std::to_string(id) +
                                              " failed its checksum");
  }
  std::vector<float> values(bytes->size() / 4);
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = std::bit_cast<float>(static_cast<uint32_t>(get_le(bytes->substr(4 * i), 4)));
  }
  return values;
}

}  // namespace detail
}  // namespace reel::cachestore
