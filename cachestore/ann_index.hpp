// Nearest-neighbour search over prompt embeddings: which cached prompts are most similar to a new
// one. Cosine similarity, approximated by an HNSW graph (hnswlib) so that a lookup stays well
// under a millisecond at hundreds of thousands of entries.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "base/expected.hpp"

namespace reel::cachestore {

struct AnnOptions {
  // Graph links per node (2*M on the bottom layer). More: better recall, more memory and slower
  // inserts. Default 16.
  int M = 16;
  // Candidate list size while inserting; more gives a better graph and slower inserts.
  // Default 200.
  int ef_construction = 200;
  // Candidate list size while searching (at least k is used); more gives better recall and
  // slower searches. 128 finds the true nearest of 10,000 random 64-d vectors ~97% of the time;
  // a lookup costs far less than the denoising steps a miss would cost. Default 128.
  int ef_search = 128;
  // Capacity allocated up front; the index doubles it whenever it fills. Default 1024.
  int initial_capacity = 1024;
  // Seed of the graph's level generator: the same inserts in the same order give the same
  // graph. Default 100.
  uint64_t seed = 100;
};

struct Neighbor {
  uint64_t id = 0;
  float similarity = 0.0F;  // cosine similarity, in [-1, 1]
  bool operator==(const Neighbor&) const = default;
};

// Vectors are normalised to unit length on the way in (add and search), so the inner product the
// graph ranks by is the cosine similarity. Removal marks a node deleted: it still routes searches
// but is never returned; when deleted nodes outnumber live ones (and exceed 1024), the graph is
// rebuilt from the live vectors so that churn does not grow memory without bound.
//
// Thread-safety: any number of concurrent search()/size()/contains() calls, serialised against
// add() and remove() by a reader-writer lock; writers run one at a time.
class AnnIndex {
 public:
  // dim must be >= 1 (values below are taken as 1); options out of range are clamped.
  explicit AnnIndex(int dim, AnnOptions options = {});
  ~AnnIndex();
  AnnIndex(const AnnIndex&) = delete;
  AnnIndex& operator=(const AnnIndex&) = delete;

  [[nodiscard]] int dim() const { return dim_; }

  // Inserts `vector` under `id`, replacing the vector of an id already present (or removed
  // earlier). Errors: invalid_argument for a vector of the wrong length, with a non-finite value
  // or of zero length; internal if hnswlib fails (out of memory). On error nothing changes.
  [[nodiscard]] Status add(uint64_t id, std::span<const float> vector);

  // Removes `id`; it is never returned by search() again unless added again. Returns whether it
  // was present.
  bool remove(uint64_t id);

  [[nodiscard]] bool contains(uint64_t id) const;

  // Up to k ids (fewer when the index holds fewer), most similar first. k < 1 gives none.
  // Errors: invalid_argument for a query of the wrong length, non-finite or zero; internal if
  // hnswlib fails.
  [[nodiscard]] Expected<std::vector<Neighbor>> search(std::span<const float> query, int k) const;

  // Live (not removed) ids.
  [[nodiscard]] size_t size() const;

  // Changes ef_search for later searches (values below 1 are taken as 1).
  void set_ef_search(int ef_search);

  // Live ids, ascending.
  [[nodiscard]] std::vector<uint64_t> ids() const;
  // The unit-length vector stored under a live id. not_found when it is not live.
  [[nodiscard]] Expected<std::vector<float>> stored_vector(uint64_t id) const;

  // Writes the graph (hnswlib's own format: vectors, links, labels, deleted marks) to `path`.
  // Errors: io_error. Callers that persist it must check its bytes themselves (a checksum):
  // load() trusts the file.
  [[nodiscard]] Status save(const std::string& path) const;
  // Reads what save() wrote, for vectors of `dim` values. Errors: corrupt_data when the file
  // does not hold a graph of that dimension (hnswlib checks sizes, not contents), io_error.
  [[nodiscard]] static Expected<std::unique_ptr<AnnIndex>> load(const std::string& path, int dim,
                                                                AnnOptions options = {});

 private:
  struct Graph;

  [[nodiscard]] Status rebuild_locked();

  int dim_;
  AnnOptions options_;
  mutable std::shared_mutex mutex_;
  std::unique_ptr<Graph> graph_;
};

}  // namespace reel::cachestore
