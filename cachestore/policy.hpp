// Replacement policies: which entries leave the cache when an insert needs room.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/expected.hpp"
#include "cachestore/entry_meta.hpp"

namespace reel::cachestore {

enum class PolicyKind {
  lru,         // least recently used: oldest last_access leaves first
  lcbfu,       // NIRVANA's least computationally beneficial and frequently used: K x hits
  cost_aware,  // steps saved per byte stored, with one hit of credit for new entries
};

// "lru", "lcbfu", "cost_aware" (or "cost-aware"). invalid_argument for anything else.
[[nodiscard]] Expected<PolicyKind> parse_policy(std::string_view name);
[[nodiscard]] const char* policy_name(PolicyKind kind);

// K, the steps one hit on this entry saves. A hit starts from a stored step, so an entry's prior
// is its largest stored step; measured savings (compute_saved / hits) take over as hits come:
//   K = (compute_saved + max(steps)) / (hits + 1).
[[nodiscard]] double steps_saved_per_hit(const EntryMeta& meta);

// How much an entry is worth keeping under a policy; the lowest leaves first, ties go to the
// least recently used, then to the lowest id.
//   lru:        last_access
//   lcbfu:      K x hits                                  (a never-hit entry scores 0)
//   cost_aware: K x (hits + 1) / bytes = (compute_saved + max(steps)) / bytes
// Why (hits + 1) in cost_aware: with hits alone every new entry would score 0 and be the first
// victim, so once the cache is full each insert would evict the previous insert and the cache
// could never learn anything new (the classic LFU cold-start problem). The +1 is a one-hit
// prior: a new entry is valued as if it had been hit once at its full K, the same as an old
// entry hit once, and it has to lose that value to more useful entries, not to its age.
[[nodiscard]] double retention_score(const EntryMeta& meta, PolicyKind kind);

// Ids to evict, in eviction order, so that their bytes add up to at least bytes_to_free (all
// entries when they do not). Empty when bytes_to_free is 0.
[[nodiscard]] std::vector<uint64_t> choose_victims(std::span<const EntryMeta> entries,
                                                   uint64_t bytes_to_free, PolicyKind kind);

}  // namespace reel::cachestore
