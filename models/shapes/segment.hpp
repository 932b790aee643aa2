// Segmentation for the shapes-world scorer (score.hpp): which background a clip shows, and
// where each asked object is in each frame. Internal to reel_shapes; score.hpp is the API.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "models/shapes/world.hpp"

namespace reel::models::shapes::detail {

// One object's segment in one frame: a 4-connected set of pixels, indices row-major.
struct Segment {
  std::vector<int> pixels;
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // inclusive bounding box
  double cx = 0, cy = 0;               // centroid (column, row)
  Rgb colour;                          // median of the pixels away from the segment's edge
  // Per vocabulary colour (kColours order): how badly the segment's pixels fit as blends of
  // that colour over the background (sum of capped squared residuals). Blur mixes a small
  // object with the background all the way in, so its pixels lie on the line from the
  // background to its true colour rather than near that colour.
  std::array<double, kColours.size()> colour_fit{};
  // Shape moments of the object's blend shares over the segment and the ring around it:
  //   squareness = E[x^2 y^2] / (E[x^2] E[y^2]) about the centroid: 1 for an upright square
  //     (x and y independent), 2/3 for a disc, ~0.8 for a triangle;
  //   skew_up = -E[y^3] / E[y^2]^1.5 (y down): ~0.57 for an apex-up triangle, whose mass sits
  //     in its wide bottom with a tail towards the apex; 0 for shapes symmetric top to bottom.
  double squareness = 0, skew_up = 0;
  // Near another asked object's segment in this frame, which may hide part of it.
  bool touches_other = false;
};

struct Segmentation {
  Background background = Background::gray;
  // [object][frame], in the order of the asked objects; empty where an object has no segment.
  std::vector<std::vector<std::optional<Segment>>> objects;
};

// The background (classify_background() in background.hpp), then the objects, frame by
// frame: the frame's tint relative to that background is removed, and a grainy frame is
// smoothed with a 3x3 box; pixels far from every tone the background shows nearby (or a
// blend of two) are foreground and go to the nearest asked colour; each colour's largest
// 4-connected components go to the objects asked in it (larger asked size first), and each
// is redrawn at a cut relative to the object's own contrast with the background.
// `clip` is [frames, height, width, 3] and must have that size (score_clip() checks).
[[nodiscard]] Segmentation segment_clip(const SceneSpec& asked, std::span<const std::uint8_t> clip,
                                        int frames, int height, int width);

}  // namespace reel::models::shapes::detail
