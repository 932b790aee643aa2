// safetensors files: read (memory-mapped, validated) and write (through a temporary file).
//
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the data. Offsets count
// from the first byte after the header.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/expected.hpp"

namespace reel::models {

struct TensorRecord {
  std::string name;
  std::string dtype;            // as in the file: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL
  std::vector<int64_t> shape;
  uint64_t begin = 0;           // byte offsets into the data section
  uint64_t end = 0;
};

class SafeTensors {
 public:
  // Maps the file and validates the header: JSON syntax, known dtypes, byte sizes that match
  // the shapes, offsets inside the file that neither overlap nor leave gaps. Errors name the
  // file and the problem (not_found, io_error, corrupt_data, unsupported).
  [[nodiscard]] static Expected<SafeTensors> open(const std::string& path);

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::vector<std::string> names() const;
  [[nodiscard]] bool contains(const std::string& name) const { return index_.count(name) != 0; }
  [[nodiscard]] const TensorRecord* record(const std::string& name) const;
  [[nodiscard]] const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A tensor that owns a copy of the data, in the file's dtype (float types stay what they are;
  // convert with .to(at::kFloat)). not_found when the name is absent.
  [[nodiscard]] Expected<at::Tensor> get(const std::string& name) const;

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<const Mapping> map_;
  const uint8_t* data_ = nullptr;  // first byte after the header
  std::vector<TensorRecord> records_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// corrupt_data, naming the file and the tensor, when `t` (tensor `name` of `file`) holds a NaN or
// an infinity: weights like that would show up only later, as a video of NaNs.
[[nodiscard]] Status check_finite(const SafeTensors& file, const std::string& name, const at::Tensor& t);

// Copies tensor `name` of `file` into `param` (converted to param's dtype). corrupt_data naming
// the file and the tensor when the file lacks it, its shape is not param's (the message says
// "`owner` expects ..."), it is not floating point, or it holds NaN or infinity.
[[nodiscard]] Status copy_weight(const SafeTensors& file, const std::string& name, const at::Tensor& param,
                                 const std::string& owner);

// Writes tensors (any of the supported dtypes; contiguous copies are made as needed) in the
// order given, with optional string metadata. Written to `<path>.tmp` and renamed, so a failed
// write leaves no file at `path`.
[[nodiscard]] Status save_safetensors(const std::string& path,
                                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                      const std::map<std::string, std::string>& metadata = {});

}  // namespace reel::models
