// The approximate cache's nearest-neighbour indexes saved beside its entries, so that open does
// not rebuild them (rebuilding 100,000 entries takes minutes). Private to cachestore.
//
// On disk: a folder "ann-index" inside the cache directory, with one hnswlib file per index and a
// manifest, written last, that names each file with its size and checksum and records what the
// indexes cover: the embedder's dimension, the number of entries in the store and a digest of
// their metadata (see entries_digest). A save goes to "ann-index.tmp" first and is renamed into
// place, so a crash mid-save leaves either the old snapshot or none.
//
// A snapshot is used only when it matches the store exactly; anything else (no snapshot, a
// damaged, truncated or foreign file, entries added or removed since the save, another
// embedder dimension) is a reason to rebuild, never a wrong answer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/expected.hpp"
#include "cachestore/ann_index.hpp"
#include "cachestore/entry_meta.hpp"

namespace reel::cachestore::detail {

inline constexpr const char* kSnapshotDir = "ann-index";

using IndexKey = std::pair<uint64_t, EntryKind>;  // (compat key hash, entry kind)

// Order-independent digest of what determines the indexed vectors: for each entry its id, key
// (which names the embedder and its fitted state), kind, phrase (the embedded text), prompt and
// creation time. An entry's vector is a function of its key and phrase, and ids are never reused,
// so equal digests mean equal vector sets.
[[nodiscard]] uint64_t entries_digest(const std::vector<EntryMeta>& metas);

struct SnapshotCover {
  int dim = 0;           // the embedder's dimension
  uint64_t entries = 0;  // entries in the store at the save
  uint64_t digest = 0;   // entries_digest of them
};

// Writes the indexes under `cache_dir`/ann-index. Errors: io_error.
[[nodiscard]] Status save_snapshot(const std::string& cache_dir, const SnapshotCover& cover,
                                   const std::map<IndexKey, const AnnIndex*>& indexes);

// Loads the snapshot when its manifest and files are intact and it covers exactly `expected`.
// Errors: not_found (no snapshot), corrupt_data (damaged or truncated), invalid_argument (it is
// stale: it covers other entries or another dimension); the message says which.
[[nodiscard]] Expected<std::map<IndexKey, std::unique_ptr<AnnIndex>>> load_snapshot(
    const std::string& cache_dir, const SnapshotCover& expected);

}  // namespace reel::cachestore::detail
