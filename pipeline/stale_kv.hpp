// PipeFusion's stale K/V buffers: per pipeline stage, per self-attention layer of the stage's
// blocks, the keys and values of the whole token sequence. A patch that passes through the
// stage writes its fresh k/v into the buffer in place and attends to the whole buffer, in which
// the patches not yet recomputed this step still hold the previous step's k/v (stale).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "models/dit.hpp"

namespace reel::pipeline {

class StaleKV : public models::AttentionHook {
 public:
  // Buffers for the self-attention layers of blocks [first_layer, last_layer) over a sequence
  // of `sequence_length` tokens. Nothing is allocated until the first write.
  StaleKV(int64_t first_layer, int64_t last_layer, int64_t sequence_length);

  // Forgets every buffer (a new request): all tokens are unvisited again and the buffers are
  // allocated again, with the batch, heads and dtype of the next write.
  void reset(int64_t sequence_length);

  // AttentionHook: writes k and v ([B, S_run, N, d]) of the tokens at token_begin (or at
  // token_index) into layer `layer`'s buffers, then replaces them with the buffers: the whole
  // sequence [B, S, N, d] once every token has been written at least once (the steady state),
  // else only the tokens written so far, in sequence order. The latter happens only without
  // warm-up (W = 0), in the first step, when later patches have no k/v at all yet: attention
  // then sees the patches already visited in that step.
  // Throws c10::Error for a layer outside the stage, a run outside the sequence, or k/v whose
  // batch, heads or head size differ from the buffer's.
  void self_attention_kv(int64_t layer, int64_t token_begin, at::Tensor& k, at::Tensor& v) override;
  void self_attention_kv_at(int64_t layer, const at::Tensor& token_index, at::Tensor& k, at::Tensor& v) override;

  [[nodiscard]] int64_t first_layer() const { return first_; }
  [[nodiscard]] int64_t last_layer() const { return first_ + static_cast<int64_t>(layers_.size()); }
  [[nodiscard]] int64_t sequence_length() const { return sequence_length_; }
  // The buffers of a layer of this stage, [B, S, N, d]; undefined before its first write.
  [[nodiscard]] const at::Tensor& keys(int64_t layer) const;
  [[nodiscard]] const at::Tensor& values(int64_t layer) const;
  // Tokens of `layer` written at least once since the last reset.
  [[nodiscard]] int64_t visited_tokens(int64_t layer) const;
  [[nodiscard]] bool visited(int64_t layer, int64_t token) const;
  // Bytes the buffers hold (K and V of every layer).
  [[nodiscard]] int64_t bytes() const;

 private:
  struct Layer {
    at::Tensor k, v;      // [B, S, N, d]
    at::Tensor visited;   // [S] bool
    int64_t visited_count = 0;
  };
  Layer& layer_at(int64_t layer);
  const Layer& layer_at(int64_t layer) const;
  // Allocates the buffers on the first write and checks later writes against them.
  void prepare(Layer& buf, const at::Tensor& k, const at::Tensor& v) const;
  // Hands attention the buffers (or the visited part of them).
  static void substitute(const Layer& buf, at::Tensor& k, at::Tensor& v);

  int64_t first_ = 0;
  int64_t sequence_length_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace reel::pipeline
