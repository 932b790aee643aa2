#include "cachestore/policy.hpp"

#include <algorithm>
#include <numeric>

namespace reel::cachestore {

Expected<PolicyKind> parse_policy(std::string_view name) {
  if (name == "lru") return PolicyKind::lru;
  if (name == "lcbfu") return PolicyKind::lcbfu;
  if (name == "cost_aware" || name == "cost-aware") return PolicyKind::cost_aware;
  return make_error(Errc::invalid_argument,
                    "unknown cache policy '" + std::string(name) +
                        "' (expected lru, lcbfu or cost_aware)");
}

const char* policy_name(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::lru: return "lru";
    case PolicyKind::lcbfu: return "lcbfu";
    case PolicyKind::cost_aware: return "cost_aware";
  }
  return "unknown";
}

double steps_saved_per_hit(const EntryMeta& meta) {
  double prior = 0;
  if (!meta.steps.empty()) prior = *std::max_element(meta.steps.begin(), meta.steps.end());
  return (meta.compute_saved + prior) / (static_cast<double>(meta.hits) + 1.0);
}

double retention_score(const EntryMeta& meta, PolicyKind kind) {
  switch (kind) {
    case PolicyKind::lru: return static_cast<double>(meta.last_access);
    case PolicyKind::lcbfu: return steps_saved_per_hit(meta) * static_cast<double>(meta.hits);
    case PolicyKind::cost_aware: {
      double bytes = static_cast<double>(std::max<uint64_t>(meta.bytes, 1));
      return steps_saved_per_hit(meta) * (static_cast<double>(meta.hits) + 1.0) / bytes;
    }
  }
  return 0;
}

std::vector<uint64_t> choose_victims(std::span<const EntryMeta> entries, uint64_t bytes_to_free,
                                     PolicyKind kind) {
  std::vector<uint64_t> victims;
  if (bytes_to_free == 0) return victims;
  std::vector<double> scores(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) scores[i] = retention_score(entries[i], kind);
  std::vector<size_t> order(entries.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (scores[a] != scores[b]) return scores[a] < scores[b];
    if (entries[a].last_access != entries[b].last_access) {
      return entries[a].last_access < entries[b].last_access;
    }
    return entries[a].id < entries[b].id;
  });
  uint64_t freed = 0;
  for (size_t i : order) {
    if (freed >= bytes_to_free) break;
    victims.push_back(entries[i].id);
    freed += entries[i].bytes;
  }
  return victims;
}

}  // namespace reel::cachestore
