// How a clip's pixels relate to the shapes world's backgrounds, for the scorer (score.hpp):
// which background a frame shows, and whether a pixel is background, an object, or a blend
// of the two once a generator has blurred, tinted and grained the frame. Internal to
// reel_shapes.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "models/shapes/world.hpp"

namespace reel::models::shapes::detail {

// A pixel this far (Euclidean RGB) from the background is foreground: half the smallest
// object-to-background distance (black on navy, ~77), so that a pixel must be nearer an
// object colour than a background tone, and noise up to ~+-20 a channel stays out.
inline constexpr int kForegroundDistance = 38;

[[nodiscard]] inline int colour_distance2(Rgb a, Rgb b) {
  int dr = int(a.r) - b.r, dg = int(a.g) - b.g, db = int(a.b) - b.b;
  return dr * dr + dg * dg + db * db;
}

[[nodiscard]] inline Rgb pixel_at(std::span<const std::uint8_t> image, size_t p) {
  return {image[p * 3], image[p * 3 + 1], image[p * 3 + 2]};
}

// How far (pixels) a generator's blur is assumed to reach: 1 at 32x32, 2 at 64x64.
[[nodiscard]] inline int blur_radius(int height, int width) {
  return std::max(1, std::min(height, width) / 32);
}

// Box blur of an [H, W, 3] image over (2 * radius + 1)^2 pixels, edges clamped.
[[nodiscard]] std::vector<std::uint8_t> box_blur(const std::vector<std::uint8_t>& image, int height,
                                                 int width, int radius);

// The tones a background can show near each pixel once a generator has blurred it: the
// reference tones within blur_radius() pixels (a shifted edge) and blends of two of them (a
// blurred edge between stripes, checks, or sky and ground).
class BackgroundTones {
 public:
  BackgroundTones(Background background, int height, int width);

  // Squared distance from `v` to the nearest tone near `pixel` or blend of two of them.
  [[nodiscard]] double distance2(size_t pixel, Rgb v) const;

  // Whether `v` is more than kForegroundDistance from every tone and blend near `pixel`.
  [[nodiscard]] bool is_foreground(size_t pixel, Rgb v) const;

  // How far `v` lies from the background towards `colour`, in [0, 1]: the share alpha in
  // v ~ alpha * colour + (1 - alpha) * background, the background being a nearby tone or a
  // blend of two (a blurred stripe edge). Among the fits about as good as the best one, the
  // smallest share wins: a dark-gray check beside a gray one is also "half black over gray",
  // and must still count as background.
  [[nodiscard]] double object_share(size_t pixel, Rgb v, Rgb colour) const;

  // Squared distance from `v` to its best explanation as a blend of `colour` over the
  // background near `pixel`: 0 for any pixel of a blurred edge of an object of this colour,
  // which can lie far from the colour itself.
  [[nodiscard]] double blend_residual2(size_t pixel, Rgb v, Rgb colour) const;

  // The background as render_background() draws it, [H, W, 3].
  [[nodiscard]] const std::vector<std::uint8_t>& reference() const { return reference_; }
  // The same under a box blur of blur_radius(), as a generator might draw it.
  [[nodiscard]] const std::vector<std::uint8_t>& blurred_reference() const {
    return blurred_reference_;
  }

 private:
  static constexpr size_t kMaxTones = 4;  // more than any background shows near one pixel
  struct Nearby {
    std::array<Rgb, kMaxTones> tone{};
    size_t count = 0;
  };
  // blend_fit() against every nearby tone and pair of tones.
  struct Fits {
    std::array<std::pair<double, double>, kMaxTones*(kMaxTones + 1) / 2> fit;  // (alpha, r2)
    size_t count = 0;
    double best = 0;  // smallest r2
  };
  [[nodiscard]] Fits fit(size_t pixel, Rgb v, Rgb colour) const;

  std::vector<std::uint8_t> reference_;          // [H, W, 3]
  std::vector<std::uint8_t> blurred_reference_;  // [H, W, 3]
  std::vector<Nearby> tones_;                    // [H * W]
};

// BackgroundTones for every background, in the order of kBackgrounds, at one frame size.
// They depend on nothing else, so the last size's set is kept for the next clip.
[[nodiscard]] std::shared_ptr<const std::vector<BackgroundTones>> all_background_tones(int height,
                                                                                       int width);

// The background a clip [frames, height, width, 3] shows: the majority over up to 8 frames
// spread over the clip of the nearest background (ties go to the earlier in kBackgrounds).
// "Nearest" is nearest_background()'s sum of absolute differences, made to hold up on
// generated frames, which come soft and a little off in colour:
//  - against the reference as drawn or blurred (blurred_reference()), whichever is nearer:
//    a blur at 32x32 all but erases 4-pixel checks;
//  - with the frame's tint relative to the candidate (median_offset()) removed, and a quarter
//    of it charged to every pixel. The charge keeps plain backgrounds apart (navy is gray plus
//    a large tint) while a checkerboard drawn 25 levels too bright stays nearer its own
//    pattern than plain gray;
//  - each pixel's difference capped, so that object pixels, wrong against every background,
//    weigh the same against each.
// `backgrounds` comes from all_background_tones().
[[nodiscard]] Background classify_background(std::span<const std::uint8_t> clip, int frames,
                                             int height, int width,
                                             const std::vector<BackgroundTones>& backgrounds);

// Per channel, the median of frame - reference: the frame's overall tint relative to the
// reference. Objects cover under half the frame, so this is the background's tint.
[[nodiscard]] std::array<int, 3> median_offset(std::span<const std::uint8_t> frame,
                                               const std::vector<std::uint8_t>& reference);

// The frame with its tint relative to `reference` (median_offset()) removed, written to
// `out` (same size), which it returns. A generator that draws the background 25 levels too
// bright would otherwise turn the whole frame into foreground.
std::span<const std::uint8_t> without_offset(std::span<const std::uint8_t> frame,
                                             const std::vector<std::uint8_t>& reference,
                                             std::vector<std::uint8_t>& out);

// How grainy a frame is: the median over pixels of the summed absolute RGB difference from
// the background, sharp or blurred, whichever is smaller (objects are under half the frame).
// Uniform noise of +-20 a channel gives about 30.
[[nodiscard]] int grain(std::span<const std::uint8_t> frame, const BackgroundTones& tones);

}  // namespace reel::models::shapes::detail
