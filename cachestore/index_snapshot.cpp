#include "cachestore/index_snapshot.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

#include "base/durable.hpp"
#include "codecs/checksum.hpp"

namespace reel::cachestore::detail {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMagic = "reel-ann-snapshot 2";
constexpr std::string_view kMagicPrefix = "reel-ann-snapshot ";
constexpr const char* kManifest = "MANIFEST";
constexpr const char* kCovered = "covered.bin";
constexpr uint64_t kDigestSeed = 0x616e6e2d64696731ULL;
constexpr uint64_t kFileSeed = 0x616e6e2d66696c31ULL;
constexpr uint64_t kManifestSeed = 0x616e6e2d6d616e31ULL;

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
void put_str(std::string& out, const std::string& s) {
  put_u64(out, s.size());
  out.append(s);
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

// Size and checksum of a file's bytes (read in 1 MiB pieces), and fsync()s it when asked.
Expected<std::pair<uint64_t, uint64_t>> file_checksum(const std::string& path, bool sync) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(errno == ENOENT ? Errc::not_found : Errc::io_error, path + ": " + std::strerror(errno));
  std::string buf(1 << 20, '\0');
  uint64_t size = 0, sum = kFileSeed;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return make_error(Errc::io_error, path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    sum = codecs::checksum64(std::string_view(buf.data(), static_cast<size_t>(n)), sum);
    size += static_cast<uint64_t>(n);
  }
  if (sync && ::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    return make_error(Errc::io_error, path + ": fsync: " + std::strerror(e));
  }
  ::close(fd);
  return std::pair<uint64_t, uint64_t>{size, sum};
}

Status write_synced(const std::string& path, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(Errc::io_error, path + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return make_error(Errc::io_error, path + ": " + std::strerror(e));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    return make_error(Errc::io_error, path + ": fsync: " + std::strerror(e));
  }
  ::close(fd);
  return {};
}

struct ManifestIndex {
  uint64_t key_hash = 0;
  int kind = 0;
  std::string file;
  uint64_t size = 0;
  uint64_t checksum = 0;
};

}  // namespace

uint64_t entry_hash(const EntryMeta& m) {
  std::string buf;
  put_u64(buf, m.id);
  put_u64(buf, m.key_hash);
  put_u64(buf, static_cast<uint64_t>(m.kind));
  put_u64(buf, static_cast<uint64_t>(m.created_unix_ms));
  put_str(buf, m.key);
  put_str(buf, m.phrase);
  put_str(buf, m.prompt);
  return codecs::checksum64(buf, kDigestSeed);
}

Status save_snapshot(const std::string& cache_dir, int dim, const std::map<uint64_t, uint64_t>& covered,
                     const std::map<IndexKey, const AnnIndex*>& indexes) {
  const fs::path final_dir = fs::path(cache_dir) / kSnapshotDir;
  const fs::path tmp_dir = fs::path(cache_dir) / (std::string(kSnapshotDir) + ".tmp");
  std::error_code ec;
  fs::remove_all(tmp_dir, ec);
  if (!fs::create_directories(tmp_dir, ec) || ec) {
    return make_error(Errc::io_error, "cannot create " + tmp_dir.string() + ": " + ec.message());
  }
  std::ostringstream manifest;
  manifest << kMagic << "\n";
  manifest << "dim " << dim << "\n";
  {
    std::string bytes;
    bytes.reserve(8 + 16 * covered.size());
    put_u64(bytes, covered.size());
    for (const auto& [id, hash] : covered) {
      put_u64(bytes, id);
      put_u64(bytes, hash);
    }
    const std::string path = (tmp_dir / kCovered).string();
    REEL_RETURN_IF_ERROR(write_synced(path, bytes));
    manifest << "covered " << kCovered << " " << bytes.size() << " " << hex(codecs::checksum64(bytes, kFileSeed))
             << "\n";
  }
  int n = 0;
  for (const auto& [key, index] : indexes) {
    if (index == nullptr || index->size() == 0) continue;
    const std::string name = std::to_string(n++) + ".hnsw";
    const std::string path = (tmp_dir / name).string();
    REEL_RETURN_IF_ERROR(index->save(path));
    auto sum = file_checksum(path, /*sync=*/true);
    if (!sum.ok()) return sum.error();
    manifest << "index " << hex(key.first) << " " << static_cast<int>(key.second) << " " << name << " "
             << sum->first << " " << hex(sum->second) << "\n";
  }
  std::string text = manifest.str();
  text += "checksum " + hex(codecs::checksum64(text, kManifestSeed)) + "\n";
  REEL_RETURN_IF_ERROR(write_synced((tmp_dir / kManifest).string(), text));
  sync_parent((tmp_dir / kManifest).string());
  fs::remove_all(final_dir, ec);
  if (ec) return make_error(Errc::io_error, "cannot remove " + final_dir.string() + ": " + ec.message());
  fs::rename(tmp_dir, final_dir, ec);
  if (ec) return make_error(Errc::io_error, "cannot rename " + tmp_dir.string() + ": " + ec.message());
  sync_parent(final_dir.string());
  return {};
}

Expected<Snapshot> load_snapshot(const std::string& cache_dir, int dim) {
  const fs::path dir = fs::path(cache_dir) / kSnapshotDir;
  const std::string manifest_path = (dir / kManifest).string();
  std::ifstream in(manifest_path, std::ios::binary);
  if (!in) return make_error(Errc::not_found, "no saved index");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bad = [&](const std::string& why) { return make_error(Errc::corrupt_data, "saved index is damaged: " + why); };

  // The first line names the format (checked first: another version may checksum otherwise);
  // the last line checksums everything before it.
  const std::string first = text.substr(0, text.find('\n'));
  if (first != kMagic && first.rfind(kMagicPrefix, 0) == 0 && first.size() < 40) {
    return make_error(Errc::invalid_argument, "saved index has another format (" + first + ")");
  }
  const size_t last = text.rfind("checksum ");
  if (last == std::string::npos || text.size() < last + 9 + 16 + 1 || text.back() != '\n') return bad("manifest truncated");
  const std::string body = text.substr(0, last);
  if (text.substr(last) != "checksum " + hex(codecs::checksum64(body, kManifestSeed)) + "\n") {
    return bad("manifest checksum mismatch");
  }
  std::istringstream lines(body);
  std::string line;
  if (!std::getline(lines, line) || line != kMagic) return bad("not a reel index manifest");
  int saved_dim = 0;
  std::optional<ManifestIndex> covered_file;
  std::vector<ManifestIndex> files;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string word;
    f >> word;
    if (word == "dim") {
      f >> saved_dim;
    } else if (word == "covered") {
      ManifestIndex m;
      f >> m.file >> m.size >> std::hex >> m.checksum;
      if (m.file != kCovered) return bad("bad covered line");
      covered_file = m;
    } else if (word == "index") {
      ManifestIndex m;
      f >> std::hex >> m.key_hash >> std::dec >> m.kind >> m.file >> m.size >> std::hex >> m.checksum;
      if (m.kind < 0 || m.kind > 2 || m.file.empty() || m.file.find('/') != std::string::npos) return bad("bad index line");
      files.push_back(m);
    } else {
      return bad("unknown manifest line");
    }
    if (f.fail()) return bad("malformed manifest line");
  }
  if (saved_dim != dim) {
    return make_error(Errc::invalid_argument, "saved index is for " + std::to_string(saved_dim) +
                                                  "-d vectors, the embedder gives " + std::to_string(dim));
  }
  if (!covered_file) return bad("manifest lists no covered entries");
  Snapshot out;
  out.dim = dim;
  {
    const std::string path = (dir / kCovered).string();
    std::ifstream cf(path, std::ios::binary);
    if (!cf) return bad(std::string(kCovered) + " unreadable");
    std::string bytes((std::istreambuf_iterator<char>(cf)), std::istreambuf_iterator<char>());
    if (bytes.size() != covered_file->size) {
      return bad(std::string(kCovered) + " has " + std::to_string(bytes.size()) + " bytes, expected " +
                 std::to_string(covered_file->size));
    }
    if (codecs::checksum64(bytes, kFileSeed) != covered_file->checksum) return bad(std::string(kCovered) + " checksum mismatch");
    if (bytes.size() < 8 || (bytes.size() - 8) % 16 != 0 || get_u64(bytes.data()) != (bytes.size() - 8) / 16) {
      return bad(std::string(kCovered) + " malformed");
    }
    for (size_t at = 8; at < bytes.size(); at += 16) out.covered[get_u64(bytes.data() + at)] = get_u64(bytes.data() + at + 8);
  }
  for (const auto& m : files) {
    const std::string path = (dir / m.file).string();
    auto sum = file_checksum(path, /*sync=*/false);
    if (!sum.ok()) return bad(m.file + " unreadable: " + sum.error().message);
    if (sum->first != m.size) return bad(m.file + " has " + std::to_string(sum->first) + " bytes, expected " + std::to_string(m.size));
    if (sum->second != m.checksum) return bad(m.file + " checksum mismatch");
    auto index = AnnIndex::load(path, dim);
    if (!index.ok()) return bad(index.error().message);
    IndexKey key{m.key_hash, static_cast<EntryKind>(m.kind)};
    if (out.indexes.contains(key)) return bad("index listed twice");
    out.indexes[key] = std::move(*index);
  }
  return out;
}

}  // namespace reel::cachestore::detail
