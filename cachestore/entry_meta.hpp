// What the cache knows about one stored entry without reading its latents: the metadata kept in
// memory by EntryStore and scored by the replacement policies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace reel::cachestore {

// FlexCache caches whole generations and, apart, their objects and backgrounds.
enum class EntryKind : uint8_t { whole = 0, object = 1, background = 2 };

[[nodiscard]] const char* entry_kind_name(EntryKind kind);

struct EntryMeta {
  uint64_t id = 0;            // assigned by EntryStore::insert; not reused while anything of
                              // its entry is on disk
  uint64_t key_hash = 0;      // compat_hash(key); set by EntryStore::insert
  std::string key;            // CompatKey::canonical()
  EntryKind kind = EntryKind::whole;
  std::string prompt;         // the prompt the latents were generated from
  std::string phrase;         // the object or background phrase, or the prompt for `whole`
  std::vector<int> steps;     // step indices stored, ascending; a latent at step K skips K steps
  uint64_t bytes = 0;         // payload stored: blobs, mask, vector and the strings above
  uint64_t hits = 0;          // hits over the entry's whole life (persisted)
  uint64_t last_access = 0;   // logical clock of the last insert or hit
  double compute_saved = 0;   // denoising steps saved by all hits so far
  int64_t created_unix_ms = 0;
  bool has_mask = false;      // a mask blob (where an object lies in the frame) is stored
};

}  // namespace reel::cachestore
