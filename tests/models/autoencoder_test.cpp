// The latent autoencoder of the shapes models: shapes and normalisation, the Decoder it stands
// behind, saving and loading it inside a model file, and training it before a latent DiT
// (learning, exact resume across the phases).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <unistd.h>

#include "models/autoencoder.hpp"
#include "models/safetensors.hpp"
#include "models/t2v_model.hpp"
#include "models/train.hpp"
#include "models/shapes/render.hpp"
#include "models/shapes/world.hpp"
#include "models/zoo.hpp"

namespace reel::models {
namespace {

namespace fs = std::filesystem;

AutoencoderConfig small_ae() {
  AutoencoderConfig c;
  c.latent_channels = 4;
  c.channels = 8;
  c.first_channels = 8;
  c.downsample = 2;
  return c;
}

TEST(Autoencoder, EncodesAndDecodesVideosFrameByFrameAtItsCompression) {
  torch::manual_seed(0);
  LatentAutoencoder ae(small_ae());
  auto video = torch::rand({2, 3, 5, 16, 24}) * 2 - 1;
  auto z = ae->encode(video);
  EXPECT_EQ(z.sizes(), (std::vector<int64_t>{2, 4, 5, 4, 6}));
  auto back = ae->decode(z);
  EXPECT_EQ(back.sizes(), video.sizes());
  // Per frame: a frame decodes to the same pixels alone as inside the video.
  auto alone = ae->decode(z.narrow(2, 3, 1));
  EXPECT_TRUE(torch::allclose(alone, back.narrow(2, 3, 1), 1e-5, 1e-5));
}

TEST(Autoencoder, StatisticsNormaliseTheLatentsToZeroMeanUnitStd) {
  torch::manual_seed(1);
  LatentAutoencoder ae(small_ae());
  auto frames = torch::rand({32, 3, 16, 16}) * 2 - 1;
  torch::NoGradGuard no_grad;
  auto raw = ae->encode_frames(frames);
  ae->set_statistics(raw);
  auto z = ae->encode(frames.view({32, 3, 1, 16, 16}).permute({2, 1, 0, 3, 4}));  // [1, 3, 32, 16, 16]
  auto per_channel = z.transpose(0, 1).reshape({4, -1});
  EXPECT_TRUE(torch::allclose(per_channel.mean(1), torch::zeros({4}), 1e-4, 1e-4)) << per_channel.mean(1);
  EXPECT_TRUE(torch::allclose(per_channel.std(1), torch::ones({4}), 1e-3, 1e-3)) << per_channel.std(1);
  // Decoding undoes the normalisation: the raw path and the normalised path agree.
  auto direct = ae->decode_frames(raw.narrow(0, 0, 1));
  auto via = ae->decode(z.narrow(2, 0, 1)).squeeze(2);
  EXPECT_TRUE(torch::allclose(direct, via, 1e-4, 1e-4));
}

TEST(Autoencoder, TheDecoderRefusesBadLatentsAndTheEncoderBadFrames) {
  LatentDecoder decoder{LatentAutoencoder(small_ae())};
  EXPECT_EQ(decoder.latent_channels(), 4);
  EXPECT_EQ(decoder.spatial_compression(), 4);
  auto ok = decoder.decode(torch::zeros({1, 4, 2, 4, 4}));
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->sizes(), (std::vector<int64_t>{1, 2, 16, 16, 3}));
  EXPECT_EQ(ok->scalar_type(), at::kByte);

  auto channels = decoder.decode(torch::zeros({1, 3, 2, 4, 4}));
  ASSERT_FALSE(channels.ok());
  EXPECT_EQ(channels.error().code, Errc::invalid_argument);
  EXPECT_NE(channels.error().message.find("needs 4 latent channels, got 3"), std::string::npos);
  EXPECT_FALSE(decoder.decode(torch::zeros({4, 2, 4, 4})).ok());
  auto nan = torch::zeros({1, 4, 1, 4, 4});
  nan[0][0][0][0][0] = std::nanf("");
  auto n = decoder.decode(nan);
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.error().message.find("NaN"), std::string::npos);

  auto encoded = decoder.encode(torch::zeros({3, 16, 16, 3}, torch::kByte));
  ASSERT_TRUE(encoded.ok()) << encoded.error().message;
  EXPECT_EQ(encoded->sizes(), (std::vector<int64_t>{1, 4, 3, 4, 4}));
  auto odd = decoder.encode(torch::zeros({3, 18, 16, 3}, torch::kByte));
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.error().message.find("not a multiple of the autoencoder's compression 4"), std::string::npos)
      << odd.error().message;
}

TEST(Autoencoder, ConfigComesBackFromMetadataAndBadValuesAreNamed) {
  auto md = small_ae().to_metadata();
  auto back = AutoencoderConfig::from_metadata(md, "m.safetensors");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->to_metadata(), md);
  md.erase("vae.channels");
  auto missing = AutoencoderConfig::from_metadata(md, "m.safetensors");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("m.safetensors: metadata 'vae.channels' is missing"), std::string::npos);
  md = small_ae().to_metadata();
  md["vae.downsample"] = "9";
  auto bad = AutoencoderConfig::from_metadata(md, "m.safetensors");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'downsample' must be in [1, 4]"), std::string::npos) << bad.error().message;
}

// ---- training a latent model ---------------------------------------------------------------

class LatentTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reel_latent_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    at::set_num_threads(1);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static TrainConfig config(int64_t ae_steps, int64_t steps, int64_t pool) {
    auto cfg = train_config_from({{"autoencoder.latent_channels", "4"},
                                  {"autoencoder.channels", "16"},
                                  {"autoencoder.first_channels", "8"},
                                  {"autoencoder.downsample", "2"},
                                  {"autoencoder.steps", std::to_string(ae_steps)},
                                  {"autoencoder.batch", "8"},
                                  {"autoencoder.lr", "3e-3"},
                                  {"model.patch", "[1, 2, 2]"},
                                  {"model.dim", "32"},
                                  {"model.ffn_dim", "64"},
                                  {"model.freq_dim", "32"},
                                  {"model.heads", "2"},
                                  {"model.layers", "1"},
                                  {"model.prediction", "velocity"},
                                  {"text_encoder.dim", "16"},
                                  {"text_encoder.layers", "1"},
                                  {"text_encoder.heads", "2"},
                                  {"text_encoder.ffn_dim", "32"},
                                  {"data.width", "16"},
                                  {"data.height", "16"},
                                  {"data.frames", "4"},
                                  {"train.batch", "4"},
                                  {"train.pool_clips", std::to_string(pool)},
                                  {"train.steps", std::to_string(steps)},
                                  {"train.warmup", "2"},
                                  {"train.object_weight", "2"},
                                  {"train.checkpoint_every", "3"},
                                  {"train.log_every", "1"},
                                  {"train.seed", "5"}},
                                 "tiny-latent");
    EXPECT_TRUE(cfg.ok()) << cfg.error().message;
    return *cfg;
  }

  fs::path dir_;
};

TEST_F(LatentTraining, TheAutoencoderLearnsToReconstructWorldFrames) {
  std::vector<double> losses;
  TrainOptions opts;
  opts.out = path("m.safetensors");
  auto untrained = train(config(1, 1, 0), opts);
  ASSERT_TRUE(untrained.ok()) << untrained.error().message;
  opts.out = path("n.safetensors");
  auto trained = train(config(300, 1, 0), opts, [&](const TrainProgress& p) {
    if (p.autoencoder_phase) losses.push_back(p.loss);
    return true;
  });
  ASSERT_TRUE(trained.ok()) << trained.error().message;
  EXPECT_EQ(trained->ae_step, 300);
  ASSERT_EQ(losses.size(), 300u);
  EXPECT_LT(losses.back(), 0.6 * losses.front()) << losses.front() << " -> " << losses.back();
  // Held-out frames: even this tiny autoencoder's short run gains several dB.
  EXPECT_GT(trained->ae_psnr, untrained->ae_psnr + 3.0) << untrained->ae_psnr << " -> " << trained->ae_psnr;
}

TEST_F(LatentTraining, TheWrittenModelHasTheAutoencoderAndSamplesAtItsCompression) {
  TrainOptions opts;
  opts.out = path("m.safetensors");
  auto r = train(config(4, 3, 16), opts);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(r->pool_seconds, 0);
  auto model = load_t2v(opts.out);
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_EQ(model->spatial_compression, 4);
  EXPECT_EQ(model->dit->config().in_channels, 4);
  auto* latent = dynamic_cast<LatentDecoder*>(model->decoder.get());
  ASSERT_NE(latent, nullptr);
  // The normalisation measured after the autoencoder phase is what the file holds.
  EXPECT_FALSE(torch::equal(latent->model()->latent_std, torch::ones({4})));
  auto frames = model->decoder->decode(torch::zeros({1, 4, 2, 4, 4}));
  ASSERT_TRUE(frames.ok()) << frames.error().message;
  EXPECT_EQ(frames->sizes(), (std::vector<int64_t>{1, 2, 16, 16, 3}));

  // Saving again and loading gives the same decoder output.
  ASSERT_TRUE(save_t2v(*model, path("again.safetensors")).ok());
  auto again = load_t2v(path("again.safetensors"));
  ASSERT_TRUE(again.ok()) << again.error().message;
  auto z = torch::randn({1, 4, 2, 4, 4});
  EXPECT_TRUE(torch::equal(*model->decoder->decode(z), *again->decoder->decode(z)));
}

TEST_F(LatentTraining, AModelFileWithoutItsAutoencoderTensorsIsRefusedNamingOne) {
  TrainOptions opts;
  opts.out = path("m.safetensors");
  ASSERT_TRUE(train(config(2, 1, 0), opts).ok());
  auto file = SafeTensors::open(opts.out);
  ASSERT_TRUE(file.ok());
  std::vector<std::pair<std::string, at::Tensor>> kept;
  for (const auto& name : file->names())
    if (name != "vae.dec_out.weight") kept.emplace_back(name, *file->get(name));
  ASSERT_TRUE(save_safetensors(path("cut.safetensors"), kept, file->metadata()).ok());
  auto model = load_t2v(path("cut.safetensors"));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.error().code, Errc::corrupt_data);
  EXPECT_NE(model.error().message.find("missing tensor 'vae.dec_out.weight'"), std::string::npos)
      << model.error().message;
}

TEST_F(LatentTraining, ResumingInEitherPhaseEndsBitIdentical) {
  const auto cfg = config(5, 5, 8);
  TrainOptions straight;
  straight.out = path("straight.safetensors");
  auto a = train(cfg, straight);
  ASSERT_TRUE(a.ok()) << a.error().message;
  for (int64_t stop : {3, 7}) {  // inside the autoencoder phase, inside the DiT phase
    TrainOptions first;
    first.out = path("split" + std::to_string(stop) + ".safetensors");
    first.stop_after = stop;
    auto b = train(cfg, first);
    ASSERT_TRUE(b.ok()) << b.error().message;
    EXPECT_FALSE(b->finished);
    TrainOptions second = first;
    second.stop_after = 0;
    second.resume = b->checkpoint;
    auto c = train(cfg, second);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_TRUE(c->finished);
    EXPECT_EQ(c->ae_step, 5);
    EXPECT_EQ(c->step, 5);
    auto fa = SafeTensors::open(straight.out), fc = SafeTensors::open(first.out);
    ASSERT_TRUE(fa.ok() && fc.ok());
    ASSERT_EQ(fa->names(), fc->names());
    for (const auto& name : fa->names())
      EXPECT_TRUE(torch::equal(*fa->get(name), *fc->get(name))) << name << " after stopping at " << stop;
  }
}

TEST_F(LatentTraining, ANewDiTCanStartFromAnotherModelsAutoencoder) {
  TrainOptions first;
  first.out = path("a.safetensors");
  ASSERT_TRUE(train(config(6, 1, 0), first).ok());
  auto cfg = config(6, 2, 0);
  cfg.seed = 9;
  cfg.ae_init = first.out;
  int ae_reports = 0;
  TrainOptions second;
  second.out = path("b.safetensors");
  auto r = train(cfg, second, [&](const TrainProgress& p) {
    ae_reports += p.autoencoder_phase ? 1 : 0;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(ae_reports, 0);  // no autoencoder step was taken
  auto a = load_t2v(first.out), b = load_t2v(second.out);
  ASSERT_TRUE(a.ok() && b.ok());
  auto z = torch::randn({1, 4, 1, 4, 4});
  EXPECT_TRUE(torch::equal(*a->decoder->decode(z), *b->decoder->decode(z)));
  EXPECT_FALSE(torch::equal(a->dit->proj_out->weight, b->dit->proj_out->weight));

  auto other = config(6, 2, 0);
  other.ae.channels = 8;
  other.ae_init = first.out;
  auto refused = train(other, second);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("configured otherwise"), std::string::npos) << refused.error().message;
}

TEST(LatentTrainingConfig, SizesMustFitTheCompressionAndThePatch) {
  auto bad = train_config_from({{"autoencoder.latent_channels", "4"}, {"data.width", "34"}, {"data.height", "32"}},
                               "c.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("divisible by the autoencoder's compression 4"), std::string::npos)
      << bad.error().message;
  auto patch = train_config_from({{"autoencoder.latent_channels", "4"}, {"model.patch", "[1, 4, 4]"},
                                  {"data.width", "24"}, {"data.height", "24"}},
                                 "c.yaml");
  ASSERT_FALSE(patch.ok());
  EXPECT_NE(patch.error().message.find("latent's height/width must be divisible by 'model.patch'"), std::string::npos)
      << patch.error().message;
  auto shipped = load_train_config(std::string(REEL_SOURCE_DIR) + "/configs/models/shapes-m.yaml");
  ASSERT_TRUE(shipped.ok()) << shipped.error().message;
  EXPECT_EQ(shipped->dit.in_channels, 8);
  EXPECT_EQ(shipped->ae.factor(), 4);
}

// ---- the shipped latent model ----------------------------------------------------------------

TEST(ShippedLatentModel, DecodesItsOwnEncodingOfAWorldClipClosely) {
  const std::string zoo = std::string(REEL_SOURCE_DIR) + "/models/zoo";
  if (!fs::exists(zoo + "/shapes-m.safetensors")) GTEST_SKIP() << "no shapes-m in " << zoo;
  auto model = open_model("shapes-m", zoo);
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_EQ(model->spatial_compression, 4);
  EXPECT_EQ(model->dit->config().in_channels, 8);
  auto* latent = dynamic_cast<LatentDecoder*>(model->decoder.get());
  ASSERT_NE(latent, nullptr);
  // A clip of the world (textured background included): the round trip keeps it within a few
  // levels per channel on average (the shipped autoencoder is about 36 dB on world frames).
  auto scene = shapes::sample_scene(12345, shapes::SampleOptions{});
  auto clip = shapes::render(scene, 4, 32, 32, 7);
  auto frames = torch::from_blob(clip.rgb.data(), {4, 32, 32, 3}, torch::kUInt8).clone();
  auto z = latent->encode(frames);
  ASSERT_TRUE(z.ok()) << z.error().message;
  auto back = latent->decode(*z);
  ASSERT_TRUE(back.ok()) << back.error().message;
  auto err = ((*back)[0].to(torch::kFloat) - frames.to(torch::kFloat)).abs().mean().item<double>();
  EXPECT_LT(err, 6.0);
}

}  // namespace
}  // namespace reel::models
