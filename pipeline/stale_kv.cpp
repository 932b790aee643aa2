#include "pipeline/stale_kv.hpp"

#include <torch/torch.h>

namespace reel::pipeline {

StaleKV::StaleKV(int64_t first_layer, int64_t last_layer, int64_t sequence_length)
    : first_(first_layer), sequence_length_(sequence_length) {
  TORCH_CHECK(0 <= first_layer && first_layer <= last_layer, "bad layer range [", first_layer, ", ", last_layer, ")");
  TORCH_CHECK(sequence_length > 0, "sequence length must be positive, got ", sequence_length);
  layers_.resize(static_cast<size_t>(last_layer - first_layer));
}

void StaleKV::reset(int64_t sequence_length) {
  TORCH_CHECK(sequence_length > 0, "sequence length must be positive, got ", sequence_length);
  sequence_length_ = sequence_length;
  for (auto& buf : layers_) buf = Layer{};
}

StaleKV::Layer& StaleKV::layer_at(int64_t layer) {
  TORCH_CHECK(layer >= first_ && layer < last_layer(), "layer ", layer, " is not in this stage's blocks [", first_,
              ", ", last_layer(), ")");
  return layers_[static_cast<size_t>(layer - first_)];
}

const StaleKV::Layer& StaleKV::layer_at(int64_t layer) const {
  TORCH_CHECK(layer >= first_ && layer < last_layer(), "layer ", layer, " is not in this stage's blocks [", first_,
              ", ", last_layer(), ")");
  return layers_[static_cast<size_t>(layer - first_)];
}

void StaleKV::prepare(Layer& buf, const at::Tensor& k, const at::Tensor& v) const {
  TORCH_CHECK(k.dim() == 4 && v.dim() == 4 && k.size(0) == v.size(0) && k.size(1) == v.size(1),
              "k and v must be [B, S_run, N, d], got ", k.sizes(), " and ", v.sizes());
  if (!buf.k.defined()) {
    buf.k = torch::zeros({k.size(0), sequence_length_, k.size(2), k.size(3)}, k.options());
    buf.v = torch::zeros({v.size(0), sequence_length_, v.size(2), v.size(3)}, v.options());
    buf.visited = torch::zeros({sequence_length_}, torch::kBool);
    buf.visited_count = 0;
    return;
  }
  TORCH_CHECK(k.size(0) == buf.k.size(0) && k.size(2) == buf.k.size(2) && k.size(3) == buf.k.size(3) &&
                  v.size(2) == buf.v.size(2) && v.size(3) == buf.v.size(3),
              "k/v ", k.sizes(), " do not match the stale buffer ", buf.k.sizes(), " (reset between requests)");
}

void StaleKV::substitute(const Layer& buf, at::Tensor& k, at::Tensor& v) {
  if (buf.visited_count == buf.k.size(1)) {
    k = buf.k;
    v = buf.v;
    return;
  }
  auto index = buf.visited.nonzero().squeeze(1);  // [visited] increasing
  k = buf.k.index_select(1, index);
  v = buf.v.index_select(1, index);
}

void StaleKV::self_attention_kv(int64_t layer, int64_t token_begin, at::Tensor& k, at::Tensor& v) {
  auto& buf = layer_at(layer);
  prepare(buf, k, v);
  const int64_t end = token_begin + k.size(1);
  TORCH_CHECK(token_begin >= 0 && end <= sequence_length_, "tokens [", token_begin, ", ", end,
              ") outside the sequence of ", sequence_length_);
  buf.k.slice(1, token_begin, end).copy_(k);
  buf.v.slice(1, token_begin, end).copy_(v);
  auto seen = buf.visited.slice(0, token_begin, end);
  if (buf.visited_count < sequence_length_) {
    buf.visited_count += (end - token_begin) - seen.sum().item<int64_t>();
    seen.fill_(true);
  }
  substitute(buf, k, v);
}

void StaleKV::self_attention_kv_at(int64_t layer, const at::Tensor& token_index, at::Tensor& k, at::Tensor& v) {
  auto& buf = layer_at(layer);
  prepare(buf, k, v);
  TORCH_CHECK(token_index.dim() == 1 && token_index.size(0) == k.size(1), "token_index ", token_index.sizes(),
              " does not match k ", k.sizes());
  buf.k.index_copy_(1, token_index, k);
  buf.v.index_copy_(1, token_index, v);
  if (buf.visited_count < sequence_length_) {
    buf.visited.index_fill_(0, token_index, true);
    buf.visited_count = buf.visited.sum().item<int64_t>();
  }
  substitute(buf, k, v);
}

const at::Tensor& StaleKV::keys(int64_t layer) const { return layer_at(layer).k; }
const at::Tensor& StaleKV::values(int64_t layer) const { return layer_at(layer).v; }
int64_t StaleKV::visited_tokens(int64_t layer) const { return layer_at(layer).visited_count; }

bool StaleKV::visited(int64_t layer, int64_t token) const {
  const auto& buf = layer_at(layer);
  if (!buf.visited.defined()) return false;
  TORCH_CHECK(token >= 0 && token < sequence_length_, "token ", token, " outside the sequence");
  return buf.visited[token].item<bool>();
}

int64_t StaleKV::bytes() const {
  int64_t total = 0;
  for (const auto& buf : layers_) {
    if (buf.k.defined()) total += static_cast<int64_t>(buf.k.nbytes() + buf.v.nbytes());
  }
  return total;
}

}  // namespace reel::pipeline
