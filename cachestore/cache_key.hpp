// The compatibility key of a cached latent: everything that makes two latents unusable for each
// other. Two requests may share cache entries only when their keys are equal, field for field;
// similarity of prompts is judged only among entries with the same key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace reel::cachestore {

struct CompatKey {
  std::string model;         // model name, e.g. "wan2.1-t2v-1.3b"
  std::string weights_hash;  // hash of the weights file: a fine-tune is another model
  std::string scheduler;     // e.g. "flow_euler"
  int steps = 0;             // denoising steps of the whole run: step K means K of these done
  double shift = 0.0;        // sigma-schedule shift
  int height = 0;            // in pixels
  int width = 0;             // in pixels
  int frames = 0;
  double guidance = 0.0;     // classifier-free guidance scale
  std::string prediction;    // what the model predicts, e.g. "flow", "eps", "v"
  std::string embedder;      // prompt embedder name and version: vectors from two differ
  std::string tenant;        // isolation namespace; "" = the shared namespace

  // One string naming every field, the same on every machine and in every build: it is stored
  // with each entry. Strings are length-prefixed (no separator can be forged from a field's
  // text); doubles are written in their shortest exact form, with -0 written as 0. A change to
  // the field list bumps the leading version, so that entries written under the old list are
  // never matched by keys built under the new one.
  [[nodiscard]] std::string canonical() const;

  // compat_hash(canonical()).
  [[nodiscard]] uint64_t hash() const;

  friend bool operator==(const CompatKey&, const CompatKey&) = default;
};

// The 64-bit hash of a canonical key string (checksum64 with a seed of its own). The entry store
// computes EntryMeta::key_hash with it, so a key and its hash can never disagree.
[[nodiscard]] uint64_t compat_hash(std::string_view canonical);

}  // namespace reel::cachestore
