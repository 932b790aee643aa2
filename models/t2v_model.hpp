// A text-to-video model as reel ships it: the video DiT, its text encoder and its decoder,
// with the sampling defaults it was made for, in one safetensors file.
//
// File layout: DiT parameters under diffusers names, text-encoder parameters under
// "text_encoder.", and metadata: the DiT config (Wan's keys), the text encoder's config and
// vocabulary ("text_encoder.*"), and "reel.*" keys for the name, description, prediction type,
// decoder and sampling defaults.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "base/expected.hpp"
#include "models/decoder.hpp"
#include "models/dit.hpp"
#include "models/scheduler.hpp"
#include "models/text_encoder.hpp"

namespace reel::models {

// What `reel generate` uses when a flag is not given.
struct T2VDefaults {
  int frames = 8;        // video length in frames; default 8
  int width = 32;        // pixels; default 32
  int height = 32;       // pixels; default 32
  int steps = 20;        // solver steps; default 20
  double shift = 3.0;    // sigma shift; default 3
  double guidance = 4.0; // classifier-free guidance scale; default 4
  SolverKind solver = SolverKind::unipc;  // default unipc
  int fps = 8;           // frames per second of the written video; default 8
};

struct T2VModel {
  std::string name;
  std::string description;
  std::string source;  // file it was loaded from, or "builtin:<name>"
  VideoDiT dit{nullptr};
  std::shared_ptr<WordEncoder> text_encoder;
  std::shared_ptr<Decoder> decoder;
  Prediction prediction = Prediction::velocity;
  T2VDefaults defaults;
  // Pixels per latent cell along rows and columns (1 for the pixel-space identity decoder).
  int spatial_compression = 1;
};

// Loads a model file written by save_t2v. Errors name the file and the problem.
[[nodiscard]] Expected<T2VModel> load_t2v(const std::string& path);

// Writes the model (to a temporary, renamed on success).
[[nodiscard]] Status save_t2v(const T2VModel& model, const std::string& path);

// The closed vocabulary of the built-in models: the shapes world's words (shapes, colours,
// sizes, motions, backgrounds).
[[nodiscard]] std::vector<std::string> builtin_vocabulary();

// The DiT of the built-in tiny models: 32x32 pixels, 4x4 patches, D=128, 4 blocks, 4 heads.
[[nodiscard]] DiTConfig tiny_dit_config();

// "tiny-random": a randomly initialised small model (pixel space, 32x32) that stands in until
// a trained model ships. Deterministic in `seed`; its videos are noise.
[[nodiscard]] Expected<T2VModel> make_tiny_random(uint64_t seed = 0);

}  // namespace reel::models
