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

}  // namespace reel
