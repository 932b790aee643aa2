#include "models/text_encoder.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "models/safetensors.hpp"

namespace reel::models {

namespace {

// "<prefix>.<name>", or just the name under an empty prefix.
std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

torch::nn::LayerNorm layer_norm(const WordEncoderConfig& cfg) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.dim}).eps(cfg.eps));
}

Expected<std::string> metadata_value(const std::map<std::string, std::string>& md, const std::string& key) {
  auto it = md.find(key);
  if (it == md.end()) return make_error(Errc::corrupt_data, "metadata '" + key + "' is missing");
  return it->second;
}

Expected<int64_t> metadata_int(const std::map<std::string, std::string>& md, const std::string& key) {
  auto text = metadata_value(md, key);
  if (!text) return text.error();
  try {
    size_t used = 0;
    int64_t v = std::stoll(*text, &used);
    if (used == text->size()) return v;
  } catch (const std::exception&) {
  }
  return make_error(Errc::corrupt_data, "metadata '" + key + "' is not an integer: '" + *text + "'");
}

Expected<double> metadata_double(const std::map<std::string, std::string>& md, const std::string& key) {
  auto text = metadata_value(md, key);
  if (!text) return text.error();
  try {
    size_t used = 0;
    double v = std::stod(*text, &used);
    if (used == text->size()) return v;
  } catch (const std::exception&) {
  }
  return make_error(Errc::corrupt_data, "metadata '" + key + "' is not a number: '" + *text + "'");
}

}  // namespace

// --- config -------------------------------------------------------------------------------

Status WordEncoderConfig::validate() const {
  auto bad = [](const std::string& m) { return make_error(Errc::invalid_argument, "text encoder config: " + m); };
  if (dim <= 0 || layers < 0 || heads <= 0 || ffn_dim <= 0 || max_length <= 0) return bad("sizes must be positive");
  if (vocab_size < WordTokenizer::kFirstWordId) return bad("vocab_size must count the two reserved ids");
  if (dim % heads != 0)
    return bad("dim " + std::to_string(dim) + " is not divisible by heads " + std::to_string(heads));
  if (!(eps > 0)) return bad("eps must be positive");
  return {};
}

std::map<std::string, std::string> WordEncoderConfig::to_metadata(const std::string& prefix) const {
  std::ostringstream e;
  e.precision(17);
  e << eps;
  return {{join(prefix, "vocab_size"), std::to_string(vocab_size)},
          {join(prefix, "dim"), std::to_string(dim)},
          {join(prefix, "layers"), std::to_string(layers)},
          {join(prefix, "heads"), std::to_string(heads)},
          {join(prefix, "ffn_dim"), std::to_string(ffn_dim)},
          {join(prefix, "max_length"), std::to_string(max_length)},
          {join(prefix, "eps"), e.str()}};
}

Expected<WordEncoderConfig> WordEncoderConfig::from_metadata(const std::map<std::string, std::string>& md,
                                                             const std::string& prefix) {
  WordEncoderConfig cfg;
  for (auto [name, field] : {std::pair{"vocab_size", &cfg.vocab_size}, std::pair{"dim", &cfg.dim},
                             std::pair{"layers", &cfg.layers}, std::pair{"heads", &cfg.heads},
                             std::pair{"ffn_dim", &cfg.ffn_dim}, std::pair{"max_length", &cfg.max_length}}) {
    auto v = metadata_int(md, join(prefix, name));
    if (!v) return v.error();
    *field = *v;
  }
  auto eps = metadata_double(md, join(prefix, "eps"));
  if (!eps) return eps.error();
  cfg.eps = *eps;
  if (auto st = cfg.validate(); !st) return make_error(Errc::corrupt_data, st.error().message);
  return cfg;
}

// --- modules ------------------------------------------------------------------------------

WordSelfAttentionImpl::WordSelfAttentionImpl(const WordEncoderConfig& cfg) : heads(cfg.heads) {
  to_q = register_module("to_q", torch::nn::Linear(cfg.dim, cfg.dim));
  to_k = register_module("to_k", torch::nn::Linear(cfg.dim, cfg.dim));
  to_v = register_module("to_v", torch::nn::Linear(cfg.dim, cfg.dim));
  to_out = register_module("to_out", torch::nn::Linear(cfg.dim, cfg.dim));
}

at::Tensor WordSelfAttentionImpl::forward(const at::Tensor& x, const at::Tensor& key_valid) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2), hd = d / heads;
  auto split_heads = [&](const at::Tensor& t) { return t.view({b, l, heads, hd}).transpose(1, 2); };
  auto q = split_heads(to_q(x));  // [B, N, L, d]
  auto k = split_heads(to_k(x));
  auto v = split_heads(to_v(x));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(hd));  // [B, N, L, L]
  // The lowest finite value rather than -inf: a row with no valid key (only padding) gets
  // uniform weights instead of NaN, and its output is zeroed by the caller anyway.
  scores = scores.masked_fill(key_valid.logical_not().view({b, 1, 1, l}), std::numeric_limits<float>::lowest());
  auto out = torch::matmul(torch::softmax(scores, -1), v);  // [B, N, L, d]
  return to_out(out.transpose(1, 2).reshape({b, l, d}));    // [B, L, D]
}

WordEncoderLayerImpl::WordEncoderLayerImpl(const WordEncoderConfig& cfg) {
  norm1 = register_module("norm1", layer_norm(cfg));
  attn = register_module("attn", WordSelfAttention(cfg));
  norm2 = register_module("norm2", layer_norm(cfg));
  linear_1 = register_module("linear_1", torch::nn::Linear(cfg.dim, cfg.ffn_dim));
  linear_2 = register_module("linear_2", torch::nn::Linear(cfg.ffn_dim, cfg.dim));
}

at::Tensor WordEncoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& key_valid) {
  auto h = x + attn(norm1(x), key_valid);                  // [B, L, D]
  return h + linear_2(torch::gelu(linear_1(norm2(h))));  // [B, L, D]
}

WordTextEncoderImpl::WordTextEncoderImpl(WordEncoderConfig cfg) : cfg_(cfg) {
  auto st = cfg_.validate();
  TORCH_CHECK(st.ok(), st.ok() ? "" : st.error().message);
  token_embedding = register_module("token_embedding", torch::nn::Embedding(cfg_.vocab_size, cfg_.dim));
  position_embedding = register_module("position_embedding", torch::nn::Embedding(cfg_.max_length, cfg_.dim));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg_.layers; ++i) layers->push_back(WordEncoderLayer(cfg_));
  norm = register_module("norm", layer_norm(cfg_));
}

at::Tensor WordTextEncoderImpl::forward(const at::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong, "text encoder: ids must be [B, L] int64, got ",
              ids.sizes(), " ", ids.scalar_type());
  TORCH_CHECK(ids.size(1) <= cfg_.max_length, "text encoder: ", ids.size(1), " tokens, at most ", cfg_.max_length);
  auto valid = ids.ne(WordTokenizer::kPadId);                                      // [B, L]
  auto positions = torch::arange(ids.size(1), ids.options());                     // [L]
  auto x = token_embedding(ids) + position_embedding(positions).unsqueeze(0);     // [B, L, D]
  for (const auto& layer : *layers) x = layer->as<WordEncoderLayerImpl>()->forward(x, valid);
  return norm(x).masked_fill(valid.logical_not().unsqueeze(-1), 0.0);             // [B, L, D]
}

void WordTextEncoderImpl::initialize(uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    auto& t = p.value();
    const bool is_weight = p.key().size() >= 6 && p.key().compare(p.key().size() - 6, 6, "weight") == 0;
    if (t.dim() == 1) {
      t.fill_(is_weight ? 1.0 : 0.0);  // LayerNorm scale, or a bias
    } else if (p.key().find("embedding") != std::string::npos) {
      t.copy_(torch::randn(t.sizes(), gen, t.options()) * 0.02);
    } else {
      const double bound = std::sqrt(6.0 / static_cast<double>(t.size(0) + t.size(1)));
      t.copy_((torch::rand(t.sizes(), gen, t.options()) * 2 - 1) * bound);
    }
  }
}

std::vector<std::pair<std::string, at::Tensor>> WordTextEncoderImpl::named_tensors(const std::string& prefix) const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : named_parameters()) out.emplace_back(join(prefix, p.key()), p.value());
  return out;
}

Status WordTextEncoderImpl::load_from(const SafeTensors& file, const std::string& prefix) {
  try {
    torch::NoGradGuard no_grad;
    std::set<std::string> used;
    for (auto& param : named_parameters()) {
      const std::string name = join(prefix, param.key());
      REEL_RETURN_IF_ERROR(copy_weight(file, name, param.value(), "the text encoder"));
      used.insert(name);
    }
    if (!prefix.empty())
      for (const auto& name : file.names())
        if (name.starts_with(prefix + ".") && !used.count(name))
          return make_error(Errc::corrupt_data,
                            file.path() + ": unexpected tensor '" + name + "' (not part of the text encoder)");
    return {};
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, file.path() + ": " + e.what_without_backtrace());
  }
}

// --- adapter ------------------------------------------------------------------------------

WordEncoder::WordEncoder(WordTokenizer tokenizer, WordTextEncoder model, UnknownPolicy policy)
    : tokenizer_(std::move(tokenizer)), model_(std::move(model)), policy_(policy) {}

Expected<WordEncoder> WordEncoder::random(std::vector<std::string> words, WordEncoderConfig cfg, uint64_t seed,
                                          UnknownPolicy policy) {
  WordTokenizer tokenizer(std::move(words));
  if (cfg.vocab_size == 0) cfg.vocab_size = tokenizer.vocab_size();
  if (cfg.vocab_size != tokenizer.vocab_size())
    return make_error(Errc::invalid_argument, "text encoder config: vocab_size " + std::to_string(cfg.vocab_size) +
                                                  " does not match the vocabulary (" +
                                                  std::to_string(tokenizer.vocab_size()) + " ids)");
  REEL_RETURN_IF_ERROR(cfg.validate());
  try {
    WordTextEncoder model(cfg);
    model->initialize(seed);
    model->eval();
    return WordEncoder(std::move(tokenizer), std::move(model), policy);
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("text encoder: ") + e.what_without_backtrace());
  }
}

Expected<WordEncoder> WordEncoder::load(const SafeTensors& file, const std::string& prefix, UnknownPolicy policy) {
  const auto& md = file.metadata();
  auto cfg = WordEncoderConfig::from_metadata(md, prefix);
  if (!cfg) return make_error(cfg.error().code, file.path() + ": " + cfg.error().message);
  auto vocab = metadata_value(md, join(prefix, "vocab"));
  if (!vocab) return make_error(vocab.error().code, file.path() + ": " + vocab.error().message);
  auto tokenizer = WordTokenizer::from_string(*vocab);
  if (!tokenizer)
    return make_error(Errc::corrupt_data, file.path() + ": metadata '" + join(prefix, "vocab") +
                                              "': " + tokenizer.error().message);
  if (tokenizer->vocab_size() != cfg->vocab_size)
    return make_error(Errc::corrupt_data, file.path() + ": the vocabulary has " +
                                              std::to_string(tokenizer->vocab_size()) + " ids, the config says " +
                                              std::to_string(cfg->vocab_size));
  try {
    WordTextEncoder model(*cfg);
    REEL_RETURN_IF_ERROR(model->load_from(file, prefix));
    model->eval();
    return WordEncoder(std::move(tokenizer).value(), std::move(model), policy);
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, file.path() + ": " + e.what_without_backtrace());
  }
}

Expected<at::Tensor> WordEncoder::token_ids(const std::vector<std::string>& prompts) const {
  if (prompts.empty()) return make_error(Errc::invalid_argument, "no prompts to encode");
  std::vector<std::vector<int64_t>> rows;
  int64_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto ids = tokenizer_.encode(prompts[i], policy_, max_length());
    if (!ids) {
      if (prompts.size() == 1) return ids.error();
      return make_error(ids.error().code, "prompt " + std::to_string(i) + ": " + ids.error().message);
    }
    longest = std::max<int64_t>(longest, static_cast<int64_t>(ids->size()));
    rows.push_back(std::move(ids).value());
  }
  try {
    auto out = torch::full({static_cast<int64_t>(rows.size()), longest}, WordTokenizer::kPadId, torch::kLong);
    auto acc = out.accessor<int64_t, 2>();
    for (size_t b = 0; b < rows.size(); ++b)
      for (size_t j = 0; j < rows[b].size(); ++j) acc[static_cast<int64_t>(b)][static_cast<int64_t>(j)] = rows[b][j];
    return out;  // [B, L]
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("text encoder: ") + e.what_without_backtrace());
  }
}

Expected<at::Tensor> WordEncoder::encode(const std::vector<std::string>& prompts) {
  auto ids = token_ids(prompts);
  if (!ids) return ids.error();
  try {
    torch::NoGradGuard no_grad;
    return model_->forward(*ids);  // [B, L, D]
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("text encoder: ") + e.what_without_backtrace());
  }
}

std::vector<std::pair<std::string, at::Tensor>> WordEncoder::named_tensors(const std::string& prefix) const {
  return model_->named_tensors(prefix);
}

std::map<std::string, std::string> WordEncoder::metadata(const std::string& prefix) const {
  auto md = model_->config().to_metadata(prefix);
  md[join(prefix, "vocab")] = tokenizer_.to_string();
  return md;
}

}  // namespace reel::models
