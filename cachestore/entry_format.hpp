// The on-disk form of EntryStore's keys and values (see entry_store.hpp for the layout).
// Private to cachestore; tests use it to damage stored values on purpose.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"
#include "cachestore/entry_meta.hpp"

namespace reel::cachestore::detail {

// The step under which an entry's mask blob is stored (0xFFFFFFFF in the key: sorts last).
inline constexpr int kMaskStep = -1;

// Written once into the default column family; a store with another value is refused.
inline constexpr std::string_view kFormatKey = "format";
inline constexpr std::string_view kFormatValue = "reel.entry_store.v1";
inline constexpr std::string_view kNextIdKey = "next_id";
inline constexpr std::string_view kGlobalPrefix = "global/";

// be64(id): ids sort numerically and one entry's blobs are adjacent.
[[nodiscard]] std::string id_key(uint64_t id);
// be64(id) be32(step).
[[nodiscard]] std::string blob_key(uint64_t id, int step);
// The id of an id_key or blob_key; nullopt when the key is too short.
[[nodiscard]] std::optional<uint64_t> key_id(std::string_view key);
// The step of a blob_key (kMaskStep for the mask); nullopt unless the key is 12 bytes.
[[nodiscard]] std::optional<int> key_step(std::string_view key);

[[nodiscard]] std::string encode_u64(uint64_t value);                  // 8 bytes, LE
[[nodiscard]] std::optional<uint64_t> decode_u64(std::string_view bytes);

// checksum64(bytes, seed) as 8 LE bytes, then the bytes.
[[nodiscard]] std::string seal(std::string_view bytes, uint64_t seed);
// The bytes of a sealed value; nullopt when it is too short or its checksum does not match.
[[nodiscard]] std::optional<std::string_view> unseal(std::string_view stored, uint64_t seed);

// Checksum seeds: a blob's bytes are tied to its entry and step, so a value copied under
// another key fails its check too.
[[nodiscard]] uint64_t blob_seed(uint64_t id, int step);
[[nodiscard]] uint64_t vector_seed(uint64_t id);
[[nodiscard]] uint64_t global_seed(std::string_view name);

// Metadata: a version byte, the fields in declaration order (integers LE, strings and the step
// list length-prefixed, doubles as their IEEE-754 bits), and checksum64 of all of it with
// seed = id. decode_meta returns corrupt_data for anything malformed.
[[nodiscard]] std::string encode_meta(const EntryMeta& meta);
[[nodiscard]] Expected<EntryMeta> decode_meta(std::string_view bytes);

// Float32 values little-endian, sealed with vector_seed(id).
[[nodiscard]] std::string encode_vector(uint64_t id, std::span<const float> values);
[[nodiscard]] Expected<std::vector<float>> decode_vector(uint64_t id, std::string_view stored);

}  // namespace reel::cachestore::detail
