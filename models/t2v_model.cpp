#include "models/t2v_model.hpp"

#include <torch/torch.h>

#include <sstream>

#include "models/autoencoder.hpp"
#include "models/safetensors.hpp"
#include "models/shapes/world.hpp"

namespace reel::models {

namespace {

constexpr const char* kKind = "reel.kind";

std::string fmt(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

Expected<double> number(const std::map<std::string, std::string>& md, const std::string& key, double fallback,
                        const std::string& path) {
  auto it = md.find(key);
  if (it == md.end()) return fallback;
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  if (end == it->second.c_str() || *end != '\0')
    return make_error(Errc::corrupt_data, path + ": metadata '" + key + "' is not a number: '" + it->second + "'");
  return v;
}

}  // namespace

std::vector<std::string> builtin_vocabulary() { return shapes::vocabulary_words(); }

DiTConfig tiny_dit_config() {
  DiTConfig cfg;
  cfg.in_channels = 3;
  cfg.out_channels = 3;
  cfg.patch = {1, 4, 4};
  cfg.dim = 128;
  cfg.ffn_dim = 256;
  cfg.freq_dim = 64;
  cfg.text_dim = 64;
  cfg.text_len = 16;
  cfg.num_heads = 4;
  cfg.num_layers = 4;
  return cfg;
}

Expected<T2VModel> make_tiny_random(uint64_t seed) {
  const DiTConfig cfg = tiny_dit_config();
  WordEncoderConfig text_cfg;
  text_cfg.dim = cfg.text_dim;
  text_cfg.max_length = cfg.text_len;
  auto encoder = WordEncoder::random(builtin_vocabulary(), text_cfg, seed);
  if (!encoder) return encoder.error();

  T2VModel model;
  model.name = "tiny-random";
  model.description = "randomly initialised 32x32 pixel-space DiT (4 blocks, D=128); its videos are noise";
  model.source = "builtin:tiny-random";
  torch::manual_seed(seed);
  model.dit = VideoDiT(cfg);
  model.dit->eval();
  model.text_encoder = std::make_shared<WordEncoder>(std::move(*encoder));
  model.decoder = std::make_shared<IdentityDecoder>();
  model.prediction = Prediction::velocity;
  return model;
}

Status save_t2v(const T2VModel& model, const std::string& path) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : model.dit->named_parameters()) tensors.emplace_back(p.key(), p.value());
  for (auto& named : model.text_encoder->named_tensors()) tensors.push_back(std::move(named));
  auto md = model.dit->config().to_metadata();
  for (const auto& [k, v] : model.text_encoder->metadata()) md[k] = v;
  const auto& d = model.defaults;
  md[kKind] = "t2v";
  md["reel.name"] = model.name;
  md["reel.description"] = model.description;
  md["reel.prediction"] = prediction_name(model.prediction);
  if (auto latent = std::dynamic_pointer_cast<LatentDecoder>(model.decoder)) {
    for (auto& named : latent->model()->named_tensors()) tensors.push_back(std::move(named));
    for (const auto& [k, v] : latent->model()->config().to_metadata()) md[k] = v;
    md["reel.decoder"] = "latent_ae";
  } else {
    md["reel.decoder"] = "identity";
  }
  md["reel.default.frames"] = std::to_string(d.frames);
  md["reel.default.width"] = std::to_string(d.width);
  md["reel.default.height"] = std::to_string(d.height);
  md["reel.default.steps"] = std::to_string(d.steps);
  md["reel.default.shift"] = fmt(d.shift);
  md["reel.default.guidance"] = fmt(d.guidance);
  md["reel.default.solver"] = solver_kind_name(d.solver);
  md["reel.default.fps"] = std::to_string(d.fps);
  return save_safetensors(path, tensors, md);
}

Expected<T2VModel> load_t2v(const std::string& path) {
  auto file = SafeTensors::open(path);
  if (!file) return file.error();
  const auto& md = file->metadata();
  if (auto it = md.find(kKind); it == md.end() || it->second != "t2v")
    return make_error(Errc::corrupt_data, path + ": not a reel text-to-video model (metadata '" + kKind +
                                              "' is not 't2v')");
  auto dit = load_dit(*file, {std::string(kTextEncoderPrefix) + ".", std::string(kAutoencoderPrefix) + "."});
  if (!dit) return dit.error();
  auto encoder = WordEncoder::load(*file);
  if (!encoder) return encoder.error();  // its messages name the file

  T2VModel model;
  model.source = path;
  model.dit = *dit;
  model.text_encoder = std::make_shared<WordEncoder>(std::move(*encoder));
  if (auto it = md.find("reel.name"); it != md.end()) model.name = it->second;
  if (auto it = md.find("reel.description"); it != md.end()) model.description = it->second;
  if (auto it = md.find("reel.prediction"); it != md.end()) {
    auto p = parse_prediction(it->second);
    if (!p) return make_error(Errc::corrupt_data, path + ": " + p.error().message);
    model.prediction = *p;
  }
  const auto decoder_kind = md.count("reel.decoder") ? md.at("reel.decoder") : std::string("identity");
  if (decoder_kind == "latent_ae") {
    auto ae_config = AutoencoderConfig::from_metadata(md, path);
    if (!ae_config) return ae_config.error();
    LatentAutoencoder ae(*ae_config);
    REEL_RETURN_IF_ERROR(ae->load_from(*file));
    model.decoder = std::make_shared<LatentDecoder>(ae);
    model.spatial_compression = static_cast<int>(ae_config->factor());
  } else if (decoder_kind == "identity") {
    model.decoder = std::make_shared<IdentityDecoder>();
  } else {
    return make_error(Errc::unsupported, path + ": decoder '" + decoder_kind + "' is not supported by this build");
  }
  if (model.dit->config().in_channels != model.decoder->latent_channels())
    return make_error(Errc::corrupt_data, path + ": the DiT has " + std::to_string(model.dit->config().in_channels) +
                                              " latent channels but the decoder takes " +
                                              std::to_string(model.decoder->latent_channels()));
  if (model.text_encoder->dim() != model.dit->config().text_dim)
    return make_error(Errc::corrupt_data, path + ": text encoder width does not match the DiT's text_dim");

  auto& d = model.defaults;
  struct IntKey {
    const char* key;
    int* field;
  };
  for (auto [key, field] : {IntKey{"reel.default.frames", &d.frames}, IntKey{"reel.default.width", &d.width},
                            IntKey{"reel.default.height", &d.height}, IntKey{"reel.default.steps", &d.steps},
                            IntKey{"reel.default.fps", &d.fps}}) {
    auto v = number(md, key, *field, path);
    if (!v) return v.error();
    *field = static_cast<int>(*v);
  }
  auto shift = number(md, "reel.default.shift", d.shift, path);
  if (!shift) return shift.error();
  d.shift = *shift;
  auto guidance = number(md, "reel.default.guidance", d.guidance, path);
  if (!guidance) return guidance.error();
  d.guidance = *guidance;
  if (auto it = md.find("reel.default.solver"); it != md.end()) {
    auto s = parse_solver_kind(it->second);
    if (!s) return make_error(Errc::corrupt_data, path + ": " + s.error().message);
    d.solver = *s;
  }
  return model;
}

}  // namespace reel::models
