// Rendering a SceneSpec into an RGB clip with ground truth (centroids, boxes), and the
// background look-up the evaluator uses on generated frames.
//
// Geometry: each object fills a square box of side object_side() (circle: inscribed disc,
// triangle: apex at the top middle, base along the bottom). A pixel (row i, column j) belongs
// to an object when its centre (j + 0.5, i + 0.5) is inside the shape, so an object whose box
// lies in the frame is never cut. Boxes move at speed_px_per_frame() along their motion and
// reflect off the frame's edges (never wrap), so any clip length is valid. No anti-aliasing:
// object pixels are exactly rgb(colour).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "models/shapes/world.hpp"

namespace reel::models::shapes {

// Frames are meant to be at least this many pixels on each side; smaller frames still render
// but objects get only a few pixels.
inline constexpr int kMinFrameSide = 32;

// Speed at a 32-pixel smaller side, scaled in proportion to the smaller side. Bouncing objects
// move at this speed along each axis.
inline constexpr double kSpeedPxPerFrameAt32 = 1.5;

// Box side in pixels: round(0.25 * min(height, width)) for small (8 at 32x32), round(0.45 * ...)
// for large (14 at 32x32); at least 1.
[[nodiscard]] int object_side(Size size, int height, int width);

// kSpeedPxPerFrameAt32 * min(height, width) / 32: 1.5 at 32x32, 3 at 64x64.
[[nodiscard]] double speed_px_per_frame(int height, int width);

// An object's box in one frame: top-left corner and side, in pixels.
struct Box {
  float x = 0, y = 0, side = 0;
};

struct Clip {
  int frames = 0, height = 0, width = 0;
  std::vector<std::uint8_t> rgb;  // [F, H, W, 3]
  // [object][frame] -> (x, y): mean column and row index of the object's own pixels (before
  // occlusion by a later object), so rounding gives a pixel of the object.
  std::vector<std::vector<std::pair<float, float>>> centroids;
  std::vector<std::vector<Box>> boxes;  // [object][frame]

  [[nodiscard]] Rgb pixel(int frame, int row, int column) const;
};

// Draws the scene. `seed` picks each object's start position (directional motions start in the
// half of the frame they move away from, so the first L / (2 * speed) frames show the named
// direction, L being the free travel) and a bouncing object's diagonal. Deterministic.
// frames <= 0 gives an empty clip.
[[nodiscard]] Clip render(const SceneSpec& scene, int frames, int height, int width,
                          std::uint64_t seed);

// The background alone, [H, W, 3]; it does not depend on any seed. Stripes and checks are
// round(min(height, width) / 8) pixels wide (4 at 32x32); the sky takes the top 70% of rows.
[[nodiscard]] std::vector<std::uint8_t> render_background(Background background, int height,
                                                          int width);

// The vocabulary background nearest (mean absolute difference) to one [H, W, 3] frame, skipping
// pixels where `ignore` (optional, [H, W], nonzero = skip: e.g. object masks) is set.
[[nodiscard]] Background nearest_background(std::span<const std::uint8_t> frame, int height,
                                            int width, std::span<const std::uint8_t> ignore = {});

}  // namespace reel::models::shapes
