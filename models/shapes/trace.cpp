#include "models/shapes/trace.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "models/shapes/rng.hpp"

namespace reel::models::shapes {
namespace {

// Draws ranks 0..n-1 with P(rank r) proportional to 1 / (r + 1)^s, by inverting the cumulative
// table (n is at most a few hundred here).
class ZipfRanks {
 public:
  ZipfRanks(int n, double s) : cdf_(static_cast<size_t>(n)) {
    double total = 0;
    for (int r = 0; r < n; ++r) {
      total += 1.0 / std::pow(r + 1.0, s);
      cdf_[static_cast<size_t>(r)] = total;
    }
    for (double& c : cdf_) c /= total;
  }
  int draw(detail::SplitMix64& rng) const {
    double u = rng.unit();
    auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
    return static_cast<int>(std::min<std::ptrdiff_t>(it - cdf_.begin(), std::ssize(cdf_) - 1));
  }

 private:
  std::vector<double> cdf_;
};

template <class T>
void shuffle(std::vector<T>& items, detail::SplitMix64& rng) {
  for (int i = static_cast<int>(items.size()) - 1; i > 0; --i) {
    std::swap(items[static_cast<size_t>(i)], items[static_cast<size_t>(rng.below(i + 1))]);
  }
}

}  // namespace

std::vector<ObjectSpec> all_objects() {
  std::vector<ObjectSpec> out;
  for (Shape shape : kShapes)
    for (Colour colour : kColours)
      for (Size size : kSizes)
        for (Motion motion : kMotions) out.push_back({shape, colour, size, motion});
  return out;
}

Expected<std::vector<SceneSpec>> zipf_trace(const TraceOptions& o) {
  if (o.requests < 0) return make_error(Errc::invalid_argument, "the number of requests must be >= 0");
  if (!(o.zipf_object >= 0) || !(o.zipf_background >= 0) || !std::isfinite(o.zipf_object) ||
      !std::isfinite(o.zipf_background)) {
    return make_error(Errc::invalid_argument, "Zipf exponents must be finite and >= 0");
  }
  if (o.max_objects < 1 || o.max_objects > 2) {
    return make_error(Errc::invalid_argument, "objects per scene must be 1 or 2, got " + std::to_string(o.max_objects));
  }
  detail::SplitMix64 rng(o.seed ^ 0x7A1CE7A1CEULL);
  std::vector<ObjectSpec> objects = all_objects();
  std::vector<Background> backgrounds(kBackgrounds.begin(), kBackgrounds.end());
  shuffle(objects, rng);
  shuffle(backgrounds, rng);
  const ZipfRanks object_rank(static_cast<int>(objects.size()), o.zipf_object);
  const ZipfRanks background_rank(static_cast<int>(backgrounds.size()), o.zipf_background);

  std::vector<SceneSpec> trace;
  trace.reserve(static_cast<size_t>(o.requests));
  for (int i = 0; i < o.requests; ++i) {
    SceneSpec scene;
    scene.background = backgrounds[static_cast<size_t>(background_rank.draw(rng))];
    int count = 1 + (o.max_objects == 2 ? rng.below(2) : 0);
    while (static_cast<int>(scene.objects.size()) < count) {
      const ObjectSpec& object = objects[static_cast<size_t>(object_rank.draw(rng))];
      // Two objects must differ in colour for the scorer to tell them apart.
      if (!scene.objects.empty() && scene.objects[0].colour == object.colour) continue;
      scene.objects.push_back(object);
    }
    trace.push_back(std::move(scene));
  }
  return trace;
}

}  // namespace reel::models::shapes
