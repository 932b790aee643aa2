#include "models/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/durable.hpp"
#include "models/detail/json.hpp"

namespace reel::models {

namespace {

struct DTypeInfo {
  const char* name;
  at::ScalarType type;
  int64_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},  {"BF16", at::kBFloat16, 2},
    {"F64", at::kDouble, 8}, {"I64", at::kLong, 8}, {"I32", at::kInt, 4},
    {"I16", at::kShort, 2},  {"I8", at::kChar, 1},  {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
};

const DTypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DTypeInfo* dtype_by_type(at::ScalarType type) {
  for (const auto& d : kDTypes)
    if (type == d.type) return &d;
  return nullptr;
}

Error corrupt(const std::string& path, const std::string& what) {
  return make_error(Errc::corrupt_data, path + ": " + what);
}

// Largest header we accept; real checkpoints have headers of a few MB at most.
constexpr uint64_t kMaxHeader = 100ull << 20;

}  // namespace

struct SafeTensors::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr != nullptr && addr != MAP_FAILED) munmap(addr, size);
  }
};

Expected<SafeTensors> SafeTensors::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Errc code = errno == ENOENT ? Errc::not_found : Errc::io_error;
    return make_error(code, path + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    // A folder or a device given as weights is the caller's mistake, not a failing disk.
    return make_error(Errc::invalid_argument, path + ": not a regular file");
  }
  auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    return corrupt(path, "file is " + std::to_string(file_size) + " bytes, too short for a header");
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->size = file_size;
  mapping->addr = mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping->addr == MAP_FAILED) return make_error(Errc::io_error, path + ": mmap failed: " + std::strerror(errno));

  const auto* bytes = static_cast<const uint8_t*>(mapping->addr);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeader || header_len > file_size - 8)
    return corrupt(path, "header length " + std::to_string(header_len) + " exceeds the file size " +
                             std::to_string(file_size) + " (truncated or not a safetensors file)");

  auto json = detail::parse_json(std::string_view(reinterpret_cast<const char*>(bytes + 8), header_len));
  if (!json) return corrupt(path, "header: " + json.error().message);
  if (json->kind != detail::Json::Kind::object) return corrupt(path, "header is not a JSON object");

  SafeTensors out;
  out.path_ = path;
  out.map_ = mapping;
  out.data_ = bytes + 8 + header_len;
  const uint64_t data_size = file_size - 8 - header_len;

  for (const auto& [name, entry] : json->object) {
    if (name == "__metadata__") {
      if (entry.kind != detail::Json::Kind::object) return corrupt(path, "__metadata__ is not an object");
      for (const auto& [k, v] : entry.object) {
        if (v.kind != detail::Json::Kind::string) return corrupt(path, "metadata value '" + k + "' is not a string");
        out.metadata_[k] = v.string;
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (entry.kind != detail::Json::Kind::object) return corrupt(path, where + "entry is not an object");
    const auto* dtype = entry.find("dtype");
    const auto* shape = entry.find("shape");
    const auto* offsets = entry.find("data_offsets");
    if (dtype == nullptr || dtype->kind != detail::Json::Kind::string) return corrupt(path, where + "missing dtype");
    if (shape == nullptr || shape->kind != detail::Json::Kind::array) return corrupt(path, where + "missing shape");
    if (offsets == nullptr || offsets->kind != detail::Json::Kind::array || offsets->array.size() != 2)
      return corrupt(path, where + "data_offsets must be [begin, end]");
    const DTypeInfo* info = dtype_by_name(dtype->string);
    if (info == nullptr)
      return make_error(Errc::unsupported, path + ": " + where + "unknown dtype '" + dtype->string + "'");

    TensorRecord rec;
    rec.name = name;
    rec.dtype = dtype->string;
    uint64_t numel = 1;
    for (const auto& d : shape->array) {
      if (d.kind != detail::Json::Kind::number || !d.is_integer || d.integer < 0)
        return corrupt(path, where + "shape entries must be non-negative integers");
      rec.shape.push_back(d.integer);
      if (d.integer != 0 && numel > (1ull << 62) / static_cast<uint64_t>(d.integer))
        return corrupt(path, where + "shape too large");
      numel *= static_cast<uint64_t>(d.integer);
    }
    for (const auto& o : offsets->array)
      if (o.kind != detail::Json::Kind::number || !o.is_integer || o.integer < 0)
        return corrupt(path, where + "data_offsets must be non-negative integers");
    rec.begin = static_cast<uint64_t>(offsets->array[0].integer);
    rec.end = static_cast<uint64_t>(offsets->array[1].integer);
    if (rec.end < rec.begin) return corrupt(path, where + "data_offsets end before they begin");
    if (rec.end > data_size)
      return corrupt(path, where + "data_offsets [" + std::to_string(rec.begin) + ", " + std::to_string(rec.end) +
                               ") run past the end of the data (" + std::to_string(data_size) +
                               " bytes; file truncated?)");
    if (rec.end - rec.begin != numel * static_cast<uint64_t>(info->size))
      return corrupt(path, where + "byte size " + std::to_string(rec.end - rec.begin) + " does not match " +
                               dtype->string + " shape (" + std::to_string(numel * info->size) + " bytes)");
    out.records_.push_back(std::move(rec));
  }

  // The data section must be covered exactly, without overlaps or holes.
  std::vector<const TensorRecord*> sorted;
  for (const auto& r : out.records_) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  uint64_t cursor = 0;
  for (const auto* r : sorted) {
    if (r->begin != cursor)
      return corrupt(path, "tensor '" + r->name + "' starts at byte " + std::to_string(r->begin) + ", expected " +
                               std::to_string(cursor) + " (overlapping or missing data)");
    cursor = r->end;
  }
  if (cursor != data_size)
    return corrupt(path, "tensors cover " + std::to_string(cursor) + " bytes but the data section has " +
                             std::to_string(data_size));

  std::sort(out.records_.begin(), out.records_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (size_t i = 0; i < out.records_.size(); ++i) out.index_[out.records_[i].name] = i;
  return out;
}

std::vector<std::string> SafeTensors::names() const {
  std::vector<std::string> out;
  out.reserve(records_.size());
  for (const auto& r : records_) out.push_back(r.name);
  return out;
}

const TensorRecord* SafeTensors::record(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &records_[it->second];
}

Expected<at::Tensor> SafeTensors::get(const std::string& name) const {
  const TensorRecord* rec = record(name);
  if (rec == nullptr) return make_error(Errc::not_found, path_ + ": no tensor named '" + name + "'");
  const DTypeInfo* info = dtype_by_name(rec->dtype);
  at::Tensor t = torch::empty(rec->shape, torch::TensorOptions().dtype(info->type));
  if (rec->end > rec->begin) std::memcpy(t.data_ptr(), data_ + rec->begin, rec->end - rec->begin);
  return t;
}

Status check_finite(const SafeTensors& file, const std::string& name, const at::Tensor& t) {
  if (t.isfinite().all().item<bool>()) return {};
  return make_error(Errc::corrupt_data, file.path() + ": tensor '" + name + "' holds NaN or infinite values");
}

Status copy_weight(const SafeTensors& file, const std::string& name, const at::Tensor& param, const std::string& owner) {
  const TensorRecord* record = file.record(name);
  if (record == nullptr) return make_error(Errc::corrupt_data, file.path() + ": missing tensor '" + name + "'");
  if (at::IntArrayRef(record->shape) != param.sizes()) {
    std::ostringstream os;
    os << file.path() << ": tensor '" << name << "' has shape " << at::IntArrayRef(record->shape) << ", " << owner
       << " expects " << param.sizes();
    return make_error(Errc::corrupt_data, os.str());
  }
  auto tensor = file.get(name);
  if (!tensor) return tensor.error();
  if (!at::isFloatingType(tensor->scalar_type()))
    return make_error(Errc::corrupt_data, file.path() + ": tensor '" + name + "' is not floating point");
  REEL_RETURN_IF_ERROR(check_finite(file, name, *tensor));
  torch::NoGradGuard no_grad;
  param.copy_(tensor->to(param.scalar_type()));
  return {};
}

Status save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata) {
      if (!first) header += ",";
      first = false;
      header += detail::json_quote(k) + ":" + detail::json_quote(v);
    }
    header += "}";
  }
  std::vector<at::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || name.empty())
      return make_error(Errc::invalid_argument, path + ": invalid tensor name '" + name + "'");
    const DTypeInfo* info = dtype_by_type(tensor.scalar_type());
    if (info == nullptr)
      return make_error(Errc::unsupported, path + ": tensor '" + name + "' has an unsupported dtype");
    at::Tensor c = tensor.detach().to(at::kCPU).contiguous();
    uint64_t bytes = static_cast<uint64_t>(c.numel()) * info->size;
    header += std::string(first ? "" : ",") + detail::json_quote(name) + ":{\"dtype\":\"" + info->name + "\",\"shape\":[";
    first = false;
    for (int64_t i = 0; i < c.dim(); ++i) header += (i ? "," : "") + std::to_string(c.size(i));
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
    contiguous.push_back(std::move(c));
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return make_error(Errc::io_error, path + ": cannot write: " + std::strerror(errno));
    uint8_t len[8];
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& c : contiguous)
      out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      return make_error(Errc::io_error, path + ": write failed");
    }
  }
  // On disk before the name points at it: a power loss leaves the old file or the new, whole.
  if (auto st = sync_file(tmp); !st.ok()) {
    std::remove(tmp.c_str());
    return st;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return make_error(Errc::io_error, path + ": cannot rename temporary file: " + ec.message());
  }
  sync_parent(path);
  return {};
}

}  // namespace reel::models
