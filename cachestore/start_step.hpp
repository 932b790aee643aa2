// How far into the schedule a cache hit may start (NIRVANA): the more similar the cached prompt,
// the later the step K whose latent is reused, and the more steps are skipped.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"

namespace reel::cachestore {

struct StartStepTable {
  struct Row {
    float min_similarity = 0.0F;  // cosine similarity at or above which the row applies
    double fraction = 0.0;        // start at (at most) this fraction of the steps, in [0, 1]
    bool operator==(const Row&) const = default;
  };

  // Sorted by min_similarity, highest first; fractions never rise down the table. parse() and
  // defaults() guarantee both; a hand-built table must keep them.
  std::vector<Row> rows;

  // 0.95 -> 0.6, 0.85 -> 0.4, 0.75 -> 0.2 of the steps; below 0.75 a miss. Provisional values,
  // to be recalibrated against measured quality.
  [[nodiscard]] static StartStepTable defaults();

  // The step to start from for a cached prompt at `similarity`, out of `steps` in the schedule:
  // the largest of `stored_steps` (steps at which the entry holds a latent, any order) that is at
  // least 1 and at most floor(fraction * steps), for the first row whose min_similarity <=
  // similarity. -1 (a miss) when no row applies, no stored step fits, steps < 1 or similarity is
  // NaN. Step 0 never counts: starting there saves nothing.
  [[nodiscard]] int start_step(float similarity, int steps, std::span<const int> stored_steps) const;

  // "0.95:0.6,0.85:0.4,0.75:0.2": comma-separated min_similarity:fraction pairs in any order,
  // spaces allowed around numbers. Errors (invalid_argument): an empty spec, a malformed pair, a
  // similarity outside [-1, 1], a fraction outside [0, 1], a repeated similarity, or fractions
  // that rise as similarity falls.
  [[nodiscard]] static Expected<StartStepTable> parse(std::string_view spec);

  // The spec parse() reads back into the same table.
  [[nodiscard]] std::string to_string() const;

  bool operator==(const StartStepTable&) const = default;
};

}  // namespace reel::cachestore
