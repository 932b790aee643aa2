// Pixel-level prompt adherence for the shapes world: does a clip show the scene its prompt
// asked for? The scorer reads pixels only (no ground truth from render()), so it scores model
// output, which comes soft, grainy and a little off in colour, as well as rendered clips.
//
// Background (background.hpp): a majority of per-frame votes for the nearest background by
// nearest_background()'s measure, made tolerant of blur and of an overall tint. Objects, per
// frame (segment.hpp): with the tint removed, pixels far from the background are foreground
// and go to the nearest asked colour; each object keeps its largest 4-connected component,
// redrawn at a cut relative to its own contrast. Frames where an object shows clearly fewer
// pixels than in its best frame, or lies against another object, are left out where they
// would mislead (occlusion). Then, per object:
//   colour: the vocabulary colour whose blends with the background explain its pixels best
//     (a blurred small object is background-tinted all the way in);
//   shape: two moments of its blend shares, which blur hardly moves: skew_up (an apex-up
//     triangle's mass sits low) and squareness (x and y independent: a square);
//   motion: how far its centroid ranges along each axis (neither: still, both: bouncing),
//     and for one axis its direction over the first frames, which render() makes show the
//     named direction before any bounce.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/expected.hpp"
#include "models/shapes/world.hpp"

namespace reel::models::shapes {

// Shape thresholds, from rendered clips at 32x32 and 64x64, sharp and with a 3x3 blur plus
// +-20 noise (ScoreClip.ShapeFeaturesSeparateTheThreeShapesAtBothSizes prints the ranges).
// skew_up above this is a triangle: triangles measure 0.55-0.65 sharp and down to ~0.25 when
// a blur eats the apex of a small one; circles and squares stay within +-0.14.
inline constexpr float kTriangleMinSkewUp = 0.25f;
// Otherwise squareness above this is a square: squares measure 0.94-1.02, circles 0.62-0.78
// sharp and up to ~0.89 blurred.
inline constexpr float kSquareMinSquareness = 0.91f;

struct ObjectScore {
  bool found = false;   // a segment was given to this object in at least half the frames
  bool colour = false;  // seen_colour is the asked colour
  bool shape = false;   // seen_shape is the asked shape
  bool motion = false;  // seen_motion is the asked motion
  // seen_motion is the asked motion up to its sign: left or right for a horizontal motion, up
  // or down for a vertical one, else the same. Objects bounce off the edges, so a window taken
  // late in a long video may rightly show a "moving right" object moving left; what it cannot
  // show and still be right is the wrong axis, standing still, or moving on both axes.
  bool motion_axis = false;
  // What the pixels show; meaningful only when found.
  Colour seen_colour = Colour::red;
  Shape seen_shape = Shape::circle;
  Motion seen_motion = Motion::still;
  // Centroid displacement in pixels (x right, y down) over the first frames, the ones that
  // decide a direction: from the first to the last visible frame among frames
  // 0..max(window, second visible frame), window = (min side - large side) / (2 * speed).
  float dx = 0, dy = 0;
  // Shape moments, medians over the frames used for shape (detail::Segment in segment.hpp):
  // E[x^2 y^2] / (E[x^2] E[y^2]) and -(skewness of rows), of the object's blend shares.
  float squareness = 0, skew_up = 0;
};

struct VideoScore {
  bool background = false;  // seen_background is the asked background
  Background seen_background = Background::gray;
  std::vector<ObjectScore> objects;  // one per asked object, in the order of asked.objects
};

// Scores a clip, [frames, height, width, 3] uint8 RGB, against the scene its prompt asked for.
// Objects asked in the same colour are told apart by size: per frame, the largest segments of
// that colour go to the asked objects in order of decreasing asked size.
// An asked object that shows nowhere (an all-background clip) has found and every other flag
// false. Errors: invalid_argument when frames, height or width is not positive or rgb.size()
// is not frames * height * width * 3.
[[nodiscard]] Expected<VideoScore> score_clip(const SceneSpec& asked,
                                              std::span<const std::uint8_t> rgb, int frames,
                                              int height, int width);

// Counts over many scored clips, for adherence percentages: background and whole-scene
// correctness are per video, the rest per asked object.
// Where the asked objects are, frame by frame: [frames * height * width] row-major, 1 on the
// pixels of any asked object's segment and its 8-neighbourhood (so blur at the edge counts),
// 0 elsewhere. The approximate cache stores object and background latents apart with it.
// Errors: as score_clip.
[[nodiscard]] Expected<std::vector<std::uint8_t>> object_mask(const SceneSpec& asked,
                                                              std::span<const std::uint8_t> clip,
                                                              int frames, int height, int width);

struct AdherenceTotals {
  int videos = 0;
  int background = 0;  // videos whose background is right
  int scenes = 0;      // videos with the background and every object's colour, shape, motion right
  int objects = 0;     // asked objects
  int found = 0, colour = 0, shape = 0, motion = 0;  // objects found / right in each respect
  int motion_axis = 0;  // objects whose motion is right up to its sign (ObjectScore::motion_axis)
  int object_all = 0;  // objects right in colour, shape and motion together

  void add(const VideoScore& score);

  // hits / total in [0, 1]; 0 when total is 0.
  [[nodiscard]] static double rate(int hits, int total);
  [[nodiscard]] double background_rate() const { return rate(background, videos); }
  [[nodiscard]] double scene_rate() const { return rate(scenes, videos); }
  [[nodiscard]] double found_rate() const { return rate(found, objects); }
  [[nodiscard]] double colour_rate() const { return rate(colour, objects); }
  [[nodiscard]] double shape_rate() const { return rate(shape, objects); }
  [[nodiscard]] double motion_rate() const { return rate(motion, objects); }
  [[nodiscard]] double motion_axis_rate() const { return rate(motion_axis, objects); }
  [[nodiscard]] double object_rate() const { return rate(object_all, objects); }

  // One line: "videos 500 objects 500: background 100.0% found 100.0% colour 99.8% shape
  // 99.6% motion 100.0% object 99.4% scene 99.4%".
  [[nodiscard]] std::string summary() const;
};

}  // namespace reel::models::shapes
