// score_clip(): colour, shape and motion of each asked object from its segments, and the
// adherence totals.
#include "models/shapes/score.hpp"

#include <algorithm>
#include <array>
#include <cstdio>

#include "models/shapes/render.hpp"
#include "models/shapes/segment.hpp"

namespace reel::models::shapes {

namespace {

// A frame counts for an object's colour, shape and motion when the object shows at least this
// share of the pixels of its best frame; fewer means another object covers part of it.
constexpr double kUnoccludedShare = 0.7;
// The minor axis of a motion counts as moving only when it ranges at least this share of the
// major axis. A bouncing object ranges at least half as far on one axis as on the other.
constexpr double kDiagonalMinRatio = 0.3;

using detail::Segment;

// The axis a motion moves along, its sign dropped: right as left, down as up.
Motion motion_axis(Motion m) {
  if (m == Motion::right) return Motion::left;
  if (m == Motion::down) return Motion::up;
  return m;
}

// The upper median; 0 for no values.
double median(std::vector<double> values) {
  if (values.empty()) return 0;
  auto middle = values.begin() + values.size() / 2;
  std::nth_element(values.begin(), middle, values.end());
  return *middle;
}

// Scores one object from its segments over the clip.
ObjectScore score_object(const ObjectSpec& asked, const std::vector<std::optional<Segment>>& segs,
                         int height, int width) {
  ObjectScore score;
  int frames = int(segs.size());
  int present = 0;
  for (const auto& s : segs) present += s.has_value();
  if (present == 0 || 2 * present < frames) return score;
  score.found = true;

  // Frames that show most of the object: at least kUnoccludedShare of the pixels of its
  // best frame. Motion uses these (a partly covered object's centroid moves little next to
  // its travel); colour and shape use those among them that are also away from every other
  // object's segment, when there are any.
  size_t most = 0;
  for (const auto& s : segs) {
    if (s) most = std::max(most, s->pixels.size());
  }
  std::vector<int> visible, apart;
  for (int f = 0; f < frames; ++f) {
    if (!segs[f] || double(segs[f]->pixels.size()) < kUnoccludedShare * double(most)) continue;
    visible.push_back(f);
    if (!segs[f]->touches_other) apart.push_back(f);
  }
  const std::vector<int>& clear = apart.empty() ? visible : apart;

  // Colour: the vocabulary colour whose blends with the background fit the segments best.
  std::array<double, kColours.size()> colour_fit{};
  std::vector<double> squareness, skew;
  for (int f : clear) {
    const Segment& s = *segs[f];
    for (size_t k = 0; k < kColours.size(); ++k) colour_fit[k] += s.colour_fit[k];
    squareness.push_back(s.squareness);
    skew.push_back(s.skew_up);
  }
  score.seen_colour =
      kColours[std::min_element(colour_fit.begin(), colour_fit.end()) - colour_fit.begin()];

  // Shape.
  score.squareness = float(median(squareness));
  score.skew_up = float(median(skew));
  if (score.skew_up > kTriangleMinSkewUp) {
    score.seen_shape = Shape::triangle;
  } else if (score.squareness > kSquareMinSquareness) {
    score.seen_shape = Shape::square;
  } else {
    score.seen_shape = Shape::circle;
  }

  // Motion: how far the centroid ranges along each axis, against a bar of a quarter of what
  // the slowest true motion covers over the same frames: a directional object covers at
  // least min(travel / 2, speed * span) along its axis, a bouncing one at least half of
  // min(travel, speed * span) along each. Direction: over the first frames, before any bounce.
  double min_x = 1e9, max_x = -1e9, min_y = 1e9, max_y = -1e9;
  for (int f : visible) {
    min_x = std::min(min_x, segs[f]->cx), max_x = std::max(max_x, segs[f]->cx);
    min_y = std::min(min_y, segs[f]->cy), max_y = std::max(max_y, segs[f]->cy);
  }
  double range_x = max_x - min_x, range_y = max_y - min_y;
  double speed = speed_px_per_frame(height, width);
  // Free travel of a large object along the smaller side: the shortest any object has.
  double travel = std::min(height, width) - object_side(Size::large, height, width);
  double span = visible.back() - visible.front();
  double moving = std::max(1.0, 0.25 * std::min(travel, speed * span));
  double major = std::max(range_x, range_y), minor = std::min(range_x, range_y);
  bool moves = major > moving;
  bool diagonal = moves && minor > moving && minor >= kDiagonalMinRatio * major;

  // render() starts a directional object at least travel / 2 from the edge it moves to.
  int window = std::max(1, int(travel / (2 * speed)));
  if (visible.size() >= 2) window = std::max(window, visible[1]);
  int first = visible.front(), last = first;
  for (int f : visible) {
    if (f <= window) last = f;
  }
  score.dx = float(segs[last]->cx - segs[first]->cx);
  score.dy = float(segs[last]->cy - segs[first]->cy);

  if (!moves) {
    score.seen_motion = Motion::still;
  } else if (diagonal) {
    score.seen_motion = Motion::bouncing;
  } else if (range_x >= range_y) {
    score.seen_motion = score.dx > 0 ? Motion::right : Motion::left;
  } else {
    score.seen_motion = score.dy > 0 ? Motion::down : Motion::up;
  }

  score.colour = score.seen_colour == asked.colour;
  score.shape = score.seen_shape == asked.shape;
  score.motion = score.seen_motion == asked.motion;
  score.motion_axis = motion_axis(score.seen_motion) == motion_axis(asked.motion);
  return score;
}

}  // namespace

namespace {

Status check_clip(std::span<const std::uint8_t> clip, int frames, int height, int width) {
  if (frames <= 0 || height <= 0 || width <= 0) {
    return make_error(Errc::invalid_argument,
                      "score_clip: frames, height and width must be positive, got " +
                          std::to_string(frames) + "x" + std::to_string(height) + "x" +
                          std::to_string(width));
  }
  size_t expected = size_t(frames) * size_t(height) * size_t(width) * 3;
  if (clip.size() != expected) {
    return make_error(Errc::invalid_argument,
                      "score_clip: " + std::to_string(clip.size()) + " bytes for a " +
                          std::to_string(frames) + "x" + std::to_string(height) + "x" +
                          std::to_string(width) + "x3 clip, expected " + std::to_string(expected));
  }
  return {};
}

}  // namespace

Expected<std::vector<std::uint8_t>> object_mask(const SceneSpec& asked, std::span<const std::uint8_t> clip,
                                                int frames, int height, int width) {
  REEL_RETURN_IF_ERROR(check_clip(clip, frames, height, width));
  detail::Segmentation segmentation = detail::segment_clip(asked, clip, frames, height, width);
  const size_t plane = size_t(height) * size_t(width);
  std::vector<std::uint8_t> mask(size_t(frames) * plane, 0);
  for (const auto& object : segmentation.objects) {
    for (int f = 0; f < frames && f < int(object.size()); ++f) {
      if (!object[size_t(f)]) continue;
      std::uint8_t* m = mask.data() + size_t(f) * plane;
      for (int p : object[size_t(f)]->pixels) {
        const int y = p / width, x = p % width;
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) {
            const int yy = y + dy, xx = x + dx;
            if (yy >= 0 && yy < height && xx >= 0 && xx < width) m[size_t(yy) * size_t(width) + size_t(xx)] = 1;
          }
      }
    }
  }
  return mask;
}

Expected<VideoScore> score_clip(const SceneSpec& asked, std::span<const std::uint8_t> clip,
                                int frames, int height, int width) {
  REEL_RETURN_IF_ERROR(check_clip(clip, frames, height, width));
  detail::Segmentation segmentation = detail::segment_clip(asked, clip, frames, height, width);
  VideoScore score;
  score.seen_background = segmentation.background;
  score.background = score.seen_background == asked.background;
  for (size_t o = 0; o < asked.objects.size(); ++o) {
    score.objects.push_back(score_object(asked.objects[o], segmentation.objects[o], height, width));
  }
  return score;
}

void AdherenceTotals::add(const VideoScore& score) {
  ++videos;
  background += score.background;
  bool scene = score.background;
  for (const ObjectScore& object : score.objects) {
    ++objects;
    found += object.found;
    colour += object.colour;
    shape += object.shape;
    motion += object.motion;
    motion_axis += object.motion_axis;
    bool right = object.colour && object.shape && object.motion;
    object_all += right;
    scene = scene && right;
  }
  scenes += scene;
}

double AdherenceTotals::rate(int hits, int total) { return total > 0 ? double(hits) / total : 0.0; }

std::string AdherenceTotals::summary() const {
  char line[256];
  std::snprintf(line, sizeof line,
                "videos %d objects %d: background %.1f%% found %.1f%% colour %.1f%% shape "
                "%.1f%% motion %.1f%% object %.1f%% scene %.1f%%",
                videos, objects, 100 * background_rate(), 100 * found_rate(), 100 * colour_rate(),
                100 * shape_rate(), 100 * motion_rate(), 100 * object_rate(), 100 * scene_rate());
  return line;
}

}  // namespace reel::models::shapes
