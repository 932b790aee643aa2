#include "cachestore/start_step.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace reel::cachestore {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

Expected<double> parse_number(std::string_view text, std::string_view what, std::string_view pair) {
  text = trim(text);
  double value = 0.0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return make_error(Errc::invalid_argument, "start-step table: " + std::string(what) + " in \"" +
                                                  std::string(pair) + "\" is not a number");
  }
  return value;
}

}  // namespace

StartStepTable StartStepTable::defaults() {
  return StartStepTable{{{0.95F, 0.6}, {0.85F, 0.4}, {0.75F, 0.2}}};
}

int StartStepTable::start_step(float similarity, int steps, std::span<const int> stored_steps) const {
  if (steps < 1 || std::isnan(similarity)) return -1;
  for (const Row& row : rows) {
    if (row.min_similarity > similarity) continue;
    // The small epsilon keeps 0.6 * 10 from landing on 5.999...
    int limit = static_cast<int>(std::floor(row.fraction * steps + 1e-9));
    int best = -1;
    for (int step : stored_steps) {
      if (step >= 1 && step <= limit && step > best) best = step;
    }
    return best;
  }
  return -1;
}

Expected<StartStepTable> StartStepTable::parse(std::string_view spec) {
  StartStepTable table;
  if (trim(spec).empty()) {
    return make_error(Errc::invalid_argument, "start-step table: the spec is empty");
  }
  while (true) {
    size_t comma = spec.find(',');
    std::string_view pair = spec.substr(0, comma);
    size_t colon = pair.find(':');
    if (colon == std::string_view::npos) {
      return make_error(Errc::invalid_argument, "start-step table: \"" + std::string(trim(pair)) +
                                                    "\" is not similarity:fraction");
    }
    auto similarity = parse_number(pair.substr(0, colon), "the similarity", pair);
    if (!similarity.ok()) return similarity.error();
    auto fraction = parse_number(pair.substr(colon + 1), "the fraction", pair);
    if (!fraction.ok()) return fraction.error();
    if (*similarity < -1.0 || *similarity > 1.0) {
      return make_error(Errc::invalid_argument, "start-step table: similarity in \"" +
                                                    std::string(trim(pair)) + "\" is outside [-1, 1]");
    }
    if (*fraction < 0.0 || *fraction > 1.0) {
      return make_error(Errc::invalid_argument, "start-step table: fraction in \"" +
                                                    std::string(trim(pair)) + "\" is outside [0, 1]");
    }
    table.rows.push_back(Row{static_cast<float>(*similarity), *fraction});
    if (comma == std::string_view::npos) break;
    spec.remove_prefix(comma + 1);
  }
  std::sort(table.rows.begin(), table.rows.end(),
            [](const Row& a, const Row& b) { return a.min_similarity > b.min_similarity; });
  for (size_t i = 1; i < table.rows.size(); ++i) {
    if (table.rows[i].min_similarity == table.rows[i - 1].min_similarity) {
      return make_error(Errc::invalid_argument, "start-step table: similarity " +
                                                    std::to_string(table.rows[i].min_similarity) +
                                                    " appears twice");
    }
    if (table.rows[i].fraction > table.rows[i - 1].fraction) {
      return make_error(Errc::invalid_argument,
                        "start-step table: a less similar prompt may not start later (fraction " +
                            std::to_string(table.rows[i].fraction) + " below similarity " +
                            std::to_string(table.rows[i - 1].min_similarity) + " exceeds " +
                            std::to_string(table.rows[i - 1].fraction) + ")");
    }
  }
  return table;
}

std::string StartStepTable::to_string() const {
  // to_chars writes the shortest text that reads back to the same value.
  std::string out;
  char buffer[64];
  for (const Row& row : rows) {
    if (!out.empty()) out += ',';
    out.append(buffer, std::to_chars(buffer, buffer + sizeof(buffer), row.min_similarity).ptr);
    out += ':';
    out.append(buffer, std::to_chars(buffer, buffer + sizeof(buffer), row.fraction).ptr);
  }
  return out;
}

}  // namespace reel::cachestore
