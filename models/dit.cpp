#include "models/dit.hpp"

#include <torch/torch.h>

#include <cmath>

namespace reel::models {

namespace {

// Largest attention score matrix computed at once (elements, per head); longer sequences are
// processed in query chunks so that memory stays bounded for long videos.
constexpr int64_t kMaxScoreElements = int64_t{1} << 24;

// softmax(q k^T / sqrt(d)) v over [B, N, S, d] tensors. One head at a time with plain matrix
// products: on CPU this is about 2.5x faster than batched matmul over [B, N] (the BLAS gemm is
// used directly and a head's scores stay in cache), and it bounds memory by the chunk size.
at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t b = q.size(0), n = q.size(1), sq = q.size(2), d = q.size(3), sk = k.size(2), dv = v.size(3);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  if (torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad())) {
    // Training: the same per-head products without out= (which autograd cannot differentiate);
    // unbind/stack keep the backward to one gather and one scatter instead of one per head.
    auto qs = (q * scale).reshape({b * n, sq, d}).unbind(0);
    auto ks = k.reshape({b * n, sk, d}).unbind(0);
    auto vs = v.reshape({b * n, sk, dv}).unbind(0);
    std::vector<at::Tensor> heads;
    heads.reserve(qs.size());
    for (size_t h = 0; h < qs.size(); ++h) heads.push_back(torch::mm(torch::softmax(torch::mm(qs[h], ks[h].t()), -1), vs[h]));
    return torch::stack(heads).view({b, n, sq, dv});
  }
  auto qh = (q * scale).reshape({b * n, sq, d});  // [BN, Sq, d]
  auto kh = k.reshape({b * n, sk, d});            // [BN, Sk, d]
  auto vh = v.reshape({b * n, sk, dv});           // [BN, Sk, dv]
  auto out = torch::empty({b * n, sq, dv}, q.options());
  const int64_t chunk = std::max<int64_t>(1, kMaxScoreElements / std::max<int64_t>(1, sk));
  for (int64_t h = 0; h < b * n; ++h) {
    auto kt = kh[h].t();
    auto vv = vh[h];
    for (int64_t s = 0; s < sq; s += chunk) {
      const int64_t e = std::min(sq, s + chunk);
      auto scores = torch::softmax(torch::mm(qh[h].slice(0, s, e), kt), -1);  // [chunk, Sk]
      auto dst = out[h].slice(0, s, e);
      torch::mm_out(dst, scores, vv);
    }
  }
  return out.view({b, n, sq, dv});
}

// Per-frame modulation values broadcast to the tokens of a run of the sequence.
// values: [B, Ft, D]; tokens: [B, S_run, D] starting at token_begin; frame_tokens = h*w.
// Returns a tensor that broadcasts against tokens viewed as by `to_frames` below.
struct FrameView {
  bool aligned = false;   // the run starts and ends on frame boundaries
  int64_t first_frame = 0;
  int64_t frames = 0;
  at::Tensor token_frame;  // [S_run] frame of each token (unaligned case)
};

FrameView frame_view(int64_t token_begin, int64_t run, int64_t frame_tokens) {
  FrameView fv;
  fv.aligned = token_begin % frame_tokens == 0 && run % frame_tokens == 0;
  fv.first_frame = token_begin / frame_tokens;
  fv.frames = run / frame_tokens;
  if (!fv.aligned)
    fv.token_frame = torch::div(torch::arange(token_begin, token_begin + run, torch::kLong), frame_tokens,
                                "floor");
  return fv;
}

// The frame view of a state's tokens: a contiguous run, or the positions in token_index.
FrameView frame_view(const DiTState& state) {
  const int64_t frame_tokens = state.grid.h * state.grid.w;
  if (!state.token_index.defined()) return frame_view(state.token_begin, state.tokens.size(1), frame_tokens);
  TORCH_CHECK(state.token_index.dim() == 1 && state.token_index.size(0) == state.tokens.size(1),
              "token_index must be [S_run] = [", state.tokens.size(1), "], got ", state.token_index.sizes());
  FrameView fv;
  fv.token_frame = torch::div(state.token_index, frame_tokens, "floor");
  return fv;
}

// x * (1 + scale) + shift with per-frame scale/shift [B, Ft, D].
at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, const FrameView& fv) {
  if (fv.aligned) {
    auto sizes = x.sizes();
    auto xf = x.view({sizes[0], fv.frames, -1, sizes[2]});                      // [B, f, hw, D]
    auto sh = shift.slice(1, fv.first_frame, fv.first_frame + fv.frames).unsqueeze(2);  // [B, f, 1, D]
    auto sc = scale.slice(1, fv.first_frame, fv.first_frame + fv.frames).unsqueeze(2);
    return torch::addcmul(sh, xf, 1 + sc).view(sizes);
  }
  auto sh = shift.index_select(1, fv.token_frame);  // [B, S_run, D]
  auto sc = scale.index_select(1, fv.token_frame);
  return torch::addcmul(sh, x, 1 + sc);
}

// x + y * gate with per-frame gate [B, Ft, D].
at::Tensor gated_add(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate, const FrameView& fv) {
  if (fv.aligned) {
    auto sizes = x.sizes();
    auto g = gate.slice(1, fv.first_frame, fv.first_frame + fv.frames).unsqueeze(2);
    return torch::addcmul(x.view({sizes[0], fv.frames, -1, sizes[2]}), y.view({sizes[0], fv.frames, -1, sizes[2]}), g)
        .view(sizes);
  }
  return torch::addcmul(x, y, gate.index_select(1, fv.token_frame));
}

at::Tensor layer_norm(const at::Tensor& x, double eps) { return torch::layer_norm(x, {x.size(-1)}, {}, {}, eps); }

}  // namespace

void AttentionHook::self_attention_kv_at(int64_t layer, const at::Tensor& token_index, at::Tensor& k, at::Tensor& v) {
  TORCH_CHECK(false, "this attention hook handles contiguous token runs only (layer ", layer, ")");
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps_) * weight;
}

WanAttentionImpl::WanAttentionImpl(const DiTConfig& cfg) : heads(cfg.num_heads) {
  to_q = register_module("to_q", torch::nn::Linear(cfg.dim, cfg.dim));
  to_k = register_module("to_k", torch::nn::Linear(cfg.dim, cfg.dim));
  to_v = register_module("to_v", torch::nn::Linear(cfg.dim, cfg.dim));
  to_out = register_module("to_out", torch::nn::ModuleList());
  to_out->push_back(torch::nn::Linear(cfg.dim, cfg.dim));
  if (cfg.qk_norm) {
    norm_q = register_module("norm_q", RMSNorm(cfg.dim, cfg.eps));
    norm_k = register_module("norm_k", RMSNorm(cfg.dim, cfg.eps));
  }
}

TwoLayerMlpImpl::TwoLayerMlpImpl(int64_t in, int64_t hidden, int64_t out) {
  linear_1 = register_module("linear_1", torch::nn::Linear(in, hidden));
  linear_2 = register_module("linear_2", torch::nn::Linear(hidden, out));
}

ConditionEmbedderImpl::ConditionEmbedderImpl(const DiTConfig& cfg) {
  time_embedder = register_module("time_embedder", TwoLayerMlp(cfg.freq_dim, cfg.dim, cfg.dim));
  time_proj = register_module("time_proj", torch::nn::Linear(cfg.dim, 6 * cfg.dim));
  text_embedder = register_module("text_embedder", TwoLayerMlp(cfg.text_dim, cfg.dim, cfg.dim));
  if (cfg.text_time) {
    text_pool = register_module("text_pool", torch::nn::Linear(cfg.dim, cfg.dim));
    frame_embedder = register_module("frame_embedder", torch::nn::Linear(cfg.freq_dim, cfg.dim));
  }
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t hidden) {
  auto net = register_module("net", torch::nn::ModuleList());
  auto gelu = std::make_shared<torch::nn::Module>("GELU");
  proj_in = gelu->register_module("proj", torch::nn::Linear(dim, hidden));
  proj_out = torch::nn::Linear(hidden, dim);
  net->push_back(gelu);
  net->push_back(torch::nn::Identity());  // dropout slot in diffusers; keeps index 2 for proj_out
  net->push_back(proj_out);
}

at::Tensor FeedForwardImpl::forward(const at::Tensor& x) {
  return proj_out(torch::gelu(proj_in(x), "tanh"));
}

WanBlockImpl::WanBlockImpl(const DiTConfig& cfg) {
  attn1 = register_module("attn1", WanAttention(cfg));
  attn2 = register_module("attn2", WanAttention(cfg));
  if (cfg.cross_attn_norm)
    norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.dim}).eps(cfg.eps)));
  ffn = register_module("ffn", FeedForward(cfg.dim, cfg.ffn_dim));
  scale_shift_table = register_parameter("scale_shift_table", torch::randn({1, 6, cfg.dim}) / std::sqrt(cfg.dim));
}

namespace {

// A per-frame 3x3 convolution over [B, C, F, H, W] (kernel 1x3x3, size-preserving padding).
torch::nn::Conv3d frame_conv(int64_t in, int64_t out) {
  return torch::nn::Conv3d(torch::nn::Conv3dOptions(in, out, {1, 3, 3}).padding({0, 1, 1}));
}

}  // namespace

VideoDiTImpl::VideoDiTImpl(DiTConfig cfg) : cfg_(cfg) {
  if (cfg.stem_channels > 0) stem = register_module("stem", frame_conv(cfg.in_channels, cfg.stem_channels));
  patch_embedding = register_module(
      "patch_embedding", torch::nn::Conv3d(torch::nn::Conv3dOptions(cfg.patch_in_channels(), cfg.dim,
                                                                    {cfg.patch[0], cfg.patch[1], cfg.patch[2]})
                                               .stride({cfg.patch[0], cfg.patch[1], cfg.patch[2]})));
  condition_embedder = register_module("condition_embedder", ConditionEmbedder(cfg));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_layers; ++i) blocks->push_back(WanBlock(cfg));
  proj_out = register_module("proj_out", torch::nn::Linear(cfg.dim, cfg.out_channels * cfg.patch_volume()));
  scale_shift_table = register_parameter("scale_shift_table", torch::randn({1, 2, cfg.dim}) / std::sqrt(cfg.dim));
  if (cfg.refine_channels > 0) {
    refine_in = register_module("refine_in", frame_conv(cfg.out_channels, cfg.refine_channels));
    refine_out = register_module("refine_out", frame_conv(cfg.refine_channels, cfg.out_channels));
    torch::NoGradGuard no_grad;  // starts as the identity
    refine_out->weight.zero_();
    refine_out->bias.zero_();
  }
}

at::Tensor VideoDiTImpl::refine(const at::Tensor& y) {
  if (!refine_in) return y;
  return y + refine_out(torch::gelu(refine_in(y), "tanh"));
}

at::Tensor VideoDiTImpl::position_embedding(const TokenGrid& grid) const {
  // Per axis, sin and cos of position * 10000^(-k / half) for k < half, as the original
  // Transformer's; the axes take the widths RoPE gives them (frame, row, column).
  const auto axes = DiTConfig::axis_widths(cfg_.dim);
  const std::array<int64_t, 3> sizes = {grid.f, grid.h, grid.w};
  std::array<at::Tensor, 3> tables;
  for (int a = 0; a < 3; ++a) {
    const int64_t half = axes[a] / 2;
    auto freq = torch::exp(torch::arange(half, torch::kFloat64) * (-std::log(10000.0) / static_cast<double>(half)));
    auto angle = torch::arange(sizes[a], torch::kFloat64).unsqueeze(1) * freq.unsqueeze(0);  // [n, half]
    tables[a] = torch::cat({torch::sin(angle), torch::cos(angle)}, 1).to(torch::kFloat32);     // [n, 2 half]
  }
  auto f = tables[0].view({grid.f, 1, 1, -1}).expand({grid.f, grid.h, grid.w, -1});
  auto h = tables[1].view({1, grid.h, 1, -1}).expand({grid.f, grid.h, grid.w, -1});
  auto w = tables[2].view({1, 1, grid.w, -1}).expand({grid.f, grid.h, grid.w, -1});
  return torch::cat({f, h, w}, 3).reshape({grid.f * grid.h * grid.w, cfg_.dim});
}

DiTState VideoDiTImpl::embed(const at::Tensor& x, const at::Tensor& t, const at::Tensor& text) {
  TORCH_CHECK(x.dim() == 5 && x.size(1) == cfg_.in_channels, "latents must be [B, ", cfg_.in_channels,
              ", F, H, W], got ", x.sizes());
  TORCH_CHECK(x.size(2) % cfg_.patch[0] == 0 && x.size(3) % cfg_.patch[1] == 0 && x.size(4) % cfg_.patch[2] == 0,
              "latent size ", x.sizes(), " is not divisible by the patch");
  TORCH_CHECK(text.dim() == 3 && text.size(0) == x.size(0) && text.size(2) == cfg_.text_dim,
              "text must be [B, L, ", cfg_.text_dim, "], got ", text.sizes());

  DiTState st;
  st.grid = {x.size(2) / cfg_.patch[0], x.size(3) / cfg_.patch[1], x.size(4) / cfg_.patch[2]};
  st.tokens = patchify(x);  // [B, S, D]
  st.context = embed_text(text);  // [B, Lt, D]; a text_time model's time embedding reads it
  embed_time(st, t, x.size(0), x.size(2));
  auto rope = rope_tables(st.grid, cfg_.rope_axes(), cfg_.rope_theta);
  st.rope_cos = rope.cos.to(x.device());
  st.rope_sin = rope.sin.to(x.device());
  return st;
}

at::Tensor VideoDiTImpl::patchify(const at::Tensor& x, int64_t rows_above, int64_t rows_below) {
  TORCH_CHECK(x.dim() == 5 && x.size(1) == cfg_.in_channels, "latents must be [B, ", cfg_.in_channels,
              ", F, H, W], got ", x.sizes());
  TORCH_CHECK(rows_above >= 0 && rows_below >= 0 && rows_above + rows_below < x.size(3), "halo rows ", rows_above,
              " + ", rows_below, " leave nothing of ", x.sizes());
  at::Tensor patch_in = stem ? torch::cat({x, torch::gelu(stem(x), "tanh")}, 1) : x;
  if (rows_above > 0 || rows_below > 0) patch_in = patch_in.slice(3, rows_above, x.size(3) - rows_below);
  return patch_embedding(patch_in).flatten(2).transpose(1, 2);  // [B, S, D]
}

void VideoDiTImpl::embed_time(DiTState& st, const at::Tensor& t, int64_t batch, int64_t latent_frames) {
  // Timesteps per token-frame: a latent frame group of patch[0] frames shares its first frame's t.
  at::Tensor tf = t.to(torch::kFloat64);
  if (tf.dim() == 1) tf = tf.view({batch, 1}).expand({batch, st.grid.f});
  else if (tf.size(1) != st.grid.f) {
    TORCH_CHECK(tf.size(1) == latent_frames, "timesteps must be [B] or [B, F], got ", t.sizes());
    tf = tf.slice(1, 0, tf.size(1), cfg_.patch[0]);
  }
  TORCH_CHECK(tf.size(0) == batch, "timesteps batch ", tf.size(0), " != latent batch ", batch);

  auto& ce = *condition_embedder;
  auto sinusoid = timestep_embedding(tf, cfg_.freq_dim);  // [B, Ft, freq_dim]
  at::Tensor hidden = ce.time_embedder->linear_1(sinusoid);  // [B, Ft, D]
  if (cfg_.text_time) {
    TORCH_CHECK(st.context.defined() && st.context.size(0) == batch, "a text_time model embeds time after the text");
    auto frames = torch::arange(st.grid.f, torch::TensorOptions().dtype(torch::kFloat64)).to(sinusoid.device());
    hidden = hidden + ce.text_pool(st.context.mean(1)).unsqueeze(1) +                        // [B, 1, D]
             ce.frame_embedder(timestep_embedding(frames, cfg_.freq_dim)).unsqueeze(0);  // [1, Ft, D]
  }
  st.time_emb = ce.time_embedder->linear_2(torch::silu(hidden));  // [B, Ft, D]
  st.time_mod = ce.time_proj(torch::silu(st.time_emb)).unflatten(2, {6, cfg_.dim});          // [B, Ft, 6, D]
}

at::Tensor VideoDiTImpl::embed_text(const at::Tensor& text) {
  TORCH_CHECK(text.dim() == 3 && text.size(2) == cfg_.text_dim, "text must be [B, L, ", cfg_.text_dim, "], got ",
              text.sizes());
  TORCH_CHECK(text.size(1) <= cfg_.text_len, "text has ", text.size(1), " rows, more than text_len ", cfg_.text_len);
  auto& ce = *condition_embedder;
  at::Tensor padded = text;
  if (text.size(1) < cfg_.text_len)
    padded = torch::cat({text, text.new_zeros({text.size(0), cfg_.text_len - text.size(1), text.size(2)})}, 1);
  return ce.text_embedder->linear_2(torch::gelu(ce.text_embedder->linear_1(padded), "tanh"));  // [B, Lt, D]
}

std::pair<at::Tensor, at::Tensor> VideoDiTImpl::cross_kv(WanBlockImpl& block, const at::Tensor& context) {
  auto& attn = *block.attn2;
  const int64_t b = context.size(0), l = context.size(1), n = attn.heads, d = cfg_.head_dim();
  auto k = attn.to_k(context);
  if (attn.norm_k) k = attn.norm_k(k);
  auto v = attn.to_v(context);
  return {k.view({b, l, n, d}).transpose(1, 2), v.view({b, l, n, d}).transpose(1, 2)};  // [B, N, L, d]
}

void VideoDiTImpl::cache_cross_kv(DiTState& state) {
  state.cross_k.clear();
  state.cross_v.clear();
  for (const auto& module : *blocks) {
    auto [k, v] = cross_kv(*module->as<WanBlock>(), state.context);
    state.cross_k.push_back(std::move(k));
    state.cross_v.push_back(std::move(v));
  }
}

at::Tensor VideoDiTImpl::self_attention(WanBlockImpl& block, int64_t layer, const at::Tensor& x,
                                        const DiTState& state, AttentionHook* hook) {
  auto& attn = *block.attn1;
  const int64_t b = x.size(0), s = x.size(1), n = attn.heads, d = cfg_.head_dim();
  auto q = attn.to_q(x);
  auto k = attn.to_k(x);
  if (attn.norm_q) {
    q = attn.norm_q(q);
    k = attn.norm_k(k);
  }
  const bool indexed = state.token_index.defined();
  auto cos = indexed ? state.rope_cos.index_select(0, state.token_index)
                     : state.rope_cos.slice(0, state.token_begin, state.token_begin + s);
  auto sin = indexed ? state.rope_sin.index_select(0, state.token_index)
                     : state.rope_sin.slice(0, state.token_begin, state.token_begin + s);
  q = rope_apply(q.view({b, s, n, d}), cos, sin);  // [B, S, N, d]
  k = rope_apply(k.view({b, s, n, d}), cos, sin);
  auto v = attn.to_v(x).view({b, s, n, d});
  if (hook != nullptr) {
    if (indexed) hook->self_attention_kv_at(layer, state.token_index, k, v);
    else hook->self_attention_kv(layer, state.token_begin, k, v);
  }
  auto out = dense_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2));  // [B, N, S, d]
  return attn.to_out[0]->as<torch::nn::Linear>()->forward(out.transpose(1, 2).reshape({b, s, n * d}));
}

at::Tensor VideoDiTImpl::cross_attention(WanBlockImpl& block, int64_t layer, const at::Tensor& x,
                                         const DiTState& state) {
  auto& attn = *block.attn2;
  const int64_t b = x.size(0), s = x.size(1), n = attn.heads, d = cfg_.head_dim();
  auto q = attn.to_q(x);
  if (attn.norm_q) q = attn.norm_q(q);
  const auto layer_index = static_cast<size_t>(layer);
  auto [k, v] = layer_index < state.cross_k.size() && layer_index < state.cross_v.size()
                    ? std::make_pair(state.cross_k[layer_index], state.cross_v[layer_index])
                    : cross_kv(block, state.context);  // [B, N, L, d]
  auto out = dense_attention(q.view({b, s, n, d}).transpose(1, 2), k, v);
  return attn.to_out[0]->as<torch::nn::Linear>()->forward(out.transpose(1, 2).reshape({b, s, n * d}));
}

void VideoDiTImpl::run_blocks(int64_t first, int64_t last, DiTState& state, AttentionHook* hook) {
  TORCH_CHECK(0 <= first && first <= last && last <= cfg_.num_layers, "block range [", first, ", ", last,
              ") outside [0, ", cfg_.num_layers, ")");
  const FrameView fv = frame_view(state);
  at::Tensor x = state.tokens;
  if (first == 0 && cfg_.abs_pos && first < last) {
    at::Tensor pos = position_embedding(state.grid).to(x.device(), x.scalar_type());  // [S, D]
    if (state.token_index.defined()) pos = pos.index_select(0, state.token_index.to(x.device()));
    else pos = pos.narrow(0, state.token_begin, x.size(1));
    x = x + pos.unsqueeze(0);
  }
  for (int64_t i = first; i < last; ++i) {
    auto& block = *blocks[i]->as<WanBlock>();
    auto e = (block.scale_shift_table.unsqueeze(0) + state.time_mod).unbind(2);  // 6 x [B, Ft, D]
    auto y = self_attention(block, i, modulate(layer_norm(x, cfg_.eps), e[0], e[1], fv), state, hook);
    x = gated_add(x, y, e[2], fv);
    auto xn = block.norm2 ? block.norm2(x) : x;
    x = x + cross_attention(block, i, xn, state);
    y = block.ffn(modulate(layer_norm(x, cfg_.eps), e[3], e[4], fv));
    x = gated_add(x, y, e[5], fv);
  }
  state.tokens = x;
}

at::Tensor VideoDiTImpl::head_tokens(const DiTState& state) {
  const FrameView fv = frame_view(state);
  auto e = (scale_shift_table.unsqueeze(0) + state.time_emb.unsqueeze(2)).unbind(2);  // 2 x [B, Ft, D]
  return proj_out(modulate(layer_norm(state.tokens, cfg_.eps), e[0], e[1], fv));
}

at::Tensor VideoDiTImpl::head(const DiTState& state) {
  TORCH_CHECK(state.token_begin == 0 && state.tokens.size(1) == state.grid.tokens(),
              "head() needs the full token sequence; use head_tokens() for a patch");
  return refine(unpatchify(head_tokens(state), state.grid));
}

at::Tensor VideoDiTImpl::unpatchify(const at::Tensor& out_tokens, const TokenGrid& box) {
  const auto& p = cfg_.patch;
  const int64_t b = out_tokens.size(0), c = cfg_.out_channels;
  TORCH_CHECK(out_tokens.dim() == 3 && out_tokens.size(1) == box.tokens() &&
                  out_tokens.size(2) == cfg_.patch_volume() * c,
              "head output ", out_tokens.sizes(), " does not fit a box of ", box.f, "x", box.h, "x", box.w, " tokens");
  return out_tokens.view({b, box.f, box.h, box.w, p[0], p[1], p[2], c})
      .permute({0, 7, 1, 4, 2, 5, 3, 6})
      .reshape({b, c, box.f * p[0], box.h * p[1], box.w * p[2]});
}

at::Tensor VideoDiTImpl::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& text) {
  auto state = embed(x, t, text);
  run_blocks(0, cfg_.num_layers, state);
  return head(state);
}

double VideoDiTImpl::forward_flops(int64_t frames, int64_t height, int64_t width) const {
  const double s = static_cast<double>(frames / cfg_.patch[0]) * (height / cfg_.patch[1]) * (width / cfg_.patch[2]);
  const double d = cfg_.dim, l = cfg_.text_len, f = cfg_.ffn_dim;
  // Per block: q,k,v,o (4 s d^2), attention scores and values (2 s^2 d), cross-attention q,o
  // (2 s d^2) and k,v of the text (2 l d^2), its scores and values (2 s l d), the FFN (2 s d f).
  const double block = 4 * s * d * d + 2 * s * s * d + 2 * s * d * d + 2 * l * d * d + 2 * s * l * d + 2 * s * d * f;
  const double patch = s * d * cfg_.patch_in_channels() * cfg_.patch_volume();
  const double out = s * d * cfg_.out_channels * cfg_.patch_volume();
  const double pixels = static_cast<double>(frames) * height * width;
  const double convs = pixels * 9 * (cfg_.in_channels * cfg_.stem_channels + 2 * cfg_.out_channels * cfg_.refine_channels);
  return 2.0 * (cfg_.num_layers * block + patch + out + convs);  // multiply-accumulate = 2 flops
}

}  // namespace reel::models
