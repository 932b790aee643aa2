// base/allocator.hpp: large buffers come from the heap and stay there when freed, instead of
// being mapped and unmapped each time (fresh pages fault in on first touch: what slowed the
// trainer by 1.7x).
#include "base/allocator.hpp"

#include <gtest/gtest.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstdlib>
#include <cstring>

namespace reel {
namespace {

TEST(KeepFreedMemory, LargeBuffersComeFromTheHeapAndStayAfterFree) {
#if defined(__GLIBC__)
  constexpr size_t kBytes = size_t{96} << 20;  // above glibc's largest mmap threshold (32 MiB)
  keep_freed_memory();
  auto* p = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, kBytes);
  const auto held = mallinfo2();
  EXPECT_LT(held.hblkhd, kBytes) << "the buffer was mapped on its own";  // glibc's default maps it
  std::free(p);
  const auto freed = mallinfo2();
  EXPECT_GE(freed.arena, kBytes) << "the heap was trimmed";  // so the next buffer reuses its pages
#else
  GTEST_SKIP() << "glibc only";
#endif
}

}  // namespace
}  // namespace reel
