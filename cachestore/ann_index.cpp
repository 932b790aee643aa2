#include "cachestore/ann_index.hpp"

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <mutex>
#include <string>
#include <unordered_set>

namespace reel::cachestore {
namespace {

// Deleted nodes are tolerated up to this many, and up to as many as live ones, before a rebuild.
constexpr size_t kRebuildMinDeleted = 1024;

Error hnsw_error(const std::exception& e) {
  return make_error(Errc::internal, std::string("hnswlib: ") + e.what());
}

// A unit-length copy of `vector`, or an error naming what is wrong with it.
Expected<std::vector<float>> unit_copy(std::span<const float> vector, int dim, const char* what) {
  if (vector.size() != static_cast<size_t>(dim)) {
    return make_error(Errc::invalid_argument, std::string("ANN index: ") + what + " has " +
                                                  std::to_string(vector.size()) +
                                                  " values, the index " + std::to_string(dim));
  }
  double norm = 0.0;
  for (float x : vector) norm += static_cast<double>(x) * x;
  if (!std::isfinite(norm) || norm <= 0.0) {
    return make_error(Errc::invalid_argument, std::string("ANN index: ") + what +
                                                  (norm <= 0.0 ? " is all zeros" : " is not finite"));
  }
  auto scale = static_cast<float>(1.0 / std::sqrt(norm));
  std::vector<float> out(vector.begin(), vector.end());
  for (float& x : out) x *= scale;
  return out;
}

}  // namespace

struct AnnIndex::Graph {
  Graph(int dim, size_t capacity, const AnnOptions& options)
      : space(static_cast<size_t>(dim)),
        hnsw(&space, capacity, static_cast<size_t>(options.M),
             static_cast<size_t>(options.ef_construction), static_cast<size_t>(options.seed)) {
    hnsw.setEf(static_cast<size_t>(options.ef_search));
  }
  // Loads a graph saved by AnnIndex::save; throws (std::exception) when the file is unreadable
  // or its sizes are inconsistent.
  Graph(int dim, const std::string& path, const AnnOptions& options)
      : space(static_cast<size_t>(dim)), hnsw(&space, path) {
    hnsw.setEf(static_cast<size_t>(options.ef_search));
  }

  hnswlib::InnerProductSpace space;  // must outlive hnsw, which points into it
  hnswlib::HierarchicalNSW<float> hnsw;
  std::unordered_set<uint64_t> live;     // ids search() may return
  std::unordered_set<uint64_t> removed;  // ids whose nodes are marked deleted
};

AnnIndex::AnnIndex(int dim, AnnOptions options) : dim_(std::max(dim, 1)), options_(options) {
  options_.M = std::clamp(options_.M, 2, 1000);
  options_.ef_construction = std::max(options_.ef_construction, 1);
  options_.ef_search = std::max(options_.ef_search, 1);
  options_.initial_capacity = std::max(options_.initial_capacity, 1);
  graph_ = std::make_unique<Graph>(dim_, static_cast<size_t>(options_.initial_capacity), options_);
}

AnnIndex::~AnnIndex() = default;

Status AnnIndex::add(uint64_t id, std::span<const float> vector) {
  auto unit = unit_copy(vector, dim_, "vector");
  if (!unit.ok()) return unit.error();
  std::unique_lock lock(mutex_);
  Graph& graph = *graph_;
  try {
    bool known = graph.live.contains(id) || graph.removed.contains(id);
    if (!known && graph.hnsw.cur_element_count >= graph.hnsw.max_elements_) {
      graph.hnsw.resizeIndex(std::max<size_t>(2 * graph.hnsw.max_elements_, 1));
    }
    graph.live.reserve(graph.live.size() + 1);
    // A known id (live or removed) is updated in place; hnswlib clears its deleted mark.
    graph.hnsw.addPoint(unit->data(), static_cast<hnswlib::labeltype>(id));
  } catch (const std::exception& e) {
    return hnsw_error(e);
  }
  graph.live.insert(id);
  graph.removed.erase(id);
  return {};
}

bool AnnIndex::remove(uint64_t id) {
  std::unique_lock lock(mutex_);
  Graph& graph = *graph_;
  if (!graph.live.contains(id)) return false;
  try {
    graph.hnsw.markDelete(static_cast<hnswlib::labeltype>(id));
  } catch (const std::exception&) {
    return false;  // hnswlib disagrees about the id: leave both views as they were
  }
  graph.live.erase(id);
  graph.removed.insert(id);
  if (graph.removed.size() > kRebuildMinDeleted && graph.removed.size() > graph.live.size()) {
    // On failure (out of memory) the old graph stays: still correct, only larger.
    ignore_status(rebuild_locked());
  }
  return true;
}

Status AnnIndex::rebuild_locked() {
  const Graph& old = *graph_;
  try {
    size_t capacity = std::max(static_cast<size_t>(options_.initial_capacity), 2 * old.live.size());
    auto fresh = std::make_unique<Graph>(dim_, capacity, options_);
    // Insert in id order so that the rebuilt graph does not depend on hash-set order.
    std::vector<uint64_t> ids(old.live.begin(), old.live.end());
    std::sort(ids.begin(), ids.end());
    for (uint64_t id : ids) {
      std::vector<float> data = old.hnsw.getDataByLabel<float>(static_cast<hnswlib::labeltype>(id));
      fresh->hnsw.addPoint(data.data(), static_cast<hnswlib::labeltype>(id));
    }
    fresh->live = old.live;
    graph_ = std::move(fresh);
  } catch (const std::exception& e) {
    return hnsw_error(e);
  }
  return {};
}

bool AnnIndex::contains(uint64_t id) const {
  std::shared_lock lock(mutex_);
  return graph_->live.contains(id);
}

Expected<std::vector<Neighbor>> AnnIndex::search(std::span<const float> query, int k) const {
  auto unit = unit_copy(query, dim_, "query");
  if (!unit.ok()) return unit.error();
  std::vector<Neighbor> out;
  if (k < 1) return out;
  std::shared_lock lock(mutex_);
  try {
    // A max-heap on distance (1 - inner product): the worst neighbour comes out first.
    auto heap = graph_->hnsw.searchKnn(unit->data(), static_cast<size_t>(k));
    out.reserve(heap.size());
    while (!heap.empty()) {
      float similarity = std::clamp(1.0F - heap.top().first, -1.0F, 1.0F);
      out.push_back(Neighbor{static_cast<uint64_t>(heap.top().second), similarity});
      heap.pop();
    }
  } catch (const std::exception& e) {
    return hnsw_error(e);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

size_t AnnIndex::size() const {
  std::shared_lock lock(mutex_);
  return graph_->live.size();
}

void AnnIndex::set_ef_search(int ef_search) {
  std::unique_lock lock(mutex_);
  options_.ef_search = std::max(ef_search, 1);
  graph_->hnsw.setEf(static_cast<size_t>(options_.ef_search));
}

std::vector<uint64_t> AnnIndex::ids() const {
  std::shared_lock lock(mutex_);
  std::vector<uint64_t> out(graph_->live.begin(), graph_->live.end());
  std::sort(out.begin(), out.end());
  return out;
}

Expected<std::vector<float>> AnnIndex::stored_vector(uint64_t id) const {
  std::shared_lock lock(mutex_);
  if (!graph_->live.contains(id)) return make_error(Errc::not_found, "ANN index: no id " + std::to_string(id));
  try {
    return graph_->hnsw.getDataByLabel<float>(static_cast<hnswlib::labeltype>(id));
  } catch (const std::exception& e) {
    return hnsw_error(e);
  }
}

Status AnnIndex::save(const std::string& path) const {
  std::shared_lock lock(mutex_);
  try {
    graph_->hnsw.saveIndex(path);  // hnswlib does not check its stream: the caller checksums
  } catch (const std::exception& e) {
    return make_error(Errc::io_error, "ANN index: cannot write " + path + ": " + e.what());
  }
  return {};
}

Expected<std::unique_ptr<AnnIndex>> AnnIndex::load(const std::string& path, int dim, AnnOptions options) {
  auto index = std::make_unique<AnnIndex>(dim, options);
  try {
    auto graph = std::make_unique<Graph>(index->dim_, path, index->options_);
    const auto& h = graph->hnsw;
    // hnswlib takes the vector size from the space, the rest from the file: they must agree.
    if (h.data_size_ != static_cast<size_t>(index->dim_) * sizeof(float) ||
        h.size_data_per_element_ != h.size_links_level0_ + h.data_size_ + sizeof(hnswlib::labeltype) ||
        h.cur_element_count > h.max_elements_ || h.label_lookup_.size() != h.cur_element_count) {
      return make_error(Errc::corrupt_data, "ANN index: " + path + " does not hold a graph of " +
                                                std::to_string(index->dim_) + "-d vectors");
    }
    for (const auto& [label, internal] : h.label_lookup_) {
      if (internal >= h.cur_element_count) return make_error(Errc::corrupt_data, "ANN index: " + path + " is damaged");
      if (h.isMarkedDeleted(internal)) {
        graph->removed.insert(static_cast<uint64_t>(label));
      } else {
        graph->live.insert(static_cast<uint64_t>(label));
      }
    }
    index->graph_ = std::move(graph);
  } catch (const std::exception& e) {
    return make_error(Errc::corrupt_data, "ANN index: cannot read " + path + ": " + e.what());
  }
  return index;
}

}  // namespace reel::cachestore
