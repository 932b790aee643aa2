// Making a file's bytes survive a crash or power loss: fsync of a file, and of the folder that
// holds a name just created or renamed. Header-only (POSIX).
//
// Write-then-rename is atomic only for what the kernel has: without these calls a power loss
// can leave the new name pointing at an empty or partial file. The pattern:
//   write TMP; sync_file(TMP); rename(TMP, PATH); sync_parent(PATH);
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "base/expected.hpp"

namespace reel {

// fsync() of the file at `path`. Errors: not_found when there is no such file, io_error.
[[nodiscard]] inline Status sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(errno == ENOENT ? Errc::not_found : Errc::io_error, path + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return make_error(Errc::io_error, path + ": fsync: " + std::strerror(err));
  return {};
}

// fsync() of the folder that holds `path` (its entry, after a create or rename). Best effort: some
// file systems cannot sync a folder, which is not an error.
inline void sync_parent(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  const int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

// Writes `bytes` to `path` so that no reader ever sees part of them and a failure leaves nothing:
// to `<target>.tmp`, fsynced, renamed over the target, its folder fsynced. The target is `path`,
// or, when `path` is a symlink, the file it points to (the link stays a link). A path that names
// something other than a regular file (a device such as /dev/stdout or /dev/null, a pipe) cannot
// be replaced by a rename: it is written in place. Errors: io_error, with the path and the reason.
[[nodiscard]] inline Status write_file_atomic(const std::string& path, std::string_view bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);  // follows symlinks
  const bool exists = fs::exists(status);
  auto write_all = [&](const std::string& to, int flags) -> Status {
    const int fd = ::open(to.c_str(), flags | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return make_error(Errc::io_error, "cannot write " + to + ": " + std::strerror(errno));
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = errno;
        ::close(fd);
        return make_error(Errc::io_error, "cannot write " + to + ": " + std::strerror(n < 0 ? err : ENOSPC));
      }
      done += static_cast<size_t>(n);
    }
    if (::close(fd) != 0) return make_error(Errc::io_error, "cannot write " + to + ": " + std::strerror(errno));
    return {};
  };
  if (exists && !fs::is_regular_file(status)) {
    if (fs::is_directory(status)) return make_error(Errc::io_error, "cannot write " + path + ": it is a folder");
    return write_all(path, 0);  // a device or a pipe
  }
  std::string target = path;
  if (fs::is_symlink(fs::symlink_status(path, ec))) {
    const auto resolved = fs::weakly_canonical(path, ec);
    if (ec) return make_error(Errc::io_error, "cannot resolve the link " + path + ": " + ec.message());
    target = resolved.string();
  }
  const std::string tmp = target + ".tmp";
  if (auto st = write_all(tmp, O_CREAT | O_TRUNC); !st) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (auto st = sync_file(tmp); !st) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return make_error(Errc::io_error, "cannot write " + path + ": " + std::strerror(err));
  }
  sync_parent(target);
  return {};
}

}  // namespace reel
