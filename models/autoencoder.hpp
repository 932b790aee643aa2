// The learned latent autoencoder of the shapes models: a small convolutional encoder and decoder
// that work frame by frame, 2^downsample x spatial compression (32x32x3 -> 8x8x8 by default).
//
// Latents are normalised per channel with the mean and std measured on world frames after
// training (stored in the model as buffers), so the DiT sees latents of unit scale and the
// decoder undoes the normalisation. Per-frame means a run of whole frames decodes exactly on its
// own: FIFO pops, clips and chunked decoding need no temporal context.
//
// Parameters are named "<prefix>.<name>" in a model file (prefix "vae"), beside the DiT's and
// the text encoder's; its config is metadata "vae.*".
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/expected.hpp"
#include "models/decoder.hpp"

namespace reel::models {

class SafeTensors;

inline constexpr const char* kAutoencoderPrefix = "vae";

struct AutoencoderConfig {
  int64_t latent_channels = 0;  // latent channels; 0 = no autoencoder (pixel space); default 0
  int64_t channels = 64;        // width below full resolution; default 64
  int64_t first_channels = 32;  // width at full resolution; default 32
  int64_t downsample = 2;       // 2x stages: spatial compression 2^downsample; default 2

  [[nodiscard]] bool enabled() const { return latent_channels > 0; }
  [[nodiscard]] int64_t factor() const { return int64_t{1} << downsample; }
  // invalid_argument naming the field for values out of range.
  [[nodiscard]] Status validate() const;
  // "<prefix>.latent_channels", ... as strings, for model metadata and training fingerprints.
  [[nodiscard]] std::map<std::string, std::string> to_metadata(const std::string& prefix = kAutoencoderPrefix) const;
  // corrupt_data naming `path` and the key when one is missing or malformed.
  [[nodiscard]] static Expected<AutoencoderConfig> from_metadata(const std::map<std::string, std::string>& md,
                                                                 const std::string& path,
                                                                 const std::string& prefix = kAutoencoderPrefix);
};

// x + conv(SiLU(conv(SiLU(x)))), 3x3 convolutions.
class ResBlock2dImpl : public torch::nn::Module {
 public:
  explicit ResBlock2dImpl(int64_t channels);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(ResBlock2d);

class LatentAutoencoderImpl : public torch::nn::Module {
 public:
  explicit LatentAutoencoderImpl(AutoencoderConfig cfg);

  [[nodiscard]] const AutoencoderConfig& config() const { return cfg_; }

  // Frames [N, 3, H, W] in [-1, 1] (H, W multiples of factor()) -> raw latents [N, C, H/f, W/f].
  at::Tensor encode_frames(const at::Tensor& x);
  // Raw latents [N, C, h, w] -> frames [N, 3, h*f, w*f], about [-1, 1] (not clamped).
  at::Tensor decode_frames(const at::Tensor& z);

  // Videos [B, 3, F, H, W] in [-1, 1] -> normalised latents [B, C, F, H/f, W/f].
  at::Tensor encode(const at::Tensor& video);
  // Normalised latents [B, C, F, h, w] -> videos [B, 3, F, h*f, w*f] (not clamped).
  at::Tensor decode(const at::Tensor& latents);

  // Sets the normalisation from raw latents [N, C, h, w] (per-channel mean and std).
  void set_statistics(const at::Tensor& raw_latents);

  // Parameters and the normalisation buffers as "<prefix>.<name>".
  [[nodiscard]] std::vector<std::pair<std::string, at::Tensor>> named_tensors(
      const std::string& prefix = kAutoencoderPrefix) const;
  // Copies every tensor from "<prefix>.<name>" of `file`: corrupt_data naming the file and the
  // tensor when one is missing, has another shape, is not floating point or is not finite.
  [[nodiscard]] Status load_from(const SafeTensors& file, const std::string& prefix = kAutoencoderPrefix);

  torch::nn::Conv2d enc_in{nullptr}, enc_out{nullptr}, dec_in{nullptr}, dec_out{nullptr};
  torch::nn::ModuleList enc_down{nullptr}, dec_up{nullptr};
  ResBlock2d dec_mid{nullptr};
  at::Tensor latent_mean, latent_std;  // buffers [C]

 private:
  AutoencoderConfig cfg_;
};
TORCH_MODULE(LatentAutoencoder);

// The Decoder of latent models: normalised latents [B, C, F, h, w] -> uint8 frames.
class LatentDecoder : public Decoder {
 public:
  explicit LatentDecoder(LatentAutoencoder model);
  [[nodiscard]] Expected<at::Tensor> decode(const at::Tensor& latents) override;
  [[nodiscard]] int64_t latent_channels() const override { return model_->config().latent_channels; }
  [[nodiscard]] int64_t spatial_compression() const { return model_->config().factor(); }
  [[nodiscard]] LatentAutoencoder& model() { return model_; }
  [[nodiscard]] const LatentAutoencoder& model() const { return model_; }

  // Frames uint8 [F, H, W, 3] or [B, F, H, W, 3] -> normalised latents [B, C, F, H/f, W/f]
  // float32 (the training encoder, the cache and video extensions). invalid_argument for another
  // rank, dtype, channel count, or a size that is not a multiple of the compression.
  [[nodiscard]] Expected<at::Tensor> encode(const at::Tensor& frames);

 private:
  LatentAutoencoder model_;
};

}  // namespace reel::models
