// Request traces from the shapes world for cache studies: objects and backgrounds are drawn with
// Zipf popularity, as real prompt logs repeat a few subjects and settings far more than the rest.
#pragma once

#include <cstdint>
#include <vector>

#include "base/expected.hpp"
#include "models/shapes/world.hpp"

namespace reel::models::shapes {

struct TraceOptions {
  int requests = 1000;          // scenes in the trace; default 1000
  uint64_t seed = 0;            // default 0
  double zipf_object = 1.0;     // Zipf exponent of object popularity (0 = uniform); default 1
  double zipf_background = 1.0; // Zipf exponent of background popularity; default 1
  int max_objects = 1;          // objects per scene, 1..2 (a second object is drawn like the first); default 1
};

// `requests` scenes. The popularity order of the 360 objects (shape, colour, size, motion) and
// of the 7 backgrounds is a seeded shuffle, so different seeds favour different subjects. The
// same options give the same trace on every platform. Errors: invalid_argument for a negative
// count or exponent, or max_objects outside 1..2.
[[nodiscard]] Expected<std::vector<SceneSpec>> zipf_trace(const TraceOptions& options);

// Every object of the vocabulary, in a fixed order (shape, colour, size, motion nested).
[[nodiscard]] std::vector<ObjectSpec> all_objects();

}  // namespace reel::models::shapes
