// Training a text-to-video model on the shapes world (models/shapes/), on CPU or any device
// LibTorch has.
//
// Every step draws its batch from the world generator, seeded by (config seed, step): data,
// noise and noise levels are a function of the step alone, so a checkpoint (weights, EMA,
// AdamW moments, step, running loss) resumes to exactly the run that did not stop.
//
// Objective: flow matching, x_t = (1 - sigma) x0 + sigma * noise with t = 1000 sigma, the model
// predicting x0 ("sample") or the velocity noise - x0. Noise levels are drawn per sample as one
// of three kinds: shared by all frames (ordinary sampling), independent per frame (diffusion
// forcing), or independent and sorted to rise along the frames (the shape of a FIFO queue's
// window), so that one model serves standard and long-video sampling. A curriculum spends the
// first steps on single frames (cheap: colours, shapes, backgrounds) before whole clips.
//
// Everything here depends on LibTorch alone, so the trainer builds with REEL_MODELS_ONLY.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "base/expected.hpp"
#include "models/autoencoder.hpp"
#include "models/dit_config.hpp"
#include "models/scheduler.hpp"
#include "models/t2v_model.hpp"
#include "models/text_encoder.hpp"

namespace reel::models {

struct TrainConfig {
  std::string name = "shapes";  // model name written into the weights
  std::string description;      // one line for `reel models`
  DiTConfig dit;                // "model.*"; in/out channels 3 (pixels), text_dim = text.dim
  WordEncoderConfig text;       // "text_encoder.*"
  Prediction prediction = Prediction::sample;  // "model.prediction": sample (x0) or velocity

  // "autoencoder.*": a learned latent autoencoder, trained first (latent_channels 0: the DiT
  // works on pixels). The DiT then trains on its normalised latents.
  AutoencoderConfig ae;
  int64_t ae_steps = 2000;      // "autoencoder.steps": optimiser steps; default 2000
  int ae_batch = 32;            // "autoencoder.batch": frames per step; default 32
  double ae_lr = 2e-3;          // "autoencoder.lr": peak learning rate (cosine to 5%); default 2e-3
  double ae_latent_noise = 0.05;  // "autoencoder.latent_noise": decoder input noise, in latent stds; default 0.05
  double ae_object_weight = 4.0;  // "autoencoder.object_weight": loss weight of object pixels; default 4
  // "autoencoder.init": a model file whose trained autoencoder (same config) is taken as it is,
  // skipping the autoencoder phase: new DiTs over an existing latent space. Default: none.
  std::string ae_init;

  // "data.*": the clips drawn from the shapes world.
  int width = 32, height = 32;  // pixels; default 32x32
  int frames = 8;               // frames per training clip; default 8
  int max_objects = 1;          // objects per scene, 1 or 2; default 1

  // "train.*"
  int64_t steps = 10000;        // optimiser steps; default 10000
  int batch = 16;               // clips per step; default 16
  double image_fraction = 0.0;  // first fraction of the steps trained on single frames; default 0
  int image_batch = 64;         // frames per step during the image phase; default 64
  double lr = 1e-3;             // peak learning rate; default 1e-3
  double min_lr_ratio = 0.1;    // cosine decay to lr * this at the last step; default 0.1
  int64_t warmup = 200;         // linear warm-up steps; default 200
  double weight_decay = 0.01;   // AdamW decoupled decay on matrices (not biases, norms); default 0.01
  double beta1 = 0.9, beta2 = 0.99;  // AdamW moments; default 0.9, 0.99
  double adam_eps = 1e-8;       // default 1e-8
  double grad_clip = 1.0;       // global gradient-norm clip, 0 = off; default 1
  double ema_decay = 0.999;     // EMA of the weights (sampling uses it); default 0.999
  double sigma_shift = 3.0;     // shift applied to uniform noise levels; default 3
  double per_frame_fraction = 0.3;  // samples with independent per-frame levels; default 0.3
  double ramp_fraction = 0.2;       // samples with sorted (rising) per-frame levels; default 0.2
  double text_dropout = 0.1;    // samples trained unconditioned (zero text), for guidance; default 0.1
  // Keep the text encoder at its random initialisation ("train.freeze_text_encoder"). Trained
  // with the DiT from scratch, the encoder erases what the DiT cannot use yet: in shapes-m it
  // shrank the difference between "moving left" and "moving right" 30-fold while the DiT
  // learned colours, so the DiT never saw motion words apart. Frozen, every word stays distinct.
  bool freeze_text_encoder = false;  // default false
  double object_weight = 1.0;   // loss weight of object pixels relative to background; default 1
  uint64_t seed = 0;            // data, noise and initialisation; default 0
  // Clips rendered and encoded once, before the DiT phase, and drawn from at random by every
  // step (0: every step renders and encodes its own clips). Noise, noise levels and text
  // dropout are still drawn per step.
  int64_t pool_clips = 0;       // "train.pool_clips"; default 0
  int64_t checkpoint_every = 500;  // steps between checkpoints; default 500
  int64_t log_every = 50;          // steps between progress reports; default 50

  T2VDefaults defaults;         // "sample.*": sampling defaults stored in the model

  // invalid_argument naming the key for values out of range.
  [[nodiscard]] Status validate() const;
  // A canonical "key=value" listing of everything that shapes the run (for checkpoint checks).
  [[nodiscard]] std::string fingerprint() const;
};

// Parses a config from flat YAML keys (see models/detail/flat_yaml.hpp). Unknown keys are an
// error (a typo must not silently train the default), as are malformed values.
[[nodiscard]] Expected<TrainConfig> train_config_from(const std::map<std::string, std::string>& keys,
                                                      const std::string& source);
[[nodiscard]] Expected<TrainConfig> load_train_config(const std::string& path);

struct TrainOptions {
  std::string out;            // model file written at the end (EMA weights), e.g. models/zoo/x.safetensors
  std::string checkpoint;     // checkpoint file; default: out + ".ckpt"
  std::string resume;         // checkpoint to continue from (empty: start fresh)
  double minutes = 0;         // wall-time budget for this invocation; 0 = until config.steps
  int64_t stop_after = 0;     // stop after this many steps in this invocation (tests); 0 = off
  std::string device = "cpu"; // "cpu" or "cuda"
};

struct TrainProgress {
  int64_t step = 0, total = 0;
  double loss = 0;            // running mean of recent losses
  double samples_per_s = 0;   // clips (or frames in the image phase) per second, recent
  double gflops = 0;          // DiT training GFLOP/s at that rate (forward and backward), recent
  double elapsed_s = 0;       // this invocation
  double eta_s = 0;           // to config.steps at the recent rate
  bool image_phase = false;
  bool autoencoder_phase = false;  // step and total then count the autoencoder's steps
};

struct TrainResult {
  int64_t step = 0;           // DiT steps done in total (resumed ones included)
  int64_t ae_step = 0;        // autoencoder steps done in total
  double ae_psnr = 0;         // autoencoder reconstruction PSNR on held-out frames (dB), 0 without one
  double pool_seconds = 0;    // time spent rendering and encoding the clip pool in this invocation
  bool finished = false;      // reached config.steps (otherwise stopped by a budget or request)
  double loss = 0;            // running mean at the end
  double seconds = 0;         // wall time of this invocation
  std::string out;            // model written (always written, also when stopped early)
  std::string checkpoint;     // last checkpoint written
};

// Called every log_every steps; returning false asks the trainer to stop (it then checkpoints
// and writes the model as at a budget's end).
using TrainCallback = std::function<bool(const TrainProgress&)>;

// Runs (or resumes) training. Errors: invalid_argument for a bad config or options, not_found /
// corrupt_data for a checkpoint that cannot be read or belongs to another config, io_error when
// a file cannot be written, internal when LibTorch fails.
[[nodiscard]] Expected<TrainResult> train(const TrainConfig& config, const TrainOptions& options,
                                          const TrainCallback& on_progress = {});

// The untrained model a config describes (its DiT and text encoder initialised from the seed).
[[nodiscard]] Expected<T2VModel> make_untrained(const TrainConfig& config);

// One progress line, as `reel train` and reel-train print it (no newline).
[[nodiscard]] std::string format_progress(const TrainProgress& p);
// The closing line of a run (no newline).
[[nodiscard]] std::string format_result(const TrainResult& r);

// "1h02m", "3m05s", "12s".
[[nodiscard]] std::string format_duration(double seconds);

}  // namespace reel::models
