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
#define REEL_FIELD(expr) numeric([](TrainConfig& c) -> auto& { return c.expr; })

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
      {"model.qk_norm",
       [](TrainConfig& c, const std::string& k, const std::string& v) -> Status {
         auto b = to_bool(k, v);
         if (!b) return b.error();
         c.dit.qk_norm = *b;
         return {};
       }},
      {"model.prediction",
       [](TrainConfig& c, const std::string& k, const std::string& v) -> Status {
         auto p = parse_prediction(v);
         if (!p) return make_error(Errc::invalid_argument, "'" + k + "': " + p.error().message);
         c.prediction = *p;
         return {};
       }},
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

Batch make_batch(const TrainConfig& c, int64_t step, bool image_phase) {
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
  auto sigma = out.sigma.accessor<float, 2>();
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
    // Noise levels: shared, independent per frame, or independent and rising along the frames.
    const double kind = rng.unit();
    std::vector<double> u(f);
    if (kind < c.per_frame_fraction + c.ramp_fraction) {
      for (auto& v : u) v = rng.unit();
      if (kind >= c.per_frame_fraction) std::sort(u.begin(), u.end());
    } else {
      std::fill(u.begin(), u.end(), rng.unit());
    }
    for (int t = 0; t < f; ++t) sigma[i][t] = static_cast<float>(shifted(u[t], c.sigma_shift));
    if (rng.unit() < c.text_dropout) out.keep_text[i][0][0] = 0.0f;
  }
  at::Generator gen = at::detail::createCPUGenerator(mix(c.seed, static_cast<uint64_t>(step), 1));
  out.noise = torch::randn({b, 3, f, h, w}, gen, torch::TensorOptions().dtype(torch::kFloat32));
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

Status save_checkpoint(const std::string& path, const std::vector<Param>& params, int64_t step, double loss,
                       const TrainConfig& config) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  tensors.reserve(params.size() * 4);
  for (const auto& p : params) {
    tensors.emplace_back("param." + p.name, p.value);
    tensors.emplace_back("ema." + p.name, p.ema);
    tensors.emplace_back("adam_m." + p.name, p.m);
    tensors.emplace_back("adam_v." + p.name, p.v);
  }
  std::map<std::string, std::string> md = {{"reel.kind", kCheckpointKind},
                                           {"train.step", std::to_string(step)},
                                           {"train.loss", fmt(loss)},
                                           {"train.config", config.fingerprint()}};
  return save_safetensors(path, tensors, md);
}

Status load_checkpoint(const std::string& path, std::vector<Param>& params, int64_t& step, double& loss,
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
    step = std::stoll(md.at("train.step"));
    loss = std::stod(md.at("train.loss"));
  } catch (const std::exception&) {
    return make_error(Errc::corrupt_data, path + ": bad train.step or train.loss metadata");
  }
  torch::NoGradGuard no_grad;
  for (auto& p : params) {
    for (auto [prefix, dst] : {std::pair<std::string, at::Tensor*>{"param.", &p.value}, {"ema.", &p.ema},
                               {"adam_m.", &p.m}, {"adam_v.", &p.v}}) {
      auto t = file->get(prefix + p.name);
      if (!t) return make_error(Errc::corrupt_data, path + ": " + t.error().message);
      if (t->sizes() != dst->sizes())
        return make_error(Errc::corrupt_data, path + ": tensor '" + prefix + p.name + "' has the wrong shape");
      dst->copy_(t->to(dst->device(), torch::kFloat32));
    }
  }
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
  if (frames % dit.patch[0] != 0 || height % dit.patch[1] != 0 || width % dit.patch[2] != 0)
    return bad("'data' frames/height/width must be divisible by 'model.patch'");
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
  c.dit.in_channels = 3;
  c.dit.out_channels = 3;
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
  model.decoder = std::make_shared<IdentityDecoder>();
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
    dit->to(device);
    text->to(device);
    dit->train();
    text->train();

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
    std::vector<at::Tensor> values;
    for (auto& p : params) values.push_back(p.value);

    int64_t step = 0;
    double loss_avg = 0;
    if (!options.resume.empty()) REEL_RETURN_IF_ERROR(load_checkpoint(options.resume, params, step, loss_avg, config));
    const int64_t first_step = step;
    const int64_t image_steps = static_cast<int64_t>(std::llround(config.image_fraction * static_cast<double>(config.steps)));

    auto window_start = std::chrono::steady_clock::now();
    int64_t window_samples = 0;
    bool stop_requested = false;
    TrainResult result;
    result.checkpoint = checkpoint;
    result.out = options.out;
    while (step < config.steps) {
      if (options.minutes > 0 && seconds_since(started) >= options.minutes * 60.0) break;
      if (options.stop_after > 0 && step - first_step >= options.stop_after) break;
      if (stop_requested) break;

      const bool image_phase = step < image_steps;
      Batch batch = make_batch(config, step, image_phase);
      auto ids = model->text_encoder->token_ids(batch.prompts);
      if (!ids) return make_error(Errc::internal, "the training grammar produced an unreadable prompt: " + ids.error().message);

      auto x0 = batch.x0.to(device);
      auto noise = batch.noise.to(device);
      auto sigma = batch.sigma.to(device);
      const auto s5 = sigma.view({sigma.size(0), 1, sigma.size(1), 1, 1});
      auto xt = (1 - s5) * x0 + s5 * noise;
      auto cond = text->forward(ids->to(device)) * batch.keep_text.to(device);
      auto pred = dit->forward(xt, sigma.to(torch::kFloat64) * 1000.0, cond);
      auto target = config.prediction == Prediction::sample ? x0 : noise - x0;
      auto err = (pred - target).pow(2);
      at::Tensor loss;
      if (batch.weight.defined()) {
        auto w = batch.weight.to(device);
        loss = (err * w).sum() / (w.sum() * err.size(1));
      } else {
        loss = err.mean();
      }
      for (auto& p : params)
        if (p.value.grad().defined()) p.value.mutable_grad().zero_();
      loss.backward();
      if (config.grad_clip > 0) torch::nn::utils::clip_grad_norm_(values, config.grad_clip);

      {
        torch::NoGradGuard no_grad;
        const double lr = learning_rate(config, step);
        const double t = static_cast<double>(step + 1);
        const double bc1 = 1.0 - std::pow(config.beta1, t), bc2 = 1.0 - std::pow(config.beta2, t);
        const double decay = std::min(config.ema_decay, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
        for (auto& p : params) {
          const auto& g = p.value.grad();
          if (!g.defined()) continue;
          p.m.mul_(config.beta1).add_(g, 1.0 - config.beta1);
          p.v.mul_(config.beta2).addcmul_(g, g, 1.0 - config.beta2);
          if (p.decay && config.weight_decay > 0) p.value.mul_(1.0 - lr * config.weight_decay);
          p.value.addcdiv_(p.m, (p.v / bc2).sqrt_().add_(config.adam_eps), -lr / bc1);
          p.ema.mul_(decay).add_(p.value, 1.0 - decay);
        }
      }
      const double l = loss.item<double>();
      if (!std::isfinite(l))
        return make_error(Errc::internal, "loss became " + fmt(l) + " at step " + std::to_string(step) +
                                              "; lower train.lr or raise train.warmup");
      loss_avg = step == 0 ? l : 0.98 * loss_avg + 0.02 * l;
      ++step;
      window_samples += batch.x0.size(0);

      if (step % config.checkpoint_every == 0 && step < config.steps)
        REEL_RETURN_IF_ERROR(save_checkpoint(checkpoint, params, step, loss_avg, config));
      if (step % config.log_every == 0 || step == config.steps) {
        TrainProgress p;
        p.step = step;
        p.total = config.steps;
        p.loss = loss_avg;
        const double window = seconds_since(window_start);
        p.samples_per_s = window > 0 ? static_cast<double>(window_samples) / window : 0;
        p.elapsed_s = seconds_since(started);
        const double steps_per_s = window > 0 ? static_cast<double>(config.log_every) / window : 0;
        p.eta_s = steps_per_s > 0 ? static_cast<double>(config.steps - step) / steps_per_s : 0;
        p.image_phase = image_phase;
        window_start = std::chrono::steady_clock::now();
        window_samples = 0;
        if (on_progress && !on_progress(p)) stop_requested = true;
      }
    }

    if (step > first_step || options.resume.empty())
      REEL_RETURN_IF_ERROR(save_checkpoint(checkpoint, params, step, loss_avg, config));

    // The written model carries the EMA weights.
    auto exported = make_untrained(config);
    if (!exported) return exported.error();
    {
      torch::NoGradGuard no_grad;
      std::map<std::string, at::Tensor> ema;
      for (const auto& p : params) ema[p.name] = p.ema;
      for (auto& p : exported->dit->named_parameters()) p.value().copy_(ema.at(p.key()).cpu());
      for (auto& p : exported->text_encoder->model()->named_parameters())
        p.value().copy_(ema.at(std::string(kTextEncoderPrefix) + "." + p.key()).cpu());
    }
    exported->dit->eval();
    exported->text_encoder->model()->eval();
    exported->source = options.out;
    REEL_RETURN_IF_ERROR(save_t2v(*exported, options.out));

    result.step = step;
    result.finished = step >= config.steps;
    result.loss = loss_avg;
    result.seconds = seconds_since(started);
    return result;
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("training failed: ") + e.what_without_backtrace());
  }
}

}  // namespace reel::models
