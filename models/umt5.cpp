#include "models/umt5.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>
#include <numbers>
#include <set>
#include <sstream>
#include <type_traits>

#include "models/safetensors.hpp"

namespace reel::models {

namespace {

// Where each tensor of a (possibly sharded) checkpoint lives. The first file wins a name that
// several shards hold.
struct TensorIndex {
  std::map<std::string, const SafeTensors*> where;
  bool hf = false;         // Hugging Face names ("encoder.block.N...")
  std::string files;       // the paths, for messages

  explicit TensorIndex(const std::vector<const SafeTensors*>& shards) {
    for (const SafeTensors* f : shards) {
      files += (files.empty() ? "" : ", ") + f->path();
      for (const auto& name : f->names()) where.emplace(name, f);
    }
    hf = where.count("shared.weight") || where.count("encoder.embed_tokens.weight") ||
         where.count("encoder.block.0.layer.0.SelfAttention.q.weight");
  }

  // The checkpoint's name for reference name `name`; empty when the checkpoint has none.
  [[nodiscard]] std::string find(const std::string& name) const {
    if (!hf) return where.count(name) ? name : "";
    const std::string n = umt5_hf_name(name);
    if (where.count(n)) return n;
    if (name == "token_embedding.weight" && where.count("encoder.embed_tokens.weight"))
      return "encoder.embed_tokens.weight";
    return "";
  }
  [[nodiscard]] bool has(const std::string& name) const { return !find(name).empty(); }

  // In Hugging Face checkpoints of the whole model: the decoder, the LM head, and the second
  // copy of the tied embedding.
  [[nodiscard]] bool ignorable(const std::string& name) const {
    return hf && (name.starts_with("decoder.") || name.starts_with("lm_head.") || name == "shared.weight" ||
                  name == "encoder.embed_tokens.weight");
  }

  [[nodiscard]] std::string missing(const std::string& name) const {
    const std::string n = hf ? umt5_hf_name(name) : name;
    return files + ": missing tensor '" + n + "'" + (n == name ? "" : " (" + name + ")");
  }
};

Expected<std::vector<int64_t>> shape_of(const TensorIndex& index, const std::string& name, size_t rank) {
  const std::string n = index.find(name);
  if (n.empty()) return make_error(Errc::corrupt_data, index.missing(name) + ": not a umT5 encoder checkpoint");
  const auto& shape = index.where.at(n)->record(n)->shape;
  if (shape.size() != rank)
    return make_error(Errc::corrupt_data, index.where.at(n)->path() + ": tensor '" + n + "' has rank " +
                                              std::to_string(shape.size()) + ", expected " + std::to_string(rank));
  return shape;
}

// T5 has no biases anywhere.
torch::nn::Linear no_bias_linear(int64_t in, int64_t out) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
}

at::Tensor gelu_tanh(const at::Tensor& x) {
  // The reference writes the tanh approximation out; the same operations in the same order.
  const double c = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + torch::tanh(c * (x + 0.044715 * torch::pow(x, 3.0))));
}

}  // namespace

// --- config ---------------------------------------------------------------------------------

Status UmT5Config::validate() const {
  auto bad = [](const std::string& m) { return make_error(Errc::invalid_argument, "umT5 config: " + m); };
  if (vocab <= 0 || dim <= 0 || dim_attn <= 0 || dim_ffn <= 0 || num_heads <= 0 || num_layers < 0 || text_len <= 0)
    return bad("sizes must be positive");
  if (dim_attn % num_heads != 0)
    return bad("dim_attn " + std::to_string(dim_attn) + " is not divisible by num_heads " + std::to_string(num_heads));
  if (num_buckets < 4 || num_buckets % 2 != 0)
    return bad("num_buckets must be even and at least 4, got " + std::to_string(num_buckets));
  if (max_distance <= num_buckets / 4)
    return bad("max_distance " + std::to_string(max_distance) + " must exceed num_buckets / 4");
  if (!(eps > 0)) return bad("eps must be positive");
  return {};
}

at::Tensor umt5_relative_position_bucket(const at::Tensor& rel_pos, int64_t num_buckets, int64_t max_distance) {
  const int64_t half = num_buckets / 2;  // one half per direction
  const int64_t max_exact = half / 2;
  auto buckets = rel_pos.gt(0).to(torch::kLong) * half;
  auto distance = rel_pos.abs();
  // Float32 as in the reference, so that the truncation to long lands where it lands there.
  // clamp_min(1) keeps log(0) out; those distances take the exact branch anyway.
  auto large = max_exact + (torch::log(distance.clamp_min(1).to(torch::kFloat) / max_exact) /
                            std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                            (half - max_exact))
                               .to(torch::kLong);
  large = large.clamp_max(half - 1);
  return buckets + torch::where(distance < max_exact, distance, large);
}

// --- modules --------------------------------------------------------------------------------

UmT5NormImpl::UmT5NormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

at::Tensor UmT5NormImpl::forward(const at::Tensor& x) {
  auto y = x * torch::rsqrt(x.to(torch::kFloat).pow(2).mean(-1, true) + eps_);
  if (weight.scalar_type() == torch::kHalf || weight.scalar_type() == torch::kBFloat16) y = y.to(weight.scalar_type());
  return weight * y;
}

UmT5RelativeEmbeddingImpl::UmT5RelativeEmbeddingImpl(const UmT5Config& cfg)
    : num_buckets_(cfg.num_buckets), max_distance_(cfg.max_distance) {
  embedding = register_module("embedding", torch::nn::Embedding(cfg.num_buckets, cfg.num_heads));
}

at::Tensor UmT5RelativeEmbeddingImpl::forward(int64_t lq, int64_t lk) {
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(embedding->weight.device());
  auto rel_pos = torch::arange(lk, opts).unsqueeze(0) - torch::arange(lq, opts).unsqueeze(1);  // [lq, lk]: key - query
  auto bias = embedding(umt5_relative_position_bucket(rel_pos, num_buckets_, max_distance_));  // [lq, lk, N]
  return bias.permute({2, 0, 1}).unsqueeze(0).contiguous();                                    // [1, N, lq, lk]
}

UmT5AttentionImpl::UmT5AttentionImpl(const UmT5Config& cfg) : heads_(cfg.num_heads) {
  q = register_module("q", no_bias_linear(cfg.dim, cfg.dim_attn));
  k = register_module("k", no_bias_linear(cfg.dim, cfg.dim_attn));
  v = register_module("v", no_bias_linear(cfg.dim, cfg.dim_attn));
  o = register_module("o", no_bias_linear(cfg.dim_attn, cfg.dim));
}

at::Tensor UmT5AttentionImpl::forward(const at::Tensor& x, const at::Tensor& bias) {
  const int64_t b = x.size(0), l = x.size(1);
  auto split_heads = [&](const at::Tensor& t) { return t.view({b, l, heads_, -1}).transpose(1, 2); };
  auto qh = split_heads(q(x));  // [B, N, L, d]
  auto kh = split_heads(k(x));
  auto vh = split_heads(v(x));
  auto logits = torch::matmul(qh, kh.transpose(-2, -1)) + bias;                       // [B, N, L, L], unscaled
  auto weights = torch::softmax(logits.to(torch::kFloat), -1).to(logits.scalar_type());
  return o(torch::matmul(weights, vh).transpose(1, 2).reshape({b, l, -1}));           // [B, L, D]
}

UmT5FeedForwardImpl::UmT5FeedForwardImpl(const UmT5Config& cfg) {
  gate_proj = no_bias_linear(cfg.dim, cfg.dim_ffn);
  gate = register_module("gate", torch::nn::ModuleList(gate_proj));
  fc1 = register_module("fc1", no_bias_linear(cfg.dim, cfg.dim_ffn));
  fc2 = register_module("fc2", no_bias_linear(cfg.dim_ffn, cfg.dim));
}

at::Tensor UmT5FeedForwardImpl::forward(const at::Tensor& x) {
  return fc2(fc1(x) * gelu_tanh(gate_proj(x)));  // [B, L, D]
}

UmT5BlockImpl::UmT5BlockImpl(const UmT5Config& cfg) {
  norm1 = register_module("norm1", UmT5Norm(cfg.dim, cfg.eps));
  attn = register_module("attn", UmT5Attention(cfg));
  norm2 = register_module("norm2", UmT5Norm(cfg.dim, cfg.eps));
  ffn = register_module("ffn", UmT5FeedForward(cfg));
  if (!cfg.shared_pos) pos_embedding = register_module("pos_embedding", UmT5RelativeEmbedding(cfg));
}

at::Tensor UmT5BlockImpl::forward(const at::Tensor& x, const at::Tensor& key_padded, const at::Tensor& shared_bias) {
  const int64_t b = x.size(0), l = x.size(1);
  auto bias = pos_embedding ? pos_embedding(l, l) : shared_bias;  // [1, N, L, L]
  // Padded keys: the reference replaces their position bias with the lowest float (Hugging Face
  // adds it instead; the same result, as those keys' softmax weight is exactly zero either way).
  if (key_padded.defined())
    bias = bias.expand({b, bias.size(1), l, l})
               .masked_fill(key_padded.view({b, 1, 1, l}), std::numeric_limits<float>::lowest());  // [B, N, L, L]
  auto h = x + attn(norm1(x), bias);  // [B, L, D]
  return h + ffn(norm2(h));
}

UmT5EncoderImpl::UmT5EncoderImpl(UmT5Config cfg) : cfg_(cfg) {
  auto st = cfg_.validate();
  TORCH_CHECK(st.ok(), st.ok() ? "" : st.error().message);
  token_embedding = register_module("token_embedding", torch::nn::Embedding(cfg_.vocab, cfg_.dim));
  if (cfg_.shared_pos) pos_embedding = register_module("pos_embedding", UmT5RelativeEmbedding(cfg_));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg_.num_layers; ++i) blocks->push_back(UmT5Block(cfg_));
  norm = register_module("norm", UmT5Norm(cfg_.dim, cfg_.eps));
}

at::Tensor UmT5EncoderImpl::forward(const at::Tensor& ids, const at::Tensor& mask) {
  TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong, "umT5: ids must be [B, L] int64, got ", ids.sizes(),
              " ", ids.scalar_type());
  TORCH_CHECK(!mask.defined() || mask.sizes() == ids.sizes(), "umT5: mask ", mask.sizes(), " does not match ids ",
              ids.sizes());
  const int64_t l = ids.size(1);
  auto x = token_embedding(ids);                                       // [B, L, D]
  auto key_padded = mask.defined() ? mask.eq(0) : at::Tensor();        // [B, L]
  auto shared = pos_embedding ? pos_embedding(l, l) : at::Tensor();    // [1, N, L, L]
  for (const auto& block : *blocks) x = block->as<UmT5BlockImpl>()->forward(x, key_padded, shared);
  return norm(x);  // [B, L, D]
}

void UmT5EncoderImpl::initialize(uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  const auto d = static_cast<double>(cfg_.dim), da = static_cast<double>(cfg_.dim_attn);
  const auto n = static_cast<double>(cfg_.num_heads);
  for (auto& p : named_parameters()) {
    auto& t = p.value();
    const std::string& name = p.key();
    double std = 1.0;  // token embedding
    if (name.ends_with("norm1.weight") || name.ends_with("norm2.weight") || name == "norm.weight") {
      t.fill_(1.0);
      continue;
    }
    if (name.ends_with("attn.q.weight")) std = 1.0 / std::sqrt(d * da);
    else if (name.ends_with("attn.k.weight") || name.ends_with("attn.v.weight")) std = 1.0 / std::sqrt(d);
    else if (name.ends_with("attn.o.weight")) std = 1.0 / std::sqrt(n * da);
    else if (name.ends_with("gate.0.weight") || name.ends_with("fc1.weight")) std = 1.0 / std::sqrt(d);
    else if (name.ends_with("fc2.weight")) std = 1.0 / std::sqrt(static_cast<double>(cfg_.dim_ffn));
    else if (name.ends_with("pos_embedding.embedding.weight"))
      std = 1.0 / std::sqrt(2.0 * static_cast<double>(cfg_.num_buckets) * n);
    t.copy_(torch::randn(t.sizes(), gen, t.options()) * std);
  }
}

// --- loading --------------------------------------------------------------------------------

std::string umt5_hf_name(const std::string& name) {
  if (name == "token_embedding.weight") return "shared.weight";
  if (name == "norm.weight") return "encoder.final_layer_norm.weight";
  if (name == "pos_embedding.embedding.weight")
    return "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";
  if (!name.starts_with("blocks.")) return name;
  const auto dot = name.find('.', 7);
  if (dot == std::string::npos) return name;
  const std::string block = "encoder.block." + name.substr(7, dot - 7) + ".";
  const std::string rest = name.substr(dot + 1);
  static const std::map<std::string, std::string> kInBlock = {
      {"norm1.weight", "layer.0.layer_norm.weight"},
      {"attn.q.weight", "layer.0.SelfAttention.q.weight"},
      {"attn.k.weight", "layer.0.SelfAttention.k.weight"},
      {"attn.v.weight", "layer.0.SelfAttention.v.weight"},
      {"attn.o.weight", "layer.0.SelfAttention.o.weight"},
      {"pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"},
      {"norm2.weight", "layer.1.layer_norm.weight"},
      {"ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"},
      {"ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"},
      {"ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"},
  };
  auto it = kInBlock.find(rest);
  return it == kInBlock.end() ? name : block + it->second;
}

Expected<UmT5Config> detect_umt5_config(const std::vector<const SafeTensors*>& files) {
  if (files.empty()) return make_error(Errc::invalid_argument, "umT5: no weight files");
  const TensorIndex index(files);
  auto emb = shape_of(index, "token_embedding.weight", 2);
  if (!emb) return emb.error();
  auto q = shape_of(index, "blocks.0.attn.q.weight", 2);
  if (!q) return q.error();
  auto fc1 = shape_of(index, "blocks.0.ffn.fc1.weight", 2);
  if (!fc1) return fc1.error();

  UmT5Config cfg;
  cfg.vocab = (*emb)[0];
  cfg.dim = (*emb)[1];
  cfg.dim_attn = (*q)[0];
  cfg.dim_ffn = (*fc1)[0];
  cfg.num_layers = 0;
  while (index.has("blocks." + std::to_string(cfg.num_layers) + ".attn.q.weight")) ++cfg.num_layers;
  // Hugging Face keeps T5's shared table in block 0, where umT5 has block 0's own: only a table in
  // block 1 tells them apart (and with one block they compute the same).
  cfg.shared_pos = index.hf ? cfg.num_layers > 1 && !index.has("blocks.1.pos_embedding.embedding.weight")
                            : !index.has("blocks.0.pos_embedding.embedding.weight");
  const char* table_name =
      cfg.shared_pos ? "pos_embedding.embedding.weight" : "blocks.0.pos_embedding.embedding.weight";
  auto table = shape_of(index, table_name, 2);
  if (!table) return table.error();
  cfg.num_buckets = (*table)[0];
  cfg.num_heads = (*table)[1];

  const SafeTensors& first = *files.front();
  const auto& md = first.metadata();
  auto number = [&](const char* key, auto& field) -> Status {
    auto it = md.find(key);
    if (it == md.end()) return {};
    std::istringstream in(it->second);
    std::decay_t<decltype(field)> v{};
    if (!(in >> v) || !(in >> std::ws).eof())
      return make_error(Errc::corrupt_data,
                        first.path() + ": metadata '" + key + "' is not a number: '" + it->second + "'");
    field = v;
    return {};
  };
  REEL_RETURN_IF_ERROR(number("eps", cfg.eps));
  REEL_RETURN_IF_ERROR(number("max_dist", cfg.max_distance));
  REEL_RETURN_IF_ERROR(number("text_len", cfg.text_len));
  if (auto st = cfg.validate(); !st) return make_error(Errc::corrupt_data, index.files + ": " + st.error().message);
  return cfg;
}

Status UmT5EncoderImpl::load_from(const std::vector<const SafeTensors*>& files) {
  if (files.empty()) return make_error(Errc::invalid_argument, "umT5: no weight files");
  const TensorIndex index(files);
  try {
    torch::NoGradGuard no_grad;
    std::set<std::string> used;
    for (auto& param : named_parameters()) {
      const std::string name = index.find(param.key());
      if (name.empty()) return make_error(Errc::corrupt_data, index.missing(param.key()));
      REEL_RETURN_IF_ERROR(copy_weight(*index.where.at(name), name, param.value(), "the umT5 encoder"));
      used.insert(name);
    }
    for (const auto& [name, file] : index.where)
      if (!used.count(name) && !index.ignorable(name))
        return make_error(Errc::corrupt_data,
                          file->path() + ": unexpected tensor '" + name + "' (not part of this umT5 encoder)");
    return {};
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, index.files + ": " + e.what_without_backtrace());
  }
}

Expected<UmT5Encoder> load_umt5(const std::vector<std::string>& paths) {
  std::vector<SafeTensors> files;
  for (const auto& path : paths) {
    auto file = SafeTensors::open(path);
    if (!file) return file.error();
    files.push_back(std::move(file).value());
  }
  std::vector<const SafeTensors*> shards;
  for (const auto& f : files) shards.push_back(&f);
  auto cfg = detect_umt5_config(shards);
  if (!cfg) return cfg.error();
  try {
    UmT5Encoder model(*cfg);
    REEL_RETURN_IF_ERROR(model->load_from(shards));
    model->eval();
    return model;
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("umT5: ") + e.what_without_backtrace());
  }
}

// --- TextEncoder ----------------------------------------------------------------------------

UmT5TextEncoder::UmT5TextEncoder(SentencePieceTokenizer tokenizer, UmT5Encoder model)
    : tokenizer_(std::move(tokenizer)), model_(std::move(model)) {}

Expected<UmT5TextEncoder> UmT5TextEncoder::load(const std::string& spiece_model,
                                                const std::vector<std::string>& weight_paths) {
  auto model = load_umt5(weight_paths);
  if (!model) return model.error();
  const auto& cfg = (*model)->config();
  auto tokenizer = SentencePieceTokenizer::load(spiece_model, cfg.text_len);
  if (!tokenizer) return tokenizer.error();
  if (tokenizer->vocab_size() > cfg.vocab)
    return make_error(Errc::corrupt_data, spiece_model + ": the tokenizer has " +
                                              std::to_string(tokenizer->vocab_size()) +
                                              " pieces, the umT5 encoder embeds only " + std::to_string(cfg.vocab));
  return UmT5TextEncoder(std::move(tokenizer).value(), std::move(model).value());
}

Expected<at::Tensor> UmT5TextEncoder::encode(const std::vector<std::string>& prompts) {
  auto batch = tokenizer_.tokenize(prompts, Padding::to_longest);
  if (!batch) return batch.error();
  return encode_ids(batch->ids, batch->mask);
}

Expected<at::Tensor> UmT5TextEncoder::encode_ids(const at::Tensor& ids, const at::Tensor& mask) {
  try {
    if (ids.dim() != 2 || mask.sizes() != ids.sizes() || !at::isIntegralType(ids.scalar_type(), false)) {
      std::ostringstream os;
      os << "umT5: ids " << ids.sizes() << " " << ids.scalar_type() << " and mask " << mask.sizes()
         << " must be [B, L] integers of the same shape";
      return make_error(Errc::invalid_argument, os.str());
    }
    auto ids64 = ids.to(torch::kLong);
    if (ids64.numel() > 0 && (ids64.min().item<int64_t>() < 0 || ids64.max().item<int64_t>() >= model_->config().vocab))
      return make_error(Errc::invalid_argument,
                        "umT5: token ids must lie in [0, " + std::to_string(model_->config().vocab) + ")");
    torch::NoGradGuard no_grad;
    auto out = model_->forward(ids64, mask);               // [B, L, D]
    return out.masked_fill(mask.eq(0).unsqueeze(-1), 0.0);  // the reference keeps only out[b, :seq_len[b]]
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("umT5: ") + e.what_without_backtrace());
  }
}

}  // namespace reel::models
