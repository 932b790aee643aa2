// Backgrounds, object rasterisation and bouncing motion for the shapes world.
#include "models/shapes/render.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "models/shapes/rng.hpp"

namespace reel::models::shapes {

namespace {

// Muted tones, each at least ~75 away from every object colour in world.cpp.
constexpr Rgb kNavy{20, 30, 90};
constexpr Rgb kGray{128, 128, 128};
constexpr Rgb kDarkGray{70, 70, 70};
constexpr Rgb kSand{215, 195, 150};
constexpr Rgb kSkyTop{90, 150, 225};
constexpr Rgb kSkyHorizon{170, 210, 245};
constexpr Rgb kGround{110, 80, 45};
constexpr double kGroundStart = 0.7;  // fraction of rows that is sky

Rgb mix(Rgb a, Rgb b, double t) {
  auto lerp = [t](std::uint8_t u, std::uint8_t v) {
    return static_cast<std::uint8_t>(std::lround(u + (double(v) - u) * t));
  };
  return {lerp(a.r, b.r), lerp(a.g, b.g), lerp(a.b, b.b)};
}

Rgb background_pixel(Background background, int row, int column, int height, int width) {
  int band = std::max(1, static_cast<int>(std::lround(std::min(height, width) / 8.0)));
  switch (background) {
    case Background::navy: return kNavy;
    case Background::gray: return kGray;
    case Background::sand: return kSand;
    case Background::striped_navy: return (row / band) % 2 == 0 ? kNavy : kGray;
    case Background::striped_sand: return (column / band) % 2 == 0 ? kSand : kGray;
    case Background::checkered_gray:
      return (row / band + column / band) % 2 == 0 ? kGray : kDarkGray;
    case Background::sky: {
      int ground = static_cast<int>(std::lround(kGroundStart * height));
      if (row >= ground) return kGround;
      return mix(kSkyTop, kSkyHorizon, ground > 1 ? double(row) / (ground - 1) : 0.0);
    }
  }
  return {};
}

bool covers(Shape shape, double x0, double y0, double side, double px, double py) {
  switch (shape) {
    case Shape::square: return px >= x0 && px < x0 + side && py >= y0 && py < y0 + side;
    case Shape::circle: {
      double r = side / 2, dx = px - (x0 + r), dy = py - (y0 + r);
      return dx * dx + dy * dy <= r * r;
    }
    case Shape::triangle:
      return py >= y0 && py <= y0 + side && std::abs(px - (x0 + side / 2)) <= (py - y0) / 2;
  }
  return false;
}

// Position on [0, travel] of a point moving from `start` at `velocity`, reflecting at both
// ends: a triangle wave with period 2 * travel, so it never leaves the interval.
double reflect(double start, double velocity, int frame, double travel) {
  if (travel <= 0) return 0;
  double period = 2 * travel;
  double u = std::fmod(start + velocity * frame, period);
  if (u < 0) u += period;
  return u > travel ? period - u : u;
}

struct Trajectory {
  double x0 = 0, y0 = 0, vx = 0, vy = 0;
};

// Start in the half the object moves away from, so short clips show the named direction.
Trajectory start(Motion motion, double travel_x, double travel_y, double speed,
                 detail::SplitMix64& rng) {
  double ux = rng.unit(), uy = rng.unit();
  Trajectory t{ux * travel_x, uy * travel_y, 0, 0};
  switch (motion) {
    case Motion::left: t.x0 = travel_x * (0.5 + ux / 2), t.vx = -speed; break;
    case Motion::right: t.x0 = travel_x * ux / 2, t.vx = speed; break;
    case Motion::up: t.y0 = travel_y * (0.5 + uy / 2), t.vy = -speed; break;
    case Motion::down: t.y0 = travel_y * uy / 2, t.vy = speed; break;
    case Motion::still: break;
    case Motion::bouncing:
      t.vx = (rng.next() & 1) ? speed : -speed;
      t.vy = (rng.next() & 1) ? speed : -speed;
      break;
  }
  return t;
}

}  // namespace

int object_side(Size size, int height, int width) {
  double fraction = 0;
  switch (size) {
    case Size::small: fraction = 0.25; break;
    case Size::large: fraction = 0.45; break;
  }
  return std::max(1, static_cast<int>(std::lround(fraction * std::min(height, width))));
}

double speed_px_per_frame(int height, int width) {
  return kSpeedPxPerFrameAt32 * std::min(height, width) / 32.0;
}

Rgb Clip::pixel(int frame, int row, int column) const {
  size_t i = ((size_t(frame) * height + row) * width + column) * 3;
  return {rgb[i], rgb[i + 1], rgb[i + 2]};
}

std::vector<std::uint8_t> render_background(Background background, int height, int width) {
  std::vector<std::uint8_t> out(size_t(std::max(height, 0)) * std::max(width, 0) * 3);
  for (int row = 0; row < height; ++row) {
    for (int column = 0; column < width; ++column) {
      Rgb p = background_pixel(background, row, column, height, width);
      size_t i = (size_t(row) * width + column) * 3;
      out[i] = p.r, out[i + 1] = p.g, out[i + 2] = p.b;
    }
  }
  return out;
}

Background nearest_background(std::span<const std::uint8_t> frame, int height, int width,
                              std::span<const std::uint8_t> ignore) {
  Background best = Background::gray;
  double best_error = std::numeric_limits<double>::infinity();
  for (Background candidate : kBackgrounds) {
    std::vector<std::uint8_t> reference = render_background(candidate, height, width);
    double error = 0;
    size_t pixels = std::min(frame.size(), reference.size()) / 3;
    for (size_t p = 0; p < pixels; ++p) {
      if (p < ignore.size() && ignore[p] != 0) continue;
      for (size_t c = 0; c < 3; ++c)
        error += std::abs(int(frame[p * 3 + c]) - reference[p * 3 + c]);
    }
    if (error < best_error) best_error = error, best = candidate;
  }
  return best;
}

Clip render(const SceneSpec& scene, int frames, int height, int width, std::uint64_t seed) {
  Clip clip;
  clip.frames = std::max(frames, 0);
  clip.height = height;
  clip.width = width;
  std::vector<std::uint8_t> background = render_background(scene.background, height, width);
  clip.rgb.reserve(background.size() * clip.frames);
  for (int f = 0; f < clip.frames; ++f)
    clip.rgb.insert(clip.rgb.end(), background.begin(), background.end());

  detail::SplitMix64 rng(seed);
  double speed = speed_px_per_frame(height, width);
  for (const ObjectSpec& object : scene.objects) {
    int side = object_side(object.size, height, width);
    double travel_x = std::max(0, width - side), travel_y = std::max(0, height - side);
    Trajectory t = start(object.motion, travel_x, travel_y, speed, rng);
    Rgb colour = rgb(object.colour);
    auto& centroids = clip.centroids.emplace_back();
    auto& boxes = clip.boxes.emplace_back();
    for (int f = 0; f < clip.frames; ++f) {
      double x0 = reflect(t.x0, t.vx, f, travel_x), y0 = reflect(t.y0, t.vy, f, travel_y);
      boxes.push_back({float(x0), float(y0), float(side)});
      double sum_x = 0, sum_y = 0, count = 0;
      int col_end = std::min(width, int(x0) + side + 1),
          row_end = std::min(height, int(y0) + side + 1);
      for (int row = int(y0); row < row_end; ++row) {
        for (int column = int(x0); column < col_end; ++column) {
          if (!covers(object.shape, x0, y0, side, column + 0.5, row + 0.5)) continue;
          size_t i = ((size_t(f) * height + row) * width + column) * 3;
          clip.rgb[i] = colour.r, clip.rgb[i + 1] = colour.g, clip.rgb[i + 2] = colour.b;
          sum_x += column, sum_y += row, count += 1;
        }
      }
      // An object always has pixels for side >= 2; a 1-pixel triangle may not, use its box.
      if (count == 0) sum_x = x0, sum_y = y0, count = 1;
      centroids.emplace_back(float(sum_x / count), float(sum_y / count));
    }
  }
  return clip;
}

}  // namespace reel::models::shapes
