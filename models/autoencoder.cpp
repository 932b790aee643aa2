#include "models/autoencoder.hpp"

#include <torch/torch.h>

#include <sstream>

#include "models/safetensors.hpp"

namespace reel::models {

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2));
}

std::string shape_of(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

}  // namespace

// ---- config ------------------------------------------------------------------------------

Status AutoencoderConfig::validate() const {
  auto bad = [](const std::string& m) { return make_error(Errc::invalid_argument, "autoencoder: " + m); };
  if (latent_channels < 0 || latent_channels > 64) return bad("'latent_channels' must be in [0, 64]");
  if (!enabled()) return {};
  if (channels < 1 || channels > 1024 || first_channels < 1 || first_channels > 1024)
    return bad("'channels' and 'first_channels' must be in [1, 1024]");
  if (downsample < 1 || downsample > 4) return bad("'downsample' must be in [1, 4]");
  return {};
}

std::map<std::string, std::string> AutoencoderConfig::to_metadata(const std::string& prefix) const {
  return {{prefix + ".latent_channels", std::to_string(latent_channels)},
          {prefix + ".channels", std::to_string(channels)},
          {prefix + ".first_channels", std::to_string(first_channels)},
          {prefix + ".downsample", std::to_string(downsample)}};
}

Expected<AutoencoderConfig> AutoencoderConfig::from_metadata(const std::map<std::string, std::string>& md,
                                                             const std::string& path, const std::string& prefix) {
  AutoencoderConfig c;
  for (auto [name, field] : {std::pair<const char*, int64_t*>{"latent_channels", &c.latent_channels},
                             {"channels", &c.channels},
                             {"first_channels", &c.first_channels},
                             {"downsample", &c.downsample}}) {
    const std::string key = prefix + "." + name;
    auto it = md.find(key);
    if (it == md.end()) return make_error(Errc::corrupt_data, path + ": metadata '" + key + "' is missing");
    char* end = nullptr;
    const long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0')
      return make_error(Errc::corrupt_data, path + ": metadata '" + key + "' is not an integer: '" + it->second + "'");
    *field = v;
  }
  if (auto st = c.validate(); !st) return make_error(Errc::corrupt_data, path + ": " + st.error().message);
  if (!c.enabled()) return make_error(Errc::corrupt_data, path + ": metadata '" + prefix + ".latent_channels' is 0");
  return c;
}

// ---- modules -------------------------------------------------------------------------------

ResBlock2dImpl::ResBlock2dImpl(int64_t channels) {
  conv1 = register_module("conv1", conv(channels, channels, 3));
  conv2 = register_module("conv2", conv(channels, channels, 3));
  torch::NoGradGuard no_grad;
  conv2->weight.mul_(0.1);  // start near the identity
}

at::Tensor ResBlock2dImpl::forward(const at::Tensor& x) {
  return x + conv2->forward(torch::silu(conv1->forward(torch::silu(x))));
}

LatentAutoencoderImpl::LatentAutoencoderImpl(AutoencoderConfig cfg) : cfg_(cfg) {
  const int64_t c = cfg.channels, c0 = cfg.first_channels;
  enc_in = register_module("enc_in", conv(3, c0, 3));
  enc_down = register_module("enc_down", torch::nn::ModuleList());
  int64_t width = c0;
  for (int64_t i = 0; i < cfg.downsample; ++i) {
    enc_down->push_back(conv(width, c, 3, 2));
    enc_down->push_back(ResBlock2d(c));
    width = c;
  }
  enc_out = register_module("enc_out", conv(c, cfg.latent_channels, 1));
  dec_in = register_module("dec_in", conv(cfg.latent_channels, c, 3));
  dec_mid = register_module("dec_mid", ResBlock2d(c));
  dec_up = register_module("dec_up", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.downsample; ++i) {
    const int64_t out = i + 1 == cfg.downsample ? c0 : c;
    dec_up->push_back(conv(c, out, 3));
    dec_up->push_back(ResBlock2d(out));
  }
  dec_out = register_module("dec_out", conv(c0, 3, 3));
  latent_mean = register_buffer("latent_mean", torch::zeros({cfg.latent_channels}));
  latent_std = register_buffer("latent_std", torch::ones({cfg.latent_channels}));
}

at::Tensor LatentAutoencoderImpl::encode_frames(const at::Tensor& x) {
  auto h = torch::silu(enc_in->forward(x));
  for (size_t i = 0; i < enc_down->size(); i += 2) {
    h = torch::silu(enc_down[i]->as<torch::nn::Conv2d>()->forward(h));
    h = enc_down[i + 1]->as<ResBlock2d>()->forward(h);
  }
  return enc_out->forward(torch::silu(h));
}

at::Tensor LatentAutoencoderImpl::decode_frames(const at::Tensor& z) {
  auto h = dec_mid->forward(dec_in->forward(z));
  for (size_t i = 0; i < dec_up->size(); i += 2) {
    h = torch::upsample_nearest2d(h, {h.size(2) * 2, h.size(3) * 2});
    h = dec_up[i]->as<torch::nn::Conv2d>()->forward(torch::silu(h));
    h = dec_up[i + 1]->as<ResBlock2d>()->forward(h);
  }
  return dec_out->forward(torch::silu(h));
}

at::Tensor LatentAutoencoderImpl::encode(const at::Tensor& video) {
  const int64_t b = video.size(0), f = video.size(2);
  auto frames = video.permute({0, 2, 1, 3, 4}).reshape({b * f, video.size(1), video.size(3), video.size(4)});
  auto z = encode_frames(frames);
  z = (z - latent_mean.view({1, -1, 1, 1})) / latent_std.view({1, -1, 1, 1});
  return z.reshape({b, f, z.size(1), z.size(2), z.size(3)}).permute({0, 2, 1, 3, 4}).contiguous();
}

at::Tensor LatentAutoencoderImpl::decode(const at::Tensor& latents) {
  const int64_t b = latents.size(0), f = latents.size(2);
  auto z = latents.permute({0, 2, 1, 3, 4}).reshape({b * f, latents.size(1), latents.size(3), latents.size(4)});
  z = z * latent_std.view({1, -1, 1, 1}) + latent_mean.view({1, -1, 1, 1});
  auto x = decode_frames(z);
  return x.reshape({b, f, 3, x.size(2), x.size(3)}).permute({0, 2, 1, 3, 4}).contiguous();
}

void LatentAutoencoderImpl::set_statistics(const at::Tensor& raw_latents) {
  torch::NoGradGuard no_grad;
  auto per_channel = raw_latents.transpose(0, 1).reshape({raw_latents.size(1), -1});
  latent_mean.copy_(per_channel.mean(1));
  latent_std.copy_(per_channel.std(1).clamp_min(1e-4));
}

std::vector<std::pair<std::string, at::Tensor>> LatentAutoencoderImpl::named_tensors(const std::string& prefix) const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : named_parameters()) out.emplace_back(prefix + "." + p.key(), p.value());
  for (const auto& b : named_buffers()) out.emplace_back(prefix + "." + b.key(), b.value());
  return out;
}

Status LatentAutoencoderImpl::load_from(const SafeTensors& file, const std::string& prefix) {
  try {
    torch::NoGradGuard no_grad;
    for (auto& [name, dst] : named_tensors(prefix)) {
      auto t = file.get(name);
      if (!t) return make_error(Errc::corrupt_data, file.path() + ": missing tensor '" + name + "'");
      if (t->sizes() != dst.sizes())
        return make_error(Errc::corrupt_data, file.path() + ": tensor '" + name + "' has shape " + shape_of(*t) +
                                                  ", the autoencoder expects " + shape_of(dst));
      if (!at::isFloatingType(t->scalar_type()))
        return make_error(Errc::corrupt_data, file.path() + ": tensor '" + name + "' is not floating point");
      REEL_RETURN_IF_ERROR(check_finite(file, name, *t));
      dst.copy_(t->to(torch::kFloat32));
    }
    return {};
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, file.path() + ": " + e.what_without_backtrace());
  }
}

// ---- LatentDecoder -------------------------------------------------------------------------

LatentDecoder::LatentDecoder(LatentAutoencoder model) : model_(std::move(model)) { model_->eval(); }

Expected<at::Tensor> LatentDecoder::decode(const at::Tensor& latents) {
  if (!latents.defined() || latents.dim() != 5)
    return make_error(Errc::invalid_argument,
                      "latents must be [B, C, F, H, W], got " + (latents.defined() ? shape_of(latents) : "nothing"));
  if (latents.size(1) != latent_channels())
    return make_error(Errc::invalid_argument, "the autoencoder needs " + std::to_string(latent_channels()) +
                                                  " latent channels, got " + std::to_string(latents.size(1)) +
                                                  " in latents " + shape_of(latents));
  if (!at::isFloatingType(latents.scalar_type()))
    return make_error(Errc::invalid_argument, "latents must be floating point");
  try {
    if (latents.isnan().any().item<bool>()) return make_error(Errc::invalid_argument, "latents contain NaN values");
    torch::NoGradGuard no_grad;
    auto x = model_->decode(latents.to(at::kFloat)).permute({0, 2, 3, 4, 1});  // [B, F, H, W, 3]
    return ((x + 1) * 127.5).round().clamp(0, 255).to(at::kByte).contiguous();
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("decode: ") + e.what_without_backtrace());
  }
}

Expected<at::Tensor> LatentDecoder::encode(const at::Tensor& frames) {
  auto pixels = encode_pixels(frames);  // [B, 3, F, H, W] in [-1, 1]
  if (!pixels) return pixels.error();
  const int64_t f = spatial_compression();
  if (pixels->size(3) % f != 0 || pixels->size(4) % f != 0)
    return make_error(Errc::invalid_argument, "frames of " + std::to_string(pixels->size(4)) + "x" +
                                                  std::to_string(pixels->size(3)) + " are not a multiple of the " +
                                                  "autoencoder's compression " + std::to_string(f));
  try {
    torch::NoGradGuard no_grad;
    return model_->encode(*pixels);
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("encode: ") + e.what_without_backtrace());
  }
}

}  // namespace reel::models
