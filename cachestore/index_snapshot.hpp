// The approximate cache's nearest-neighbour indexes saved beside its entries, so that open does
// not rebuild them (rebuilding 100,000 entries takes minutes). Private to cachestore.
//
// On disk: a folder "ann-index" inside the cache directory, with one hnswlib file per index, a
// list of the entries the save covered (each entry's id and entry_hash, "covered.bin"), and a
// manifest, written last, that names each file with its size and checksum and records the
// embedder's dimension. A save goes to "ann-index.tmp" first and is renamed into place, so a
// crash mid-save leaves either the old snapshot or none.
//
// Opening brings a snapshot up to date instead of requiring an exact match: entries written
// since the save (a crash before the close, or a save every N inserts) are added from their
// stored vectors, and entries gone since (evicted, dropped as corrupt) are removed. A snapshot
// that is damaged, truncated, of another format or dimension, or that disagrees with the store
// about an entry both hold is a reason to rebuild, never a wrong answer.
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

// What an entry contributes to the indexes: a hash of its id, key (which names the embedder and
// its fitted state), kind, phrase (the embedded text), prompt and creation time. An entry's
// vector is a function of its key and phrase, and ids are never reused, so an entry with the
// hash it had at the save has the vector the snapshot holds.
[[nodiscard]] uint64_t entry_hash(const EntryMeta& meta);

struct Snapshot {
  int dim = 0;                                             // the embedder's dimension
  std::map<uint64_t, uint64_t> covered;                    // id -> entry_hash of every entry at the save
  std::map<IndexKey, std::unique_ptr<AnnIndex>> indexes;   // what was saved
};

// Writes the indexes and the entries they cover (`covered`: id -> entry_hash) under
// `cache_dir`/ann-index. Errors: io_error.
[[nodiscard]] Status save_snapshot(const std::string& cache_dir, int dim, const std::map<uint64_t, uint64_t>& covered,
                                   const std::map<IndexKey, const AnnIndex*>& indexes);

// Loads the snapshot when its manifest and files are intact and it is for `dim`-d vectors.
// Errors: not_found (no snapshot), corrupt_data (damaged or truncated), invalid_argument
// (another dimension, or an older format); the message says which.
[[nodiscard]] Expected<Snapshot> load_snapshot(const std::string& cache_dir, int dim);

}  // namespace reel::cachestore::detail
