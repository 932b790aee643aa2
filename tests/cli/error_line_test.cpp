// one_error_line(): what reaches the user of an error is one line.
#include "cli/error_line.hpp"

#include <gtest/gtest.h>

#include <string>

namespace reel::cli {
namespace {

TEST(OneErrorLine, DropsTheBacktraceLibTorchAppends) {
  const std::string torch_error =
      "[enforce fail at alloc_cpu.cpp:75] data. DefaultCPUAllocator: not enough memory: you tried to allocate "
      "25769803776 bytes.\nException raised from alloc_cpu at ../c10/core/impl/alloc_cpu.cpp:75 (most recent call "
      "first):\nframe #0: c10::Error::Error(...) + 0x8c (0x7f in /usr/lib/libc10.so)\nframe #1: ...";
  const std::string line = one_error_line(torch_error);
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  EXPECT_NE(line.find("not enough memory"), std::string::npos) << line;
  EXPECT_EQ(one_error_line("bad thing\nframe #0: f()"), "bad thing");
  EXPECT_EQ(one_error_line("a plain message"), "a plain message");
}

TEST(OneErrorLine, CutsAHugeMessageAndSaysHowMuchWasCut) {
  const std::string line = one_error_line("x" + std::string(5000, 'y'));
  EXPECT_EQ(line.substr(0, 1000), "x" + std::string(999, 'y'));
  EXPECT_NE(line.find("(4001 more bytes)"), std::string::npos) << line.substr(1000);
}

}  // namespace
}  // namespace reel::cli
