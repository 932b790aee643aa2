#include "models/train.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/closest.hpp"
#include "models/detail/flat_yaml.hpp"
#include "models/safetensors.hpp"
#include "models/shapes/grammar.hpp"
#include "models/shapes/render.hpp"
#include "models/shapes/rng.hpp"
#include "models/shapes/world.hpp"

namespace reel::models {

namespace {

using shapes::detail::SplitMix64;
constexpr const char* kCheckpointKind = "train_checkpoint";

// ---- config parsing ----------------------------------------------------------------------

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

Expected<double> to_number(const std::string& key, const std::string& value) {
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(v))
    return make_error(Errc::invalid_argument, "'" + key + "' must be a number, got '" + value + "'");
  return v;
}

Expected<int64_t> to_integer(const std::string& key, const std::string& value) {
  auto v = to_number(key, value);
  if (!v) return v.error();
  if (std::floor(*v) != *v || std::fabs(*v) > 9e15)
    return make_error(Errc::invalid_argument, "'" + key + "' must be an integer, got '" + value + "'");
  return static_cast<int64_t>(*v);
}

Expected<bool> to_bool(const std::string& key, const std::string& value) {
  if (value == "true") return true;
  if (value == "false") return false;
  return make_error(Errc::invalid_argument, "'" + key + "' must be true or false, got '" + value + "'");
}

// "[1, 4, 4]" -> {1, 4, 4}.
Expected<std::array<int64_t, 3>> to_triple(const std::string& key, const std::string& value) {
  auto bad = make_error(Errc::invalid_argument, "'" + key + "' must be a list of 3 integers like [1, 4, 4], got '" +
                                                    value + "'");
  if (value.size() < 2 || value.front() != '[' || value.back() != ']') return bad;
  std::array<int64_t, 3> out{};
  std::istringstream in(value.substr(1, value.size() - 2));
  std::string item;
  size_t n = 0;
  while (std::getline(in, item, ',')) {
    if (n == 3) return bad;
    auto v = to_integer(key, item.erase(0, item.find_first_not_of(' ')));
    if (!v) return bad;
    out[n++] = *v;
  }
  if (n != 3) return bad;
  return out;
}

// One setter per key; a key maps to exactly one field.
using Setter = std::function<Status(TrainConfig&, const std::string& key, const std::string& value)>;

// A numeric setting: `field` picks the member of the config it sets; integers must be whole.
template <typename Field>
Setter numeric(Field field) {
  return [field](TrainConfig& c, const std::string& k, const std::string& v) -> Status {
    auto& member = field(c);
    using T = std::remove_reference_t<decltype(member)>;
    if constexpr (std::is_integral_v<T>) {
      auto n = to_integer(k, v);
      if (!n) return n.error();
      member = static_cast<T>(*n);
    } else {
      auto n = to_number(k, v);
      if (!n) return n.error();
      member = *n;
    }
    return {};
  };
}
// A true/false setting.
template <typename Field>
Setter boolean(Field field) {
  return [field](TrainConfig& c, const std::string& k, const std::string& v) -> Status {
    auto b = to_bool(k, v);
    if (!b) return b.error();
    field(c) = *b;
    return {};
  };
}
#define REEL_FIELD(expr) numeric([](TrainConfig& c) -> auto& { return c.expr; })
#define REEL_FLAG(expr) boolean([](TrainConfig& c) -> bool& { return c.expr; })

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = {
      {"name", [](TrainConfig& c, const std::string&, const std::string& v) -> Status { c.name = v; return {}; }},
      {"description",
       [](TrainConfig& c, const std::string&, const std::string& v) -> Status { c.description = v; return {}; }},
      {"model.patch",
       [](TrainConfig& c, const std::string& k, const std::string& v) -> Status {
         auto t = to_triple(k, v);
         if (!t) return t.error();
         c.dit.patch = *t;
         return {};
       }},
      {"model.dim", REEL_FIELD(dit.dim)},
      {"model.ffn_dim", REEL_FIELD(dit.ffn_dim)},
      {"model.freq_dim", REEL_FIELD(dit.freq_dim)},
      {"model.heads", REEL_FIELD(dit.num_heads)},
      {"model.layers", REEL_FIELD(dit.num_layers)},
      {"model.stem_channels", REEL_FIELD(dit.stem_channels)},
      {"model.refine_channels", REEL_FIELD(dit.refine_channels)},
      {"model.abs_pos", REEL_FLAG(dit.abs_pos)},
      {"model.text_time", REEL_FLAG(dit.text_time)},
      {"model.qk_norm", REEL_FLAG(dit.qk_norm)},
      {"model.prediction",
       [](TrainConfig& c, const std::string& k, const std::string& v) -> Status {
         auto p = parse_prediction(v);
         if (!p) return make_error(Errc::invalid_argument, "'" + k + "': " + p.error().message);
         c.prediction = *p;
         return {};
       }},
      {"autoencoder.latent_channels", REEL_FIELD(ae.latent_channels)},
      {"autoencoder.channels", REEL_FIELD(ae.channels)},
      {"autoencoder.first_channels", REEL_FIELD(ae.first_channels)},
      {"autoencoder.downsample", REEL_FIELD(ae.downsample)},
      {"autoencoder.steps", REEL_FIELD(ae_steps)},
      {"autoencoder.batch", REEL_FIELD(ae_batch)},
      {"autoencoder.lr", REEL_FIELD(ae_lr)},
      {"autoencoder.latent_noise", REEL_FIELD(ae_latent_noise)},
      {"autoencoder.object_weight", REEL_FIELD(ae_object_weight)},
      {"autoencoder.init",
       [](TrainConfig& c, const std::string&, const std::string& v) -> Status { c.ae_init = v; return {}; }},
      {"train.pool_clips", REEL_FIELD(pool_clips)},
      {"text_encoder.dim", REEL_FIELD(text.dim)},
      {"text_encoder.layers", REEL_FIELD(text.layers)},
      {"text_encoder.heads", REEL_FIELD(text.heads)},
      {"text_encoder.ffn_dim", REEL_FIELD(text.ffn_dim)},
      {"text_encoder.max_length", REEL_FIELD(text.max_length)},
      {"data.width", REEL_FIELD(width)},
      {"data.height", REEL_FIELD(height)},
      {"data.frames", REEL_FIELD(frames)},
      {"data.max_objects", REEL_FIELD(max_objects)},
      {"train.steps", REEL_FIELD(steps)},
      {"train.batch", REEL_FIELD(batch)},
      {"train.image_fraction", REEL_FIELD(image_fraction)},
      {"train.image_batch", REEL_FIELD(image_batch)},
      {"train.lr", REEL_FIELD(lr)},
      {"train.min_lr_ratio", REEL_FIELD(min_lr_ratio)},
      {"train.warmup", REEL_FIELD(warmup)},
      {"train.weight_decay", REEL_FIELD(weight_decay)},
      {"train.beta1", REEL_FIELD(beta1)},
      {"train.beta2", REEL_FIELD(beta2)},
      {"train.adam_eps", REEL_FIELD(adam_eps)},
      {"train.grad_clip", REEL_FIELD(grad_clip)},
      {"train.ema_decay", REEL_FIELD(ema_decay)},
      {"train.sigma_shift", REEL_FIELD(sigma_shift)},
      {"train.per_frame_fraction", REEL_FIELD(per_frame_fraction)},
      {"train.ramp_fraction", REEL_FIELD(ramp_fraction)},
      {"train.text_dropout", REEL_FIELD(text_dropout)},
      {"train.freeze_text_encoder", REEL_FLAG(freeze_text_encoder)},
      {"train.object_weight", REEL_FIELD(object_weight)},
      {"train.seed", REEL_FIELD(seed)},
      {"train.checkpoint_every", REEL_FIELD(checkpoint_every)},
      {"train.log_every", REEL_FIELD(log_every)},
      {"sample.frames", REEL_FIELD(defaults.frames)},
      {"sample.steps", REEL_FIELD(defaults.steps)},
      {"sample.fps", REEL_FIELD(defaults.fps)},
      {"sample.shift", REEL_FIELD(defaults.shift)},
      {"sample.guidance", REEL_FIELD(defaults.guidance)},
      {"sample.solver",
       [](TrainConfig& c, const std::string& k, const std::string& v) -> Status {
         auto s = parse_solver_kind(v);
         if (!s) return make_error(Errc::invalid_argument, "'" + k + "': " + s.error().message);
         c.defaults.solver = *s;
         return {};
       }},
  };
  return table;
}
#undef REEL_FIELD
#undef REEL_FLAG

// The base config every file starts from: a small pixel-space model over the shapes world.
TrainConfig base_config() {
  TrainConfig c;
  c.dit = tiny_dit_config();
  c.text.dim = c.dit.text_dim;
  c.text.max_length = c.dit.text_len;
  return c;
}

// ---- batches -----------------------------------------------------------------------------

uint64_t mix(uint64_t seed, uint64_t step, uint64_t stream) {
  SplitMix64 a(seed ^ (0x51ED270B27AE4F8Dull * (step + 1)) ^ (0x2545F4914F6CDD1Dull * (stream + 1)));
  a.next();
  return a.next();
}

struct Batch {
  at::Tensor x0;      // [B, 3, F, H, W] in [-1, 1]
  at::Tensor weight;  // [B, 1, F, H, W] loss weights, undefined when uniform
  at::Tensor sigma;   // [B, F]
  at::Tensor keep_text;  // [B, 1, 1]: 1 conditioned, 0 unconditioned
  at::Tensor noise;   // [B, 3, F, H, W]
  std::vector<std::string> prompts;
};

double shifted(double u, double shift) { return shift * u / (1.0 + (shift - 1.0) * u); }

// Sample i's noise levels (out.sigma[i], one per frame) and text dropout (out.keep_text[i]):
// levels shared by all frames, independent per frame, or independent and rising along the
// frames, in the config's proportions.
void draw_levels(const TrainConfig& c, SplitMix64& rng, Batch& out, int i) {
  const int64_t f = out.sigma.size(1);
  const double kind = rng.unit();
  std::vector<double> u(f);
  if (kind < c.per_frame_fraction + c.ramp_fraction) {
    for (auto& v : u) v = rng.unit();
    if (kind >= c.per_frame_fraction) std::sort(u.begin(), u.end());
  } else {
    std::fill(u.begin(), u.end(), rng.unit());
  }
  auto sigma = out.sigma.accessor<float, 2>();
  for (int64_t t = 0; t < f; ++t) sigma[i][t] = static_cast<float>(shifted(u[t], c.sigma_shift));
  if (rng.unit() < c.text_dropout) out.keep_text[i][0][0] = 0.0f;
}

// `noise_channels` and `cell` give the noise the latent's shape: channels, and pixels per
// latent cell along rows and columns (3 and 1 for pixel-space models).
Batch make_batch(const TrainConfig& c, int64_t step, bool image_phase, int64_t noise_channels = 3, int64_t cell = 1) {
  const int b = image_phase ? c.image_batch : c.batch;
  const int f = image_phase ? 1 : c.frames;
  const int h = c.height, w = c.width;
  SplitMix64 rng(mix(c.seed, static_cast<uint64_t>(step), 0));
  Batch out;
  out.x0 = torch::empty({b, 3, f, h, w});
  const bool weighted = c.object_weight != 1.0;
  if (weighted) out.weight = torch::ones({b, 1, f, h, w});
  out.sigma = torch::empty({b, f});
  out.keep_text = torch::ones({b, 1, 1});
  auto x0 = out.x0.accessor<float, 5>();
  for (int i = 0; i < b; ++i) {
    const auto scene = shapes::sample_scene(rng.next(), shapes::SampleOptions{}.with_max_objects(c.max_objects));
    // Single frames come from anywhere in a clip, so that objects are seen at every position.
    const int render_frames = image_phase ? c.frames : f;
    const int first = image_phase ? rng.below(render_frames) : 0;
    const auto clip = shapes::render(scene, render_frames, h, w, rng.next());
    for (int t = 0; t < f; ++t)
      for (int y = 0; y < h; ++y)
        for (int xx = 0; xx < w; ++xx) {
          const auto* px = &clip.rgb[((static_cast<size_t>(first + t) * h + y) * w + xx) * 3];
          for (int ch = 0; ch < 3; ++ch) x0[i][ch][t][y][xx] = static_cast<float>(px[ch]) / 127.5f - 1.0f;
        }
    if (weighted) {
      auto wt = out.weight.accessor<float, 5>();
      for (const auto& boxes : clip.boxes)
        for (int t = 0; t < f; ++t) {
          const auto& bx = boxes[first + t];
          const int y0 = std::max(0, static_cast<int>(bx.y)), y1 = std::min(h, static_cast<int>(std::ceil(bx.y + bx.side)));
          const int x0b = std::max(0, static_cast<int>(bx.x)), x1 = std::min(w, static_cast<int>(std::ceil(bx.x + bx.side)));
          for (int y = y0; y < y1; ++y)
            for (int xx = x0b; xx < x1; ++xx) wt[i][0][t][y][xx] = static_cast<float>(c.object_weight);
        }
    }
    out.prompts.push_back(shapes::prompt(scene));
    draw_levels(c, rng, out, i);
  }
  at::Generator gen = at::detail::createCPUGenerator(mix(c.seed, static_cast<uint64_t>(step), 1));
  out.noise = torch::randn({b, noise_channels, f, h / cell, w / cell}, gen, torch::TensorOptions().dtype(torch::kFloat32));
  return out;
}

// ---- optimiser state -------------------------------------------------------------------

struct Param {
  std::string name;
  at::Tensor value;  // the live parameter
  at::Tensor ema, m, v;
  bool decay = false;
};

bool decays(const std::string& name, const at::Tensor& t) {
  if (t.dim() < 2) return false;
  for (const char* skip : {"scale_shift_table", "token_embedding", "position_embedding"})
    if (name.find(skip) != std::string::npos) return false;
  return true;
}

double learning_rate(const TrainConfig& c, int64_t step) {
  if (step < c.warmup) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup);
  const double span = std::max<int64_t>(1, c.steps - c.warmup);
  const double progress = std::min(1.0, static_cast<double>(step - c.warmup) / span);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return c.lr * (c.min_lr_ratio + (1.0 - c.min_lr_ratio) * cosine);
}

// Where a run stands, beside the parameters: what a checkpoint's metadata holds.
struct RunState {
  int64_t step = 0;        // DiT steps done
  double loss = 0;         // DiT running loss
  int64_t ae_step = 0;     // autoencoder steps done
  double ae_loss = 0;      // autoencoder running loss
  bool ae_ready = false;   // autoencoder finished: EMA weights in place, latent statistics set
};

// `buffers` are tensors that are not optimised but belong to the run (the autoencoder's latent
// statistics): saved as "buffer.<name>" and restored in place.
Status save_checkpoint(const std::string& path, const std::vector<Param>& params,
                       const std::vector<std::pair<std::string, at::Tensor>>& buffers, const RunState& state,
                       const TrainConfig& config) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  tensors.reserve(params.size() * 4 + buffers.size());
  for (const auto& p : params) {
    tensors.emplace_back("param." + p.name, p.value);
    tensors.emplace_back("ema." + p.name, p.ema);
    tensors.emplace_back("adam_m." + p.name, p.m);
    tensors.emplace_back("adam_v." + p.name, p.v);
  }
  for (const auto& [name, t] : buffers) tensors.emplace_back("buffer." + name, t);
  std::map<std::string, std::string> md = {{"reel.kind", kCheckpointKind},
                                           {"train.step", std::to_string(state.step)},
                                           {"train.loss", fmt(state.loss)},
                                           {"train.config", config.fingerprint()}};
  if (config.ae.enabled()) {
    md["train.ae_step"] = std::to_string(state.ae_step);
    md["train.ae_loss"] = fmt(state.ae_loss);
    md["train.ae_ready"] = state.ae_ready ? "1" : "0";
  }
  return save_safetensors(path, tensors, md);
}

Status load_checkpoint(const std::string& path, std::vector<Param>& params,
                       const std::vector<std::pair<std::string, at::Tensor>>& buffers, RunState& state,
                       const TrainConfig& config) {
  auto file = SafeTensors::open(path);
  if (!file) return file.error();
  const auto& md = file->metadata();
  if (auto it = md.find("reel.kind"); it == md.end() || it->second != kCheckpointKind)
    return make_error(Errc::corrupt_data, path + ": not a reel training checkpoint");
  if (auto it = md.find("train.config"); it == md.end() || it->second != config.fingerprint()) {
    std::string detail;
    if (it != md.end()) {  // name the first differing setting
      std::istringstream a(it->second), b(config.fingerprint());
      std::string la, lb;
      while (std::getline(a, la, ';') && std::getline(b, lb, ';'))
        if (la != lb) {
          detail = ": it has " + la + ", the config has " + lb;
          break;
        }
    }
    return make_error(Errc::invalid_argument, path + ": checkpoint was made with another training config" + detail);
  }
  try {
    state.step = std::stoll(md.at("train.step"));
    state.loss = std::stod(md.at("train.loss"));
    if (config.ae.enabled()) {
      state.ae_step = std::stoll(md.at("train.ae_step"));
      state.ae_loss = std::stod(md.at("train.ae_loss"));
      state.ae_ready = md.at("train.ae_ready") == "1";
    }
  } catch (const std::exception&) {
    return make_error(Errc::corrupt_data, path + ": bad train.* step or loss metadata");
  }
  torch::NoGradGuard no_grad;
  auto restore = [&](const std::string& name, at::Tensor& dst) -> Status {
    auto t = file->get(name);
    if (!t) return make_error(Errc::corrupt_data, path + ": " + t.error().message);
    if (t->sizes() != dst.sizes())
      return make_error(Errc::corrupt_data, path + ": tensor '" + name + "' has the wrong shape");
    dst.copy_(t->to(dst.device(), torch::kFloat32));
    return {};
  };
  for (auto& p : params)
    for (auto [prefix, dst] : {std::pair<std::string, at::Tensor*>{"param.", &p.value}, {"ema.", &p.ema},
                               {"adam_m.", &p.m}, {"adam_v.", &p.v}})
      REEL_RETURN_IF_ERROR(restore(prefix + p.name, *dst));
  for (auto [name, t] : buffers) REEL_RETURN_IF_ERROR(restore("buffer." + name, t));
  return {};
}

}  // namespace

// ---- TrainConfig ---------------------------------------------------------------------------

Status TrainConfig::validate() const {
  auto bad = [](const std::string& m) { return make_error(Errc::invalid_argument, "training config: " + m); };
  if (name.empty()) return bad("'name' must not be empty");
  if (width < 8 || height < 8) return bad("'data.width' and 'data.height' must be at least 8");
  if (frames < 1) return bad("'data.frames' must be at least 1");
  if (max_objects < 1 || max_objects > 2) return bad("'data.max_objects' must be 1 or 2");
  if (auto st = ae.validate(); !st) return bad(st.error().message);
  const int64_t cell = ae.enabled() ? ae.factor() : 1;
  if (height % cell != 0 || width % cell != 0)
    return bad("'data' height/width must be divisible by the autoencoder's compression " + std::to_string(cell));
  if (frames % dit.patch[0] != 0 || (height / cell) % dit.patch[1] != 0 || (width / cell) % dit.patch[2] != 0)
    return bad(ae.enabled() ? "'data' frames and the latent's height/width must be divisible by 'model.patch'"
                            : "'data' frames/height/width must be divisible by 'model.patch'");
  if (ae.enabled() && (ae_steps < 1 || ae_batch < 1 || !(ae_lr > 0) || ae_latent_noise < 0 || !(ae_object_weight > 0)))
    return bad("'autoencoder.steps', 'batch', 'lr' and 'object_weight' must be positive, 'latent_noise' not negative");
  if (pool_clips < 0) return bad("'train.pool_clips' must not be negative");
  if (!ae_init.empty() && !ae.enabled()) return bad("'autoencoder.init' needs 'autoencoder.latent_channels'");
  if (steps < 1 || batch < 1 || image_batch < 1) return bad("'train.steps', 'train.batch', 'train.image_batch' must be positive");
  if (image_fraction < 0 || image_fraction > 1) return bad("'train.image_fraction' must be in [0, 1]");
  if (image_fraction > 0 && dit.patch[0] != 1) return bad("'train.image_fraction' needs a temporal patch of 1");
  if (!(lr > 0) || min_lr_ratio < 0 || min_lr_ratio > 1) return bad("'train.lr' must be positive, 'train.min_lr_ratio' in [0, 1]");
  if (warmup < 0 || weight_decay < 0 || grad_clip < 0) return bad("'train.warmup', 'train.weight_decay', 'train.grad_clip' must not be negative");
  if (beta1 < 0 || beta1 >= 1 || beta2 < 0 || beta2 >= 1 || !(adam_eps > 0)) return bad("AdamW betas must be in [0, 1), adam_eps positive");
  if (ema_decay < 0 || ema_decay >= 1) return bad("'train.ema_decay' must be in [0, 1)");
  if (!(sigma_shift > 0)) return bad("'train.sigma_shift' must be positive");
  if (per_frame_fraction < 0 || ramp_fraction < 0 || per_frame_fraction + ramp_fraction > 1)
    return bad("'train.per_frame_fraction' and 'train.ramp_fraction' must be non-negative and sum to at most 1");
  if (text_dropout < 0 || text_dropout > 1) return bad("'train.text_dropout' must be in [0, 1]");
  if (!(object_weight > 0)) return bad("'train.object_weight' must be positive");
  if (checkpoint_every < 1 || log_every < 1) return bad("'train.checkpoint_every' and 'train.log_every' must be positive");
  if (defaults.frames < 1 || defaults.steps < 1 || defaults.fps < 1 || !(defaults.shift > 0) || defaults.guidance < 0)
    return bad("'sample.*' values must be positive");
  if (defaults.frames % dit.patch[0] != 0)
    return bad("'sample.frames' must be a multiple of the temporal patch " + std::to_string(dit.patch[0]) +
               ", or the model's own default length cannot be generated");
  if (dit.num_layers < 1) return bad("'model.layers' must be at least 1");
  if (auto st = dit.validate(); !st) return bad(st.error().message);
  if (dit.text_dim != text.dim || dit.text_len != text.max_length)
    return bad("the DiT's text width and length must be the text encoder's");
  return {};
}

std::string TrainConfig::fingerprint() const {
  std::ostringstream os;
  for (const auto& [k, v] : dit.to_metadata()) os << "model." << k << '=' << v << ';';
  for (const auto& [k, v] : text.to_metadata("text")) os << k << '=' << v << ';';
  os << "prediction=" << prediction_name(prediction) << ';' << "data=" << width << 'x' << height << 'x' << frames
     << ",objects=" << max_objects << ';' << "steps=" << steps << ";batch=" << batch
     << ";image_fraction=" << fmt(image_fraction) << ";image_batch=" << image_batch << ";lr=" << fmt(lr)
     << ";min_lr_ratio=" << fmt(min_lr_ratio) << ";warmup=" << warmup << ";weight_decay=" << fmt(weight_decay)
     << ";betas=" << fmt(beta1) << ',' << fmt(beta2) << ";adam_eps=" << fmt(adam_eps) << ";grad_clip=" << fmt(grad_clip)
     << ";ema_decay=" << fmt(ema_decay) << ";sigma_shift=" << fmt(sigma_shift)
     << ";per_frame_fraction=" << fmt(per_frame_fraction) << ";ramp_fraction=" << fmt(ramp_fraction)
     << ";text_dropout=" << fmt(text_dropout) << ";object_weight=" << fmt(object_weight) << ";seed=" << seed;
  if (freeze_text_encoder) os << ";freeze_text_encoder=true";
  if (ae.enabled()) {
    for (const auto& [k, v] : ae.to_metadata("autoencoder")) os << ';' << k << '=' << v;
    os << ";autoencoder.steps=" << ae_steps << ";autoencoder.batch=" << ae_batch << ";autoencoder.lr=" << fmt(ae_lr)
       << ";autoencoder.latent_noise=" << fmt(ae_latent_noise)
       << ";autoencoder.object_weight=" << fmt(ae_object_weight);
    if (!ae_init.empty()) os << ";autoencoder.init=" << ae_init;
  }
  if (pool_clips > 0) os << ";pool_clips=" << pool_clips;
  return os.str();
}

namespace {

// "unknown key 'train.stepz'; did you mean 'train.steps'?", or else the keys of its section
// ("unknown key 'train.foo' (keys of 'train': batch, ...)"), or else the sections.
template <class Table>
std::string unknown_key(const std::string& key, const Table& table) {
  std::vector<std::string> names;
  for (const auto& entry : table) names.push_back(entry.first);
  const std::string near = closest_name(key, names);
  if (!near.empty()) return "unknown key '" + key + "'; did you mean '" + near + "'?";
  auto join = [](const std::set<std::string>& items, const char* quote) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + (quote + item + quote);
    return out;
  };
  const std::string section = key.substr(0, key.find('.'));  // the whole key when it has no dot
  std::set<std::string> same, sections, top;
  for (const auto& name : names) {
    const size_t dot = name.find('.');
    if (dot == std::string::npos) {
      top.insert(name);
    } else {
      sections.insert(name.substr(0, dot));
      if (section.size() < key.size() && name.compare(0, dot, section) == 0 && dot == section.size())
        same.insert(name.substr(dot + 1));
    }
  }
  if (!same.empty()) return "unknown key '" + key + "' (keys of '" + section + "': " + join(same, "") + ")";
  return "unknown key '" + key + "' (sections: " + join(sections, "'") + "; top-level keys: " + join(top, "'") + ")";
}

}  // namespace

Expected<TrainConfig> train_config_from(const std::map<std::string, std::string>& keys, const std::string& source) {
  TrainConfig c = base_config();
  const auto& table = setters();
  for (const auto& [key, value] : keys) {
    auto it = table.find(key);
    if (it == table.end()) return make_error(Errc::invalid_argument, source + ": " + unknown_key(key, table));
    if (value.empty()) continue;  // null: keep the default
    if (auto st = it->second(c, key, value); !st)
      return make_error(Errc::invalid_argument, source + ": " + st.error().message);
  }
  c.dit.in_channels = c.ae.enabled() ? c.ae.latent_channels : 3;
  c.dit.out_channels = c.dit.in_channels;
  c.dit.text_dim = c.text.dim;
  c.dit.text_len = c.text.max_length;
  c.defaults.width = c.width;
  c.defaults.height = c.height;
  if (auto st = c.validate(); !st) return make_error(Errc::invalid_argument, source + ": " + st.error().message);
  return c;
}

Expected<TrainConfig> load_train_config(const std::string& path) {
  auto keys = detail::read_flat_yaml(path);
  if (!keys) return keys.error();
  return train_config_from(*keys, path);
}

// ---- training ------------------------------------------------------------------------------

Expected<T2VModel> make_untrained(const TrainConfig& config) {
  if (auto st = config.validate(); !st) return st.error();
  auto encoder = WordEncoder::random(builtin_vocabulary(), config.text, config.seed);
  if (!encoder) return encoder.error();
  T2VModel model;
  model.name = config.name;
  model.description = config.description;
  model.source = "untrained";
  try {
    torch::manual_seed(config.seed);
    model.dit = VideoDiT(config.dit);
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("cannot build the DiT: ") + e.what_without_backtrace());
  }
  model.text_encoder = std::make_shared<WordEncoder>(std::move(*encoder));
  if (config.ae.enabled()) {
    torch::manual_seed(config.seed + 1);
    model.decoder = std::make_shared<LatentDecoder>(LatentAutoencoder(config.ae));
    model.spatial_compression = static_cast<int>(config.ae.factor());
  } else {
    model.decoder = std::make_shared<IdentityDecoder>();
  }
  model.prediction = config.prediction;
  model.defaults = config.defaults;
  return model;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds) + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s % 3600 / 60));
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  return buf;
}

namespace {

// AdamW with decoupled weight decay, then the EMA, on every parameter that has a gradient.
// `t` counts the updates of this parameter group (bias correction), from 1.
void adam_update(std::vector<Param>& params, const TrainConfig& c, double lr, int64_t t) {
  torch::NoGradGuard no_grad;
  const double td = static_cast<double>(t);
  const double bc1 = 1.0 - std::pow(c.beta1, td), bc2 = 1.0 - std::pow(c.beta2, td);
  const double decay = std::min(c.ema_decay, td / (9.0 + td));
  for (auto& p : params) {
    const auto& g = p.value.grad();
    if (!g.defined()) continue;
    p.m.mul_(c.beta1).add_(g, 1.0 - c.beta1);
    p.v.mul_(c.beta2).addcmul_(g, g, 1.0 - c.beta2);
    if (p.decay && c.weight_decay > 0) p.value.mul_(1.0 - lr * c.weight_decay);
    p.value.addcdiv_(p.m, (p.v / bc2).sqrt_().add_(c.adam_eps), -lr / bc1);
    p.ema.mul_(decay).add_(p.value, 1.0 - decay);
  }
}

// The autoencoder's schedule: linear warm-up over 5% of its steps, cosine to 5% of the peak.
double ae_learning_rate(const TrainConfig& c, int64_t step) {
  const int64_t warm = std::max<int64_t>(1, c.ae_steps / 20);
  if (step < warm) return c.ae_lr * static_cast<double>(step + 1) / static_cast<double>(warm);
  const double progress = std::min(1.0, static_cast<double>(step - warm) / static_cast<double>(std::max<int64_t>(1, c.ae_steps - warm)));
  return c.ae_lr * (0.05 + 0.95 * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

// The frames the autoencoder trains on: single frames of world clips, drawn from their own
// stream of the seed (so they differ from the DiT's clips), with object weights.
Batch ae_batch(const TrainConfig& c, int64_t step, int64_t salt) {
  TrainConfig a = c;
  a.seed = c.seed ^ (0xAE5EEDull * static_cast<uint64_t>(salt));
  a.image_batch = c.ae_batch;
  a.object_weight = c.ae_object_weight;
  return make_batch(a, step, /*image_phase=*/true);
}

// Clips rendered and encoded once (train.pool_clips): latents [N, C, F, h, w], loss weights at
// the latent's resolution [N, 1, F, h, w] (undefined when uniform) and prompts.
struct ClipPool {
  at::Tensor latents, weight;
  std::vector<std::string> prompts;
};

// Loss weights at the latent's resolution: the largest pixel weight of each cell.
at::Tensor latent_weight(const at::Tensor& weight, int64_t cell) {
  if (!weight.defined() || cell == 1) return weight;
  return torch::max_pool3d(weight, {1, cell, cell}, {1, cell, cell});
}

ClipPool build_pool(const TrainConfig& c, LatentAutoencoder& ae, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  constexpr int kChunk = 64;
  TrainConfig pc = c;
  pc.seed = c.seed ^ 0x9001C11Bull;
  pc.batch = kChunk;
  ClipPool pool;
  std::vector<at::Tensor> latents, weights;
  for (int64_t i = 0; i * kChunk < c.pool_clips; ++i) {
    Batch b = make_batch(pc, i, false);
    const int64_t n = std::min<int64_t>(kChunk, c.pool_clips - i * kChunk);
    latents.push_back(ae->encode(b.x0.narrow(0, 0, n).to(device)).cpu());
    if (b.weight.defined()) weights.push_back(latent_weight(b.weight.narrow(0, 0, n), c.ae.factor()));
    pool.prompts.insert(pool.prompts.end(), b.prompts.begin(), b.prompts.begin() + n);
  }
  pool.latents = torch::cat(latents);
  if (!weights.empty()) pool.weight = torch::cat(weights);
  return pool;
}

// A step's batch drawn from the pool: which clips, their noise levels (the same three kinds as
// make_batch), text dropout and noise are functions of the step alone.
Batch pool_batch(const TrainConfig& c, const ClipPool& pool, int64_t step) {
  SplitMix64 rng(mix(c.seed, static_cast<uint64_t>(step), 3));
  const int b = c.batch, f = c.frames;
  const int64_t n = pool.latents.size(0);
  std::vector<int64_t> index(b);
  Batch out;
  out.sigma = torch::empty({b, f});
  out.keep_text = torch::ones({b, 1, 1});
  for (int i = 0; i < b; ++i) {
    index[i] = static_cast<int64_t>(rng.below(static_cast<int>(n)));
    out.prompts.push_back(pool.prompts[index[i]]);
    draw_levels(c, rng, out, i);
  }
  auto idx = torch::tensor(index, torch::kInt64);
  out.x0 = pool.latents.index_select(0, idx);
  if (pool.weight.defined()) out.weight = pool.weight.index_select(0, idx);
  at::Generator gen = at::detail::createCPUGenerator(mix(c.seed, static_cast<uint64_t>(step), 1));
  out.noise = torch::randn(out.x0.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat32));
  return out;
}

// Reconstruction PSNR (dB, over all pixels, images in [-1, 1] scaled to [0, 255]) of the
// autoencoder on frames no training step saw.
double ae_psnr(const TrainConfig& c, LatentAutoencoder& ae, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  double se = 0, count = 0;
  for (int i = 0; i < 4; ++i) {
    Batch b = ae_batch(c, i, /*salt=*/7);
    auto x = b.x0.squeeze(2).to(device);
    auto rec = ae->decode_frames(ae->encode_frames(x)).clamp(-1, 1);
    auto diff = ((rec - x) * 127.5).round();
    se += diff.pow(2).sum().item<double>();
    count += static_cast<double>(x.numel());
  }
  const double mse = se / count;
  return mse > 0 ? 10.0 * std::log10(255.0 * 255.0 / mse) : 99.0;
}

}  // namespace

std::string format_progress(const TrainProgress& p) {
  char buf[256];
  const char* unit = p.image_phase ? "frames" : "clips";  // the autoencoder phase is an image phase
  std::snprintf(buf, sizeof buf, "%sstep %lld/%lld  loss %.5f  %.1f %s/s", p.autoencoder_phase ? "autoencoder " : "",
                static_cast<long long>(p.step), static_cast<long long>(p.total), p.loss, p.samples_per_s, unit);
  std::string out = buf;
  if (p.gflops > 0) {
    std::snprintf(buf, sizeof buf, "  %.1f GFLOP/s", p.gflops);
    out += buf;
  }
  out += "  elapsed " + format_duration(p.elapsed_s) + "  ETA " + format_duration(p.eta_s);
  if (p.image_phase && !p.autoencoder_phase) out += "  (image phase)";
  return out;
}

std::string format_result(const TrainResult& r) {
  char buf[512];
  std::string ae;
  if (r.ae_step > 0) {
    std::snprintf(buf, sizeof buf, "autoencoder %lld steps, %.2f dB on held-out frames; ", static_cast<long long>(r.ae_step),
                  r.ae_psnr);
    ae = buf;
  }
  if (r.pool_seconds > 0) ae += "clip pool built in " + format_duration(r.pool_seconds) + "; ";
  std::snprintf(buf, sizeof buf, "%s at step %lld (loss %.5f, %s); %smodel: %s; checkpoint: %s",
                r.finished ? "finished" : "stopped", static_cast<long long>(r.step), r.loss,
                format_duration(r.seconds).c_str(), ae.c_str(), r.out.c_str(), r.checkpoint.c_str());
  return buf;
}

Expected<TrainResult> train(const TrainConfig& config, const TrainOptions& options, const TrainCallback& on_progress) {
  if (auto st = config.validate(); !st) return st.error();
  if (options.out.empty()) return make_error(Errc::invalid_argument, "an output path (--out) is needed");
  if (options.minutes < 0) return make_error(Errc::invalid_argument, "--minutes must not be negative");
  const std::string checkpoint = options.checkpoint.empty() ? options.out + ".ckpt" : options.checkpoint;
  const auto started = std::chrono::steady_clock::now();
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };

  try {
    torch::Device device(options.device);
    if (device.is_cuda() && !torch::cuda::is_available())
      return make_error(Errc::unsupported, "device 'cuda' asked for, but this LibTorch has no usable CUDA device");

    auto model = make_untrained(config);
    if (!model) return model.error();
    VideoDiT dit = model->dit;
    WordTextEncoder text = model->text_encoder->model();
    LatentAutoencoder ae{nullptr};
    RunState state;
    if (config.ae.enabled()) ae = std::dynamic_pointer_cast<LatentDecoder>(model->decoder)->model();
    if (!config.ae_init.empty()) {
      auto file = SafeTensors::open(config.ae_init);
      if (!file) return file.error();
      auto found = AutoencoderConfig::from_metadata(file->metadata(), config.ae_init);
      if (!found) return found.error();
      if (found->to_metadata() != config.ae.to_metadata())
        return make_error(Errc::invalid_argument, "'autoencoder.init' " + config.ae_init +
                                                      ": its autoencoder is configured otherwise than 'autoencoder.*'");
      REEL_RETURN_IF_ERROR(ae->load_from(*file));
      state.ae_step = config.ae_steps;
      state.ae_ready = true;
    }
    dit->to(device);
    text->to(device);
    dit->train();
    text->train();
    // A frozen encoder's parameters get no gradient, so the optimiser passes them by and their
    // EMA stays their initial value.
    if (config.freeze_text_encoder)
      for (auto& p : text->parameters()) p.set_requires_grad(false);

    std::vector<Param> params;
    auto add = [&](const std::string& prefix, const torch::OrderedDict<std::string, at::Tensor>& named) {
      for (const auto& p : named) {
        Param q;
        q.name = prefix + p.key();
        q.value = p.value();
        q.ema = p.value().detach().clone();
        q.m = torch::zeros_like(p.value());
        q.v = torch::zeros_like(p.value());
        q.decay = decays(q.name, p.value());
        params.push_back(std::move(q));
      }
    };
    add("", dit->named_parameters());
    add(std::string(kTextEncoderPrefix) + ".", text->named_parameters());
    std::vector<at::Tensor> dit_values, ae_values;
    for (auto& p : params) dit_values.push_back(p.value);
    std::vector<std::pair<std::string, at::Tensor>> buffers;
    if (ae) {
      ae->to(device);
      const size_t first_ae = params.size();
      add(std::string(kAutoencoderPrefix) + ".", ae->named_parameters());
      for (size_t i = first_ae; i < params.size(); ++i) ae_values.push_back(params[i].value);
      for (const auto& b : ae->named_buffers()) buffers.emplace_back(std::string(kAutoencoderPrefix) + "." + b.key(), b.value());
    }

    if (!options.resume.empty()) REEL_RETURN_IF_ERROR(load_checkpoint(options.resume, params, buffers, state, config));
    const int64_t first_step = state.step, first_ae_step = state.ae_step;
    auto steps_this_run = [&] { return state.step - first_step + state.ae_step - first_ae_step; };
    const int64_t image_steps = static_cast<int64_t>(std::llround(config.image_fraction * static_cast<double>(config.steps)));

    auto window_start = std::chrono::steady_clock::now();
    int64_t window_samples = 0;
    bool stop_requested = false;
    TrainResult result;
    result.checkpoint = checkpoint;
    result.out = options.out;
    auto out_of_budget = [&] {
      return stop_requested || (options.minutes > 0 && seconds_since(started) >= options.minutes * 60.0) ||
             (options.stop_after > 0 && steps_this_run() >= options.stop_after);
    };
    auto report = [&](int64_t step, int64_t total, double loss, bool image_phase, bool ae_phase, int64_t log_every,
                      double flops_per_sample) {
      TrainProgress p;
      p.step = step;
      p.total = total;
      p.loss = loss;
      const double window = seconds_since(window_start);
      p.samples_per_s = window > 0 ? static_cast<double>(window_samples) / window : 0;
      p.gflops = p.samples_per_s * flops_per_sample / 1e9;
      p.elapsed_s = seconds_since(started);
      const double steps_per_s = window > 0 ? static_cast<double>(log_every) / window : 0;
      p.eta_s = steps_per_s > 0 ? static_cast<double>(total - step) / steps_per_s : 0;
      p.image_phase = image_phase;
      p.autoencoder_phase = ae_phase;
      window_start = std::chrono::steady_clock::now();
      window_samples = 0;
      if (on_progress && !on_progress(p)) stop_requested = true;
    };

    // ---- phase 1: the autoencoder --------------------------------------------------------
    if (ae && !state.ae_ready) {
      ae->train();
      const int64_t log_every = std::max<int64_t>(1, std::min(config.log_every, config.ae_steps));
      while (state.ae_step < config.ae_steps && !out_of_budget()) {
        Batch batch = ae_batch(config, state.ae_step, 0);
        auto x = batch.x0.squeeze(2).to(device);
        auto z = ae->encode_frames(x);
        if (config.ae_latent_noise > 0) {
          at::Generator gen = at::detail::createCPUGenerator(mix(config.seed, static_cast<uint64_t>(state.ae_step), 5));
          auto scale = z.detach().std({0, 2, 3}, true, true) * config.ae_latent_noise;
          z = z + scale * torch::randn(z.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat32)).to(device);
        }
        auto rec = ae->decode_frames(z);
        auto diff = rec - x;
        auto err = diff.abs() + diff.pow(2);
        auto w = batch.weight.defined() ? batch.weight.squeeze(2).to(device) : torch::ones_like(x.narrow(1, 0, 1));
        auto loss = (err * w).sum() / (w.sum() * 3);
        for (auto& p : params)
          if (p.value.grad().defined()) p.value.mutable_grad().zero_();
        loss.backward();
        if (config.grad_clip > 0) torch::nn::utils::clip_grad_norm_(ae_values, config.grad_clip);
        adam_update(params, config, ae_learning_rate(config, state.ae_step), state.ae_step + 1);
        const double l = loss.item<double>();
        if (!std::isfinite(l))
          return make_error(Errc::internal, "autoencoder loss became " + fmt(l) + " at step " +
                                                std::to_string(state.ae_step) + "; lower autoencoder.lr");
        state.ae_loss = state.ae_step == 0 ? l : 0.98 * state.ae_loss + 0.02 * l;
        ++state.ae_step;
        window_samples += x.size(0);
        if (state.ae_step % config.checkpoint_every == 0 && state.ae_step < config.ae_steps)
          REEL_RETURN_IF_ERROR(save_checkpoint(checkpoint, params, buffers, state, config));
        if (state.ae_step % log_every == 0 || state.ae_step == config.ae_steps)
          report(state.ae_step, config.ae_steps, state.ae_loss, true, true, log_every, 0);
      }
      if (state.ae_step >= config.ae_steps) {
        // The autoencoder is done: its EMA weights become the weights, the latent statistics
        // are measured on frames of its own stream, and it is frozen.
        torch::NoGradGuard no_grad;
        for (auto& p : params)
          if (p.name.rfind(std::string(kAutoencoderPrefix) + ".", 0) == 0) p.value.copy_(p.ema);
        ae->eval();
        std::vector<at::Tensor> raw;
        for (int i = 0; i < 8; ++i) raw.push_back(ae->encode_frames(ae_batch(config, i, 3).x0.squeeze(2).to(device)));
        ae->set_statistics(torch::cat(raw));
        state.ae_ready = true;
        REEL_RETURN_IF_ERROR(save_checkpoint(checkpoint, params, buffers, state, config));
      }
    }
    if (ae) {
      ae->eval();
      for (auto& p : ae->parameters()) {
        p.mutable_grad().reset();  // a defined (zero) gradient would let AdamW keep moving it
        p.set_requires_grad(false);
      }
      result.ae_psnr = ae_psnr(config, ae, device);
    }

    // ---- phase 2: the DiT ----------------------------------------------------------------
    const int64_t cell = ae ? config.ae.factor() : 1;
    const int64_t channels = config.dit.in_channels;
    ClipPool pool;
    if (ae && state.ae_ready && config.pool_clips > 0 && state.step < config.steps && !out_of_budget()) {
      const auto t0 = std::chrono::steady_clock::now();
      pool = build_pool(config, ae, device);
      result.pool_seconds = seconds_since(t0);
      window_start = std::chrono::steady_clock::now();
    }
    const double clip_flops = 6.0 * dit->forward_flops(config.frames, config.height / cell, config.width / cell);
    while ((!ae || state.ae_ready) && state.step < config.steps && !out_of_budget()) {
      const int64_t step = state.step;
      const bool image_phase = step < image_steps;
      Batch batch = pool.latents.defined() && !image_phase ? pool_batch(config, pool, step)
                                                           : make_batch(config, step, image_phase, channels, cell);
      auto ids = model->text_encoder->token_ids(batch.prompts);
      if (!ids) return make_error(Errc::internal, "the training grammar produced an unreadable prompt: " + ids.error().message);

      auto x0 = batch.x0.to(device);
      at::Tensor weight = batch.weight;
      if (ae && (!pool.latents.defined() || image_phase)) {
        torch::NoGradGuard no_grad;
        x0 = ae->encode(x0);
        weight = latent_weight(weight, cell);
      }
      auto noise = batch.noise.to(device);
      auto sigma = batch.sigma.to(device);
      const auto s5 = sigma.view({sigma.size(0), 1, sigma.size(1), 1, 1});
      auto xt = (1 - s5) * x0 + s5 * noise;
      auto cond = text->forward(ids->to(device)) * batch.keep_text.to(device);
      auto pred = dit->forward(xt, sigma.to(torch::kFloat64) * 1000.0, cond);
      auto target = config.prediction == Prediction::sample ? x0 : noise - x0;
      auto err = (pred - target).pow(2);
      at::Tensor loss;
      if (weight.defined()) {
        auto w = weight.to(device);
        loss = (err * w).sum() / (w.sum() * err.size(1));
      } else {
        loss = err.mean();
      }
      for (auto& p : params)
        if (p.value.grad().defined()) p.value.mutable_grad().zero_();
      loss.backward();
      if (config.grad_clip > 0) torch::nn::utils::clip_grad_norm_(dit_values, config.grad_clip);
      adam_update(params, config, learning_rate(config, step), step + 1);
      const double l = loss.item<double>();
      if (!std::isfinite(l))
        return make_error(Errc::internal, "loss became " + fmt(l) + " at step " + std::to_string(step) +
                                              "; lower train.lr or raise train.warmup");
      state.loss = step == 0 ? l : 0.98 * state.loss + 0.02 * l;
      ++state.step;
      window_samples += batch.x0.size(0);

      if (state.step % config.checkpoint_every == 0 && state.step < config.steps)
        REEL_RETURN_IF_ERROR(save_checkpoint(checkpoint, params, buffers, state, config));
      if (state.step % config.log_every == 0 || state.step == config.steps)
        report(state.step, config.steps, state.loss, image_phase, false, config.log_every,
               image_phase ? clip_flops / config.frames : clip_flops);
    }

    if (steps_this_run() > 0 || options.resume.empty())
      REEL_RETURN_IF_ERROR(save_checkpoint(checkpoint, params, buffers, state, config));

    // The written model carries the EMA weights (the autoencoder's are its weights once done).
    auto exported = make_untrained(config);
    if (!exported) return exported.error();
    {
      torch::NoGradGuard no_grad;
      std::map<std::string, at::Tensor> ema;
      for (const auto& p : params) ema[p.name] = p.ema;
      for (auto& p : exported->dit->named_parameters()) p.value().copy_(ema.at(p.key()).cpu());
      for (auto& p : exported->text_encoder->model()->named_parameters())
        p.value().copy_(ema.at(std::string(kTextEncoderPrefix) + "." + p.key()).cpu());
      if (ae) {
        auto out_ae = std::dynamic_pointer_cast<LatentDecoder>(exported->decoder)->model();
        for (auto& p : out_ae->named_parameters())
          p.value().copy_(ema.at(std::string(kAutoencoderPrefix) + "." + p.key()).cpu());
        out_ae->latent_mean.copy_(ae->latent_mean.cpu());
        out_ae->latent_std.copy_(ae->latent_std.cpu());
        out_ae->eval();
      }
    }
    exported->dit->eval();
    exported->text_encoder->model()->eval();
    exported->source = options.out;
    REEL_RETURN_IF_ERROR(save_t2v(*exported, options.out));

    result.step = state.step;
    result.ae_step = state.ae_step;
    result.finished = state.step >= config.steps;
    result.loss = state.loss;
    result.seconds = seconds_since(started);
    return result;
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("training failed: ") + e.what_without_backtrace());
  }
}

}  // namespace reel::models
