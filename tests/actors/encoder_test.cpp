#include "actors/encoder.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include <caf/all.hpp>

#include "actors/coordinator.hpp"
#include "actors/job_store.hpp"
#include "actors/messages.hpp"
#include "video/mp4_reader.hpp"

namespace reel::actors {
namespace {

namespace fs = std::filesystem;

class EncoderTest : public ::testing::Test {
 protected:
  EncoderTest() {
    configure(cfg_);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("reel_encoder_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static WireFrame frame(int w, int h, uint8_t shade) {
    WireFrame f;
    f.width = w;
    f.height = h;
    f.rgb.assign(static_cast<size_t>(w * h * 3), static_cast<char>(shade));
    return f;
  }
  EncodeSpec spec(const std::string& name) const {
    EncodeSpec s;
    s.path = (dir_ / name).string();
    s.width = 16;
    s.height = 16;
    s.fps = 8;
    s.upscale = 2;
    return s;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  fs::path dir_;
};

TEST(EncoderWireFrame, RoundTripsAFrameAndRejectsAShortOne) {
  video::Frame f{2, 1, {1, 2, 3, 4, 5, 6}};
  auto back = from_wire_frame(to_wire_frame(f));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->rgb, f.rgb);
  WireFrame w = to_wire_frame(f);
  w.rgb.pop_back();
  auto bad = from_wire_frame(w);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
}

TEST_F(EncoderTest, WritesAnMp4ThatProbeReadsWithEveryFrame) {
  caf::scoped_actor self{*sys_};
  auto enc = spawn_encoder(*sys_);
  const EncodeSpec s = spec("video.mp4");
  self->request(enc, caf::infinite, encode_open_atom::value, s)
      .receive([&](std::string& path) { EXPECT_EQ(path, s.path); }, [&](caf::error& e) { FAIL() << sys_->render(e); });
  EXPECT_FALSE(fs::exists(s.path)) << "the final path appears only at finish";
  for (int i = 0; i < 5; ++i) {
    self->request(enc, caf::infinite, encode_frame_atom::value, frame(16, 16, static_cast<uint8_t>(40 * i)))
        .receive([&](int64_t n) { EXPECT_EQ(n, i + 1); }, [&](caf::error& e) { FAIL() << sys_->render(e); });
  }
  self->request(enc, caf::infinite, encode_finish_atom::value)
      .receive([&](int64_t n) { EXPECT_EQ(n, 5); }, [&](caf::error& e) { FAIL() << sys_->render(e); });
  auto info = video::probe(s.path);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, 5);
  EXPECT_EQ(info->width, 32);  // upscaled by 2 in the encoder
  EXPECT_EQ(info->height, 32);
  EXPECT_FALSE(fs::exists(s.path + ".part"));
}

TEST_F(EncoderTest, FailedByABadFrameLeavesNoFile) {
  caf::scoped_actor self{*sys_};
  auto enc = spawn_encoder(*sys_);
  const EncodeSpec s = spec("bad.mp4");
  self->request(enc, caf::infinite, encode_open_atom::value, s)
      .receive([](std::string&) {}, [&](caf::error& e) { FAIL() << sys_->render(e); });
  self->request(enc, caf::infinite, encode_frame_atom::value, frame(16, 16, 100))
      .receive([](int64_t) {}, [&](caf::error& e) { FAIL() << sys_->render(e); });
  self->request(enc, caf::infinite, encode_frame_atom::value, frame(8, 16, 100))
      .receive([](int64_t) { FAIL() << "a frame of the wrong size was accepted"; },
               [&](caf::error& e) { EXPECT_EQ(from_caf_error(e).code, Errc::invalid_argument); });
  self->request(enc, caf::infinite, encode_finish_atom::value)
      .receive([](int64_t) { FAIL() << "a failed encoder finished"; }, [](caf::error&) {});
  EXPECT_FALSE(fs::exists(s.path));
  EXPECT_FALSE(fs::exists(s.path + ".part"));
  self->send_exit(enc, caf::exit_reason::user_shutdown);
}

TEST_F(EncoderTest, StoppedBeforeFinishLeavesNoFile) {
  caf::scoped_actor self{*sys_};
  auto enc = spawn_encoder(*sys_);
  const EncodeSpec s = spec("stopped.mp4");
  self->request(enc, caf::infinite, encode_open_atom::value, s)
      .receive([](std::string&) {}, [&](caf::error& e) { FAIL() << sys_->render(e); });
  self->request(enc, caf::infinite, encode_frame_atom::value, frame(16, 16, 7))
      .receive([](int64_t) {}, [&](caf::error& e) { FAIL() << sys_->render(e); });
  EXPECT_TRUE(fs::exists(s.path + ".part"));
  self->monitor(enc);
  self->send_exit(enc, caf::exit_reason::user_shutdown);
  self->receive([](caf::down_msg&) {});
  EXPECT_FALSE(fs::exists(s.path));
  EXPECT_FALSE(fs::exists(s.path + ".part"));
}

TEST_F(EncoderTest, AbortRemovesThePartBeforeItReplies) {
  caf::scoped_actor self{*sys_};
  auto enc = spawn_encoder(*sys_);
  const EncodeSpec s = spec("aborted.mp4");
  self->request(enc, caf::infinite, encode_open_atom::value, s)
      .receive([](std::string&) {}, [&](caf::error& e) { FAIL() << sys_->render(e); });
  for (int i = 0; i < 2; ++i) {
    self->request(enc, caf::infinite, encode_frame_atom::value, frame(16, 16, 9))
        .receive([](int64_t) {}, [&](caf::error& e) { FAIL() << sys_->render(e); });
  }
  self->request(enc, caf::infinite, encode_abort_atom::value)
      .receive([](int64_t discarded) { EXPECT_EQ(discarded, 2); }, [&](caf::error& e) { FAIL() << sys_->render(e); });
  EXPECT_FALSE(fs::exists(s.path));
  EXPECT_FALSE(fs::exists(s.path + ".part"));
}

TEST_F(EncoderTest, RejectsABadSpecAndAMissingFolder) {
  caf::scoped_actor self{*sys_};
  EncodeSpec s = spec("x.mp4");
  s.upscale = 0;
  self->request(spawn_encoder(*sys_), caf::infinite, encode_open_atom::value, s)
      .receive([](std::string&) { FAIL() << "upscale 0 accepted"; },
               [&](caf::error& e) { EXPECT_EQ(from_caf_error(e).code, Errc::invalid_argument); });
  s = spec("x.mp4");
  s.path = (dir_ / "no" / "such" / "x.mp4").string();
  self->request(spawn_encoder(*sys_), caf::infinite, encode_open_atom::value, s)
      .receive([](std::string&) { FAIL() << "a missing folder accepted"; },
               [&](caf::error& e) { EXPECT_EQ(from_caf_error(e).code, Errc::io_error) << sys_->render(e); });
}

TEST_F(EncoderTest, WritesTheContactSheetAtFinish) {
  caf::scoped_actor self{*sys_};
  auto enc = spawn_encoder(*sys_);
  EncodeSpec s = spec("sheet.mp4");
  s.sheet = (dir_ / "sheet.png").string();
  s.sheet_every = 2;
  self->request(enc, caf::infinite, encode_open_atom::value, s)
      .receive([](std::string&) {}, [&](caf::error& e) { FAIL() << sys_->render(e); });
  for (int i = 0; i < 4; ++i) {
    self->request(enc, caf::infinite, encode_frame_atom::value, frame(16, 16, 30))
        .receive([](int64_t) {}, [&](caf::error& e) { FAIL() << sys_->render(e); });
  }
  EXPECT_FALSE(fs::exists(s.sheet));
  self->request(enc, caf::infinite, encode_finish_atom::value)
      .receive([](int64_t) {}, [&](caf::error& e) { FAIL() << sys_->render(e); });
  EXPECT_TRUE(fs::exists(s.sheet));
  EXPECT_TRUE(fs::exists(s.path));
}

}  // namespace
}  // namespace reel::actors
