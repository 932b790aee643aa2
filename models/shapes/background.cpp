// Background tones, blends, tints and classification for the scorer: see background.hpp.
#include "models/shapes/background.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <mutex>

#include "models/shapes/render.hpp"

namespace reel::models::shapes::detail {

namespace {

// Frames that vote on the background: a background does not change within a clip.
constexpr int kMaxBackgroundVoters = 8;
// A frame's tint relative to a background is charged to every pixel at 1 / this of its size
// (L1 over channels). Plain backgrounds differ only by tint (navy is gray plus a large one),
// so the charge must stay; at full size, though, a blurred checkerboard drawn 25 levels too
// bright would look nearer plain gray than its own pattern.
constexpr int kTintDivisor = 4;
// Cap on one pixel's summed absolute RGB difference from a background (after its tint is
// removed) when backgrounds are compared: an object pixel is wrong for every background, so
// it should weigh the same against each. About twice the foreground distance, in L1.
constexpr int kMaxPixelError = 4 * kForegroundDistance;

// Least-squares fit of v - a ~ alpha * (colour - a) + beta * (b - a), both clamped to
// [0, 1] (beta = 0 when a == b): returns (alpha, squared residual). The product term of a
// blend over a blend is left out; it is small next to either share.
std::pair<double, double> blend_fit(Rgb v, Rgb colour, Rgb a, Rgb b) {
  double d[3] = {double(colour.r) - a.r, double(colour.g) - a.g, double(colour.b) - a.b};
  double g[3] = {double(b.r) - a.r, double(b.g) - a.g, double(b.b) - a.b};
  double e[3] = {double(v.r) - a.r, double(v.g) - a.g, double(v.b) - a.b};
  auto dot = [](const double* x, const double* y) {
    return x[0] * y[0] + x[1] * y[1] + x[2] * y[2];
  };
  double dd = dot(d, d), gg = dot(g, g), dg = dot(d, g), de = dot(d, e), ge = dot(g, e);
  double alpha = 0, beta = 0;
  double det = dd * gg - dg * dg;
  if (gg > 0 && det > 1e-6 * dd * gg) {
    alpha = (de * gg - ge * dg) / det;
    beta = (ge * dd - de * dg) / det;
  } else if (dd > 0) {  // one tone, or the colour lies on the line through both tones
    alpha = de / dd;
  }
  alpha = std::clamp(alpha, 0.0, 1.0), beta = std::clamp(beta, 0.0, 1.0);
  double residual = 0;
  for (int ch = 0; ch < 3; ++ch) {
    double r = e[ch] - alpha * d[ch] - beta * g[ch];
    residual += r * r;
  }
  return {alpha, residual};
}

// Squared distance from v to the segment between colours a and b.
double segment_distance2(Rgb v, Rgb a, Rgb b) {
  double ab[3] = {double(b.r) - a.r, double(b.g) - a.g, double(b.b) - a.b};
  double av[3] = {double(v.r) - a.r, double(v.g) - a.g, double(v.b) - a.b};
  double length2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
  double t = length2 > 0 ? (av[0] * ab[0] + av[1] * ab[1] + av[2] * ab[2]) / length2 : 0;
  t = std::clamp(t, 0.0, 1.0);
  double d2 = 0;
  for (int ch = 0; ch < 3; ++ch) d2 += (av[ch] - t * ab[ch]) * (av[ch] - t * ab[ch]);
  return d2;
}

// The lower median of values counted in `histogram` (value i + `lowest` seen histogram[i]
// times): counting beats sorting for the few hundred possible values of a pixel difference.
template <size_t N>
int histogram_median(const std::array<int, N>& histogram, int lowest) {
  int total = 0;
  for (int count : histogram) total += count;
  int seen = 0;
  for (size_t i = 0; i < N; ++i) {
    seen += histogram[i];
    if (2 * seen > total) return int(i) + lowest;
  }
  return lowest;
}

// How far `frame` is from `reference` for classify_background(): the sum over pixels of the
// absolute RGB difference once the frame's tint `offset` is removed, capped at
// kMaxPixelError, plus the tint's size / kTintDivisor for every pixel.
std::int64_t background_error(std::span<const std::uint8_t> frame,
                              const std::vector<std::uint8_t>& reference,
                              const std::array<int, 3>& offset) {
  int tint = (std::abs(offset[0]) + std::abs(offset[1]) + std::abs(offset[2])) / kTintDivisor;
  std::int64_t error = 0;
  for (size_t i = 0; i + 2 < frame.size(); i += 3) {
    int difference = std::abs(int(frame[i]) - reference[i] - offset[0]) +
                     std::abs(int(frame[i + 1]) - reference[i + 1] - offset[1]) +
                     std::abs(int(frame[i + 2]) - reference[i + 2] - offset[2]);
    error += std::min(difference, kMaxPixelError) + tint;
  }
  return error;
}

}  // namespace

std::vector<std::uint8_t> box_blur(const std::vector<std::uint8_t>& image, int height, int width,
                                   int radius) {
  std::vector<std::uint8_t> out(image.size());
  int taps = (2 * radius + 1) * (2 * radius + 1);
  for (int row = 0; row < height; ++row) {
    for (int column = 0; column < width; ++column) {
      for (int ch = 0; ch < 3; ++ch) {
        int sum = 0;
        for (int dr = -radius; dr <= radius; ++dr) {
          for (int dc = -radius; dc <= radius; ++dc) {
            int r = std::clamp(row + dr, 0, height - 1), c = std::clamp(column + dc, 0, width - 1);
            sum += image[(size_t(r) * width + c) * 3 + ch];
          }
        }
        out[(size_t(row) * width + column) * 3 + ch] = std::uint8_t((sum + taps / 2) / taps);
      }
    }
  }
  return out;
}

BackgroundTones::BackgroundTones(Background background, int height, int width)
    : reference_(render_background(background, height, width)),
      blurred_reference_(box_blur(reference_, height, width, blur_radius(height, width))),
      tones_(size_t(height) * width) {
  const std::vector<std::uint8_t>& reference = reference_;
  int radius = blur_radius(height, width);
  for (int row = 0; row < height; ++row) {
    for (int column = 0; column < width; ++column) {
      Nearby& nearby = tones_[size_t(row) * width + column];
      for (int r = std::max(0, row - radius); r <= std::min(height - 1, row + radius); ++r) {
        for (int c = std::max(0, column - radius); c <= std::min(width - 1, column + radius); ++c) {
          Rgb tone = pixel_at(reference, size_t(r) * width + c);
          // Gradient steps closer than this are one tone for our purpose.
          auto same = [&](Rgb known) { return colour_distance2(known, tone) < 12 * 12; };
          if (nearby.count < nearby.tone.size() &&
              std::none_of(nearby.tone.begin(), nearby.tone.begin() + nearby.count, same)) {
            nearby.tone[nearby.count++] = tone;
          }
        }
      }
    }
  }
}

double BackgroundTones::distance2(size_t pixel, Rgb v) const {
  const Nearby& nearby = tones_[pixel];
  double best = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < nearby.count; ++i) {
    for (size_t j = i; j < nearby.count; ++j) {
      best = std::min(best, segment_distance2(v, nearby.tone[i], nearby.tone[j]));
    }
  }
  return best;
}

bool BackgroundTones::is_foreground(size_t pixel, Rgb v) const {
  constexpr int kLimit2 = kForegroundDistance * kForegroundDistance;
  // The reference pixel itself settles almost every background pixel without the blends.
  if (colour_distance2(v, pixel_at(reference_, pixel)) <= kLimit2) return false;
  return distance2(pixel, v) > double(kLimit2);
}

double BackgroundTones::object_share(size_t pixel, Rgb v, Rgb colour) const {
  Fits fits = fit(pixel, v, colour);
  double tolerance = 0.25 * kForegroundDistance * kForegroundDistance;
  double out = 1;
  for (size_t k = 0; k < fits.count; ++k) {
    if (fits.fit[k].second <= fits.best + tolerance) out = std::min(out, fits.fit[k].first);
  }
  return out;
}

double BackgroundTones::blend_residual2(size_t pixel, Rgb v, Rgb colour) const {
  return fit(pixel, v, colour).best;
}

BackgroundTones::Fits BackgroundTones::fit(size_t pixel, Rgb v, Rgb colour) const {
  const Nearby& nearby = tones_[pixel];
  Fits out;
  out.best = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < nearby.count; ++i) {
    for (size_t j = i; j < nearby.count; ++j) {
      out.fit[out.count] = blend_fit(v, colour, nearby.tone[i], nearby.tone[j]);
      out.best = std::min(out.best, out.fit[out.count++].second);
    }
  }
  return out;
}

std::shared_ptr<const std::vector<BackgroundTones>> all_background_tones(int height, int width) {
  static std::mutex mutex;
  static std::shared_ptr<const std::vector<BackgroundTones>> cached;
  static std::pair<int, int> cached_size{0, 0};
  std::lock_guard<std::mutex> lock(mutex);
  if (!cached || cached_size != std::pair{height, width}) {
    auto tones = std::make_shared<std::vector<BackgroundTones>>();
    for (Background b : kBackgrounds) tones->emplace_back(b, height, width);
    cached = std::move(tones);
    cached_size = {height, width};
  }
  return cached;
}

std::array<int, 3> median_offset(std::span<const std::uint8_t> frame,
                                 const std::vector<std::uint8_t>& reference) {
  std::array<std::array<int, 511>, 3> histograms{};  // differences -255..255
  for (size_t i = 0; i + 2 < frame.size(); i += 3) {
    ++histograms[0][int(frame[i]) - reference[i] + 255];
    ++histograms[1][int(frame[i + 1]) - reference[i + 1] + 255];
    ++histograms[2][int(frame[i + 2]) - reference[i + 2] + 255];
  }
  return {histogram_median(histograms[0], -255), histogram_median(histograms[1], -255),
          histogram_median(histograms[2], -255)};
}

Background classify_background(std::span<const std::uint8_t> clip, int frames, int height,
                               int width, const std::vector<BackgroundTones>& backgrounds) {
  size_t pixels = size_t(height) * width;
  std::array<int, kBackgrounds.size()> votes{};
  int voters = std::min(frames, kMaxBackgroundVoters);
  for (int i = 0; i < voters; ++i) {
    int f = voters > 1 ? int(std::lround(double(i) * (frames - 1) / (voters - 1))) : 0;
    auto frame = clip.subspan(size_t(f) * pixels * 3, pixels * 3);
    size_t best = 0;
    std::int64_t best_error = std::numeric_limits<std::int64_t>::max();
    for (size_t b = 0; b < backgrounds.size(); ++b) {
      // The tint against the blurred reference is the same but for rounding.
      std::array<int, 3> offset = median_offset(frame, backgrounds[b].reference());
      std::int64_t error =
          std::min(background_error(frame, backgrounds[b].reference(), offset),
                   background_error(frame, backgrounds[b].blurred_reference(), offset));
      if (error < best_error) best_error = error, best = b;
    }
    ++votes[best];
  }
  return kBackgrounds[std::max_element(votes.begin(), votes.end()) - votes.begin()];
}

std::span<const std::uint8_t> without_offset(std::span<const std::uint8_t> frame,
                                             const std::vector<std::uint8_t>& reference,
                                             std::vector<std::uint8_t>& out) {
  std::array<int, 3> offset = median_offset(frame, reference);
  for (size_t i = 0; i < frame.size(); ++i) {
    out[i] = std::uint8_t(std::clamp(int(frame[i]) - offset[i % 3], 0, 255));
  }
  return out;
}

int grain(std::span<const std::uint8_t> frame, const BackgroundTones& tones) {
  const std::vector<std::uint8_t>& sharp = tones.reference();
  const std::vector<std::uint8_t>& soft = tones.blurred_reference();
  std::array<int, 3 * 255 + 1> histogram{};
  for (size_t p = 0; p < frame.size() / 3; ++p) {
    int a = 0, b = 0;
    for (size_t ch = 0; ch < 3; ++ch) {
      a += std::abs(int(frame[p * 3 + ch]) - sharp[p * 3 + ch]);
      b += std::abs(int(frame[p * 3 + ch]) - soft[p * 3 + ch]);
    }
    ++histogram[std::min(a, b)];
  }
  return histogram_median(histogram, 0);
}

}  // namespace reel::models::shapes::detail
