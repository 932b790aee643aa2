// Loading and saving VideoDiT weights: name mapping, config detection, shape checks.
#include <torch/torch.h>

#include <sstream>
#include <set>

#include "models/detail/json.hpp"
#include "models/dit.hpp"
#include "models/safetensors.hpp"

namespace reel::models {

namespace {

// Replaces `from` by `to` when it is a whole dotted component run of `name`.
bool replace_component(std::string& name, const std::string& from, const std::string& to) {
  const std::string padded = "." + name + ".";
  auto pos = padded.find("." + from + ".");
  if (pos == std::string::npos) return false;
  name = (padded.substr(0, pos + 1) + to + padded.substr(pos + 1 + from.size())).substr(1);
  name.pop_back();
  return true;
}

Expected<int64_t> parse_int(const std::map<std::string, std::string>& md, const std::string& key) {
  try {
    size_t used = 0;
    int64_t v = std::stoll(md.at(key), &used);
    if (used != md.at(key).size()) throw std::invalid_argument(key);
    return v;
  } catch (const std::exception&) {
    return make_error(Errc::corrupt_data, "metadata '" + key + "' is not an integer: '" + md.at(key) + "'");
  }
}

}  // namespace

std::string diffusers_dit_name(const std::string& original) {
  std::string n = original;
  // Top level.
  if (replace_component(n, "time_embedding.0", "condition_embedder.time_embedder.linear_1") ||
      replace_component(n, "time_embedding.2", "condition_embedder.time_embedder.linear_2") ||
      replace_component(n, "text_embedding.0", "condition_embedder.text_embedder.linear_1") ||
      replace_component(n, "text_embedding.2", "condition_embedder.text_embedder.linear_2") ||
      replace_component(n, "time_projection.1", "condition_embedder.time_proj"))
    return n;
  if (n == "head.modulation") return "scale_shift_table";
  if (n.starts_with("head.head.")) return "proj_out." + n.substr(10);
  if (!n.starts_with("blocks.")) return n;
  // Inside a block: blocks.N.<rest>.
  replace_component(n, "modulation", "scale_shift_table");
  replace_component(n, "norm3", "norm2");  // Wan's norm2 (before the FFN) has no parameters
  replace_component(n, "ffn.0", "ffn.net.0.proj");
  replace_component(n, "ffn.2", "ffn.net.2");
  for (const char* attn : {"self_attn", "cross_attn"}) {
    const std::string to = std::string(attn) == "self_attn" ? "attn1" : "attn2";
    if (replace_component(n, attn, to)) {
      replace_component(n, "q", "to_q") || replace_component(n, "k", "to_k") || replace_component(n, "v", "to_v") ||
          replace_component(n, "o", "to_out.0");
    }
  }
  return n;
}

Status DiTConfig::validate() const {
  auto bad = [](const std::string& m) { return make_error(Errc::invalid_argument, "DiT config: " + m); };
  if (dim <= 0 || num_heads <= 0 || num_layers < 0 || ffn_dim <= 0 || freq_dim <= 0 || text_dim <= 0 ||
      text_len <= 0 || in_channels <= 0 || out_channels <= 0)
    return bad("sizes must be positive");
  if (stem_channels < 0 || refine_channels < 0) return bad("stem and refine channels must be 0 (off) or positive");
  if (dim % num_heads != 0) return bad("dim " + std::to_string(dim) + " is not divisible by num_heads " +
                                       std::to_string(num_heads));
  if (head_dim() % 2 != 0 || head_dim() < 6) return bad("head dim must be even and at least 6");
  if (freq_dim % 2 != 0) return bad("freq_dim must be even");
  if (abs_pos && dim % 2 != 0) return bad("abs_pos needs an even dim");
  for (auto p : patch)
    if (p <= 0) return bad("patch sizes must be positive");
  return {};
}

std::map<std::string, std::string> DiTConfig::to_metadata() const {
  auto d = [](double v) {
    std::ostringstream os;
    os << v;
    return os.str();
  };
  std::map<std::string, std::string> md = {{"in_dim", std::to_string(in_channels)},
          {"out_dim", std::to_string(out_channels)},
          {"patch_size", "[" + std::to_string(patch[0]) + ", " + std::to_string(patch[1]) + ", " +
                             std::to_string(patch[2]) + "]"},
          {"dim", std::to_string(dim)},
          {"ffn_dim", std::to_string(ffn_dim)},
          {"freq_dim", std::to_string(freq_dim)},
          {"text_dim", std::to_string(text_dim)},
          {"text_len", std::to_string(text_len)},
          {"num_heads", std::to_string(num_heads)},
          {"num_layers", std::to_string(num_layers)},
          {"eps", d(eps)},
          {"qk_norm", qk_norm ? "true" : "false"},
          {"cross_attn_norm", cross_attn_norm ? "true" : "false"},
          {"rope_theta", d(rope_theta)}};
  if (stem_channels > 0) md["stem_channels"] = std::to_string(stem_channels);
  if (refine_channels > 0) md["refine_channels"] = std::to_string(refine_channels);
  if (abs_pos) md["abs_pos"] = "true";
  if (text_time) md["text_time"] = "true";  // informative: loading detects it from the weights
  return md;
}

Expected<DiTConfig> detect_dit_config(const SafeTensors& weights) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& name : weights.names()) shapes[diffusers_dit_name(name)] = weights.record(name)->shape;
  auto need = [&](const std::string& name, size_t rank) -> Expected<std::vector<int64_t>> {
    auto it = shapes.find(name);
    if (it == shapes.end())
      return make_error(Errc::corrupt_data, weights.path() + ": not a video DiT checkpoint: no tensor '" + name + "'");
    if (it->second.size() != rank)
      return make_error(Errc::corrupt_data, weights.path() + ": tensor '" + name + "' has rank " +
                                                std::to_string(it->second.size()) + ", expected " + std::to_string(rank));
    return it->second;
  };
  auto pe = need("patch_embedding.weight", 5);
  if (!pe) return pe.error();
  auto te = need("condition_embedder.time_embedder.linear_1.weight", 2);
  if (!te) return te.error();
  auto xe = need("condition_embedder.text_embedder.linear_1.weight", 2);
  if (!xe) return xe.error();
  auto ff = need("blocks.0.ffn.net.0.proj.weight", 2);
  if (!ff) return ff.error();
  auto po = need("proj_out.weight", 2);
  if (!po) return po.error();

  DiTConfig cfg;
  cfg.dim = (*pe)[0];
  cfg.in_channels = (*pe)[1];
  if (shapes.count("stem.weight")) {
    auto st = need("stem.weight", 5);
    if (!st) return st.error();
    cfg.stem_channels = (*st)[0];
    cfg.in_channels = (*st)[1];
    if ((*pe)[1] != cfg.patch_in_channels())
      return make_error(Errc::corrupt_data, weights.path() + ": patch_embedding takes " + std::to_string((*pe)[1]) +
                                                " channels, the stem gives " + std::to_string(cfg.patch_in_channels()));
  }
  if (shapes.count("refine_in.weight")) {
    auto ri = need("refine_in.weight", 5);
    if (!ri) return ri.error();
    cfg.refine_channels = (*ri)[0];
  }
  cfg.patch = {(*pe)[2], (*pe)[3], (*pe)[4]};
  cfg.freq_dim = (*te)[1];
  cfg.text_dim = (*xe)[1];
  cfg.ffn_dim = (*ff)[0];
  if ((*po)[0] % cfg.patch_volume() != 0)
    return make_error(Errc::corrupt_data, weights.path() + ": proj_out rows are not a multiple of the patch volume");
  cfg.out_channels = (*po)[0] / cfg.patch_volume();
  cfg.num_layers = 0;
  while (shapes.count("blocks." + std::to_string(cfg.num_layers) + ".scale_shift_table")) ++cfg.num_layers;
  cfg.qk_norm = shapes.count("blocks.0.attn1.norm_q.weight") != 0;
  cfg.cross_attn_norm = shapes.count("blocks.0.norm2.weight") != 0;
  cfg.text_time = shapes.count("condition_embedder.text_pool.weight") != 0;
  if (cfg.text_time != (shapes.count("condition_embedder.frame_embedder.weight") != 0))
    return make_error(Errc::corrupt_data, weights.path() + ": condition_embedder has one of text_pool and "
                                                           "frame_embedder without the other");
  cfg.num_heads = std::max<int64_t>(1, cfg.dim / 128);

  const auto& md = weights.metadata();
  if (auto it = md.find("diffusers_config"); it != md.end()) {
    auto json = detail::parse_json(it->second);
    if (!json) return make_error(Errc::corrupt_data, weights.path() + ": diffusers_config: " + json.error().message);
    if (const auto* h = json->find("num_attention_heads"); h != nullptr && h->is_integer) cfg.num_heads = h->integer;
    if (const auto* e = json->find("eps"); e != nullptr && e->kind == detail::Json::Kind::number) cfg.eps = e->number;
  }
  for (const char* key : {"num_heads", "text_len"}) {
    if (!md.count(key)) continue;
    auto v = parse_int(md, key);
    if (!v) return make_error(Errc::corrupt_data, weights.path() + ": " + v.error().message);
    (std::string(key) == "num_heads" ? cfg.num_heads : cfg.text_len) = *v;
  }
  if (auto it = md.find("eps"); it != md.end()) cfg.eps = std::strtod(it->second.c_str(), nullptr);
  if (auto it = md.find("rope_theta"); it != md.end()) cfg.rope_theta = std::strtod(it->second.c_str(), nullptr);
  if (auto it = md.find("abs_pos"); it != md.end()) {
    if (it->second != "true" && it->second != "false")
      return make_error(Errc::corrupt_data, weights.path() + ": metadata 'abs_pos' must be true or false, got '" +
                                                it->second + "'");
    cfg.abs_pos = it->second == "true";
  }
  if (auto st = cfg.validate(); !st) return make_error(st.error().code, weights.path() + ": " + st.error().message);
  return cfg;
}

Expected<VideoDiT> load_dit(const std::string& path) {
  auto file = SafeTensors::open(path);
  if (!file) return file.error();
  return load_dit(*file);
}

Expected<VideoDiT> load_dit(const SafeTensors& file_ref, const std::vector<std::string>& ignore_prefixes) {
  const SafeTensors* file = &file_ref;
  const std::string& path = file->path();
  auto cfg = detect_dit_config(*file);
  if (!cfg) return cfg.error();

  std::map<std::string, std::string> by_name;  // diffusers name -> name in file
  for (const auto& name : file->names()) {
    bool ignored = false;
    for (const auto& prefix : ignore_prefixes) ignored = ignored || (!prefix.empty() && name.starts_with(prefix));
    if (!ignored) by_name[diffusers_dit_name(name)] = name;
  }

  try {
    VideoDiT model(*cfg);
    torch::NoGradGuard no_grad;
    std::set<std::string> used;
    for (auto& param : model->named_parameters()) {
      auto it = by_name.find(param.key());
      if (it == by_name.end()) return make_error(Errc::corrupt_data, path + ": missing tensor '" + param.key() + "'");
      auto tensor = file->get(it->second);
      if (!tensor) return tensor.error();
      if (tensor->sizes() != param.value().sizes()) {
        std::ostringstream os;
        os << path << ": tensor '" << it->second << "' has shape " << tensor->sizes() << ", the model expects "
           << param.value().sizes();
        return make_error(Errc::corrupt_data, os.str());
      }
      if (!at::isFloatingType(tensor->scalar_type()))
        return make_error(Errc::corrupt_data, path + ": tensor '" + it->second + "' is not floating point");
      REEL_RETURN_IF_ERROR(check_finite(*file, it->second, *tensor));
      param.value().copy_(tensor->to(torch::kFloat32));
      used.insert(param.key());
    }
    for (const auto& [name, original] : by_name)
      if (!used.count(name))
        return make_error(Errc::corrupt_data, path + ": unexpected tensor '" + original + "' (not part of this model)");
    model->eval();
    return model;
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, path + ": " + e.what_without_backtrace());
  }
}

Status save_dit(VideoDiT& model, const std::string& path, const std::map<std::string, std::string>& extra_metadata) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& p : model->named_parameters()) tensors.emplace_back(p.key(), p.value());
  auto md = model->config().to_metadata();
  for (const auto& [k, v] : extra_metadata) md[k] = v;
  return save_safetensors(path, tensors, md);
}

}  // namespace reel::models
