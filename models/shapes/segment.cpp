// Object segmentation for score_clip(): see segment.hpp.
#include "models/shapes/segment.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "models/shapes/background.hpp"
#include "models/shapes/render.hpp"

namespace reel::models::shapes::detail {

namespace {

// A pixel belongs to an object when it is at least this share of the way from the background
// to the object's colour. A 3x3 blur leaves a square's corner pixel at 4/9 of the way and its
// outside neighbours at 3/9 or less, so a blurred square comes back whole.
constexpr double kMinObjectShare = 0.4;
// Segments of two objects this close (pixels, Chebyshev) may overlap: blur can leave a thin
// gap of background-like pixels between an object and the one covering it.
constexpr int kTouchDistance = 2;
// Frames grainier than this (grain(), L1; +-20 uniform noise gives ~30) are smoothed with a
// 3x3 box before segmentation: the shape moments survive a blur, speckle does not.
constexpr int kMaxGrain = 40;

// Grows one 4-connected segment from `seeds` over the pixels where member(p) holds and that
// are not yet `seen` (which it marks).
template <class Member>
Segment flood(const std::vector<int>& seeds, Member member, std::vector<std::uint8_t>& seen,
              int height, int width) {
  Segment s;
  s.x0 = width, s.y0 = height, s.x1 = -1, s.y1 = -1;
  std::vector<int> stack;
  for (int p : seeds) {
    if (member(p) && !seen[p]) seen[p] = 1, stack.push_back(p);
  }
  while (!stack.empty()) {
    int p = stack.back();
    stack.pop_back();
    s.pixels.push_back(p);
    int row = p / width, column = p % width;
    s.x0 = std::min(s.x0, column), s.x1 = std::max(s.x1, column);
    s.y0 = std::min(s.y0, row), s.y1 = std::max(s.y1, row);
    s.cx += column, s.cy += row;
    auto visit = [&](int q) {
      if (member(q) && !seen[q]) seen[q] = 1, stack.push_back(q);
    };
    if (column > 0) visit(p - 1);
    if (column + 1 < width) visit(p + 1);
    if (row > 0) visit(p - width);
    if (row + 1 < height) visit(p + width);
  }
  if (!s.pixels.empty()) s.cx /= double(s.pixels.size()), s.cy /= double(s.pixels.size());
  return s;
}

// 4-connected components of the pixels whose label is `label`, largest first.
std::vector<Segment> components(const std::vector<int>& labels, int label, int height, int width) {
  std::vector<Segment> out;
  std::vector<std::uint8_t> seen(labels.size(), 0);
  auto member = [&](int p) { return labels[p] == label; };
  for (int start = 0; start < int(labels.size()); ++start) {
    if (labels[start] == label && !seen[start]) {
      out.push_back(flood({start}, member, seen, height, width));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const Segment& a, const Segment& b) {
    return a.pixels.size() > b.pixels.size();
  });
  return out;
}

// Median of each channel over the pixels of `frame` listed in `pixels`.
Rgb median_rgb(std::span<const std::uint8_t> frame, const std::vector<int>& pixels) {
  std::array<std::vector<std::uint8_t>, 3> channels;
  for (int p : pixels) {
    for (size_t ch = 0; ch < 3; ++ch) channels[ch].push_back(frame[size_t(p) * 3 + ch]);
  }
  auto median = [](std::vector<std::uint8_t>& values) -> std::uint8_t {
    if (values.empty()) return 0;
    auto middle = values.begin() + values.size() / 2;
    std::nth_element(values.begin(), middle, values.end());
    return *middle;
  };
  return {median(channels[0]), median(channels[1]), median(channels[2])};
}

// The pixels of `s` whose four neighbours are all in it too: away from blurred edges.
std::vector<int> interior(const Segment& s, int height, int width) {
  std::vector<std::uint8_t> in(size_t(height) * width, 0);
  for (int p : s.pixels) in[p] = 1;
  std::vector<int> out;
  for (int p : s.pixels) {
    int row = p / width, column = p % width;
    if (row > 0 && row + 1 < height && column > 0 && column + 1 < width && in[p - 1] && in[p + 1] &&
        in[p - width] && in[p + width]) {
      out.push_back(p);
    }
  }
  return out;
}

// Sets the segment's shape moments (see Segment) from the object's blend shares alpha
// (object_share()) over the segment and the ring of pixels around it, so that a blurred edge
// counts in proportion. A blur that is the same along x and y (a box or Gaussian kernel) adds
// an independent offset to each pixel's position: that keeps a square's squareness at
// exactly 1 and leaves the third moment unchanged, so both survive blur far better than the
// outline of a hard mask.
void measure_shape(Segment& s, std::span<const std::uint8_t> frame, const BackgroundTones& tones,
                   const std::vector<int>& labels, int label, Rgb colour, int height, int width) {
  std::vector<std::uint8_t> in(labels.size(), 0);
  for (int p : s.pixels) in[p] = 1;
  double mass = 0, sx = 0, sy = 0;
  std::vector<std::pair<int, double>> shares;  // (pixel, alpha)
  for (int row = std::max(0, s.y0 - 1); row <= std::min(height - 1, s.y1 + 1); ++row) {
    for (int column = std::max(0, s.x0 - 1); column <= std::min(width - 1, s.x1 + 1); ++column) {
      int p = row * width + column;
      bool near = false;
      for (int dr = -1; dr <= 1 && !near; ++dr) {
        for (int dc = -1; dc <= 1 && !near; ++dc) {
          int r = row + dr, c = column + dc;
          near = r >= 0 && r < height && c >= 0 && c < width && in[r * width + c];
        }
      }
      if (!near || (labels[p] != label && labels[p] != -1)) continue;
      double alpha = tones.object_share(size_t(p), pixel_at(frame, p), colour);
      shares.emplace_back(p, alpha);
      mass += alpha, sx += alpha * column, sy += alpha * row;
    }
  }
  if (mass <= 0) return;
  double cx = sx / mass, cy = sy / mass, xx = 0, yy = 0, xxyy = 0, yyy = 0;
  for (auto [p, alpha] : shares) {
    double x = p % width - cx, y = p / width - cy;
    xx += alpha * x * x, yy += alpha * y * y;
    xxyy += alpha * x * x * y * y, yyy += alpha * y * y * y;
  }
  xx /= mass, yy /= mass, xxyy /= mass, yyy /= mass;
  if (xx > 0 && yy > 0) {
    s.squareness = xxyy / (xx * yy);
    s.skew_up = -yyy / std::pow(yy, 1.5);
  }
}

// Sets the segment's colour_fit, from at most kColourSamples of its pixels spread over it.
// Each pixel's residual is capped so that a few stray pixels (another object's blurred edge,
// noise) cannot outvote the rest.
void fit_colours(Segment& s, std::span<const std::uint8_t> frame, const BackgroundTones& tones) {
  constexpr size_t kColourSamples = 96;
  constexpr double kCap = double(2 * kForegroundDistance) * (2 * kForegroundDistance);
  static const std::array<Rgb, kColours.size()> palette = [] {
    std::array<Rgb, kColours.size()> out;
    for (size_t k = 0; k < kColours.size(); ++k) out[k] = rgb(kColours[k]);
    return out;
  }();
  s.colour_fit.fill(0);
  size_t stride = std::max<size_t>(1, s.pixels.size() / kColourSamples);
  for (size_t i = 0; i < s.pixels.size(); i += stride) {
    size_t p = size_t(s.pixels[i]);
    Rgb v = pixel_at(frame, p);
    for (size_t k = 0; k < palette.size(); ++k) {
      s.colour_fit[k] += std::min(kCap, tones.blend_residual2(p, v, palette[k]));
    }
  }
}

// The coarse segment of one object, redrawn at a threshold relative to its own contrast: the
// pixels around it that lie at least kMinObjectShare of the way from the background to the
// object's colour (its median interior pixel in this frame), and that no other asked colour
// claims. A blur makes the fixed kForegroundDistance cut either grow a high-contrast object
// by a pixel or shave the corners off a low-contrast one; this cut does neither. The shape
// moments are measured on the way.
Segment refine(const Segment& coarse, std::span<const std::uint8_t> frame,
               const BackgroundTones& tones, const std::vector<int>& labels, int label, int height,
               int width) {
  std::vector<int> core = interior(coarse, height, width);
  Rgb colour = median_rgb(frame, core.empty() ? coarse.pixels : core);
  int x0 = std::max(0, coarse.x0 - 2), x1 = std::min(width - 1, coarse.x1 + 2);
  int y0 = std::max(0, coarse.y0 - 2), y1 = std::min(height - 1, coarse.y1 + 2);
  auto member = [&](int p) {
    int row = p / width, column = p % width;
    if (row < y0 || row > y1 || column < x0 || column > x1) return false;
    if (labels[p] != label && labels[p] != -1) return false;
    return tones.object_share(size_t(p), pixel_at(frame, size_t(p)), colour) >= kMinObjectShare;
  };
  std::vector<std::uint8_t> seen(labels.size(), 0);
  Segment refined = flood(coarse.pixels, member, seen, height, width);
  if (refined.pixels.empty()) refined = coarse;
  refined.colour = colour;
  measure_shape(refined, frame, tones, labels, label, colour, height, width);
  fit_colours(refined, frame, tones);
  return refined;
}

// Sets touches_other on the segments of frame f that lie within kTouchDistance of another
// object's segment.
void mark_touching(std::vector<std::vector<std::optional<Segment>>>& segments, int f, int height,
                   int width) {
  if (segments.size() < 2) return;
  std::vector<int> owner(size_t(height) * width, -1);
  for (size_t o = 0; o < segments.size(); ++o) {
    if (!segments[o][f]) continue;
    for (int p : segments[o][f]->pixels) owner[p] = int(o);
  }
  for (size_t o = 0; o < segments.size(); ++o) {
    if (!segments[o][f]) continue;
    Segment& s = *segments[o][f];
    for (size_t i = 0; i < s.pixels.size() && !s.touches_other; ++i) {
      int row = s.pixels[i] / width, column = s.pixels[i] % width;
      for (int r = std::max(0, row - kTouchDistance);
           r <= std::min(height - 1, row + kTouchDistance) && !s.touches_other; ++r) {
        for (int c = std::max(0, column - kTouchDistance);
             c <= std::min(width - 1, column + kTouchDistance); ++c) {
          int other = owner[size_t(r) * width + c];
          if (other >= 0 && other != int(o)) s.touches_other = true;
        }
      }
    }
  }
}

// Segments per asked object per frame: [object][frame], empty where the object has none.
// Foreground pixels go to the nearest asked colour; each colour's largest segments go to the
// objects asked in it, larger asked size first.
std::vector<std::vector<std::optional<Segment>>> segment_objects(const SceneSpec& asked,
                                                                 std::span<const std::uint8_t> clip,
                                                                 int frames, int height, int width,
                                                                 const BackgroundTones& tones) {
  size_t pixels = size_t(height) * width;
  // Distinct asked colours; group[c] lists the objects asked in colours[c].
  std::vector<Colour> colours;
  std::vector<std::vector<size_t>> groups;
  for (size_t o = 0; o < asked.objects.size(); ++o) {
    auto it = std::find(colours.begin(), colours.end(), asked.objects[o].colour);
    if (it == colours.end()) {
      colours.push_back(asked.objects[o].colour);
      groups.emplace_back();
      it = colours.end() - 1;
    }
    groups[it - colours.begin()].push_back(o);
  }
  for (auto& group : groups) {
    std::stable_sort(group.begin(), group.end(), [&](size_t a, size_t b) {
      return asked.objects[a].size == Size::large && asked.objects[b].size == Size::small;
    });
  }
  // A segment smaller than a tenth of a small object's box is noise; one larger than half
  // the frame is a background this scorer does not know (or a flash), not an object.
  int side = object_side(Size::small, height, width);
  size_t min_pixels = size_t(std::max(3, side * side / 10));
  size_t max_pixels = pixels / 2;

  std::vector<std::vector<std::optional<Segment>>> out(asked.objects.size(),
                                                       std::vector<std::optional<Segment>>(frames));
  std::vector<int> labels(pixels);
  std::vector<std::uint8_t> corrected(pixels * 3), smoothed;
  for (int f = 0; f < frames; ++f) {
    std::span<const std::uint8_t> frame = without_offset(
        clip.subspan(size_t(f) * pixels * 3, pixels * 3), tones.reference(), corrected);
    if (grain(frame, tones) > kMaxGrain) {
      smoothed = box_blur(corrected, height, width, 1);
      frame = smoothed;
    }
    for (size_t p = 0; p < pixels; ++p) {
      Rgb v = pixel_at(frame, p);
      labels[p] = -1;
      if (!tones.is_foreground(p, v)) continue;
      int best = std::numeric_limits<int>::max();
      for (size_t c = 0; c < colours.size(); ++c) {
        int d = colour_distance2(v, rgb(colours[c]));
        if (d < best) best = d, labels[p] = int(c);
      }
    }
    for (size_t c = 0; c < colours.size(); ++c) {
      std::vector<Segment> found = components(labels, int(c), height, width);
      for (size_t k = 0; k < groups[c].size() && k < found.size(); ++k) {
        if (found[k].pixels.size() < min_pixels || found[k].pixels.size() > max_pixels) continue;
        out[groups[c][k]][f] = refine(found[k], frame, tones, labels, int(c), height, width);
      }
    }
    mark_touching(out, f, height, width);
  }
  return out;
}

}  // namespace

Segmentation segment_clip(const SceneSpec& asked, std::span<const std::uint8_t> clip, int frames,
                          int height, int width) {
  auto backgrounds = all_background_tones(height, width);
  Segmentation out;
  out.background = classify_background(clip, frames, height, width, *backgrounds);
  size_t seen =
      std::find(kBackgrounds.begin(), kBackgrounds.end(), out.background) - kBackgrounds.begin();
  out.objects = segment_objects(asked, clip, frames, height, width, (*backgrounds)[seen]);
  return out;
}

}  // namespace reel::models::shapes::detail
