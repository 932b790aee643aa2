// The trainer: config parsing, the loss falling, exact resume, and the optional convolutions of
// the DiT that small pixel-space models use.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "models/detail/flat_yaml.hpp"
#include "models/dit.hpp"
#include "models/safetensors.hpp"
#include "models/train.hpp"
#include "models/zoo.hpp"

namespace reel::models {
namespace {

namespace fs = std::filesystem;

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("reel_train_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// ---- flat YAML -----------------------------------------------------------------------------

TEST(FlatYaml, ReadsNestedMappingsCommentsQuotesListsAndNulls) {
  auto keys = detail::parse_flat_yaml(
      "# header\n"
      "name: shapes-s   # trailing comment\n"
      "description: \"a # kept inside quotes\"\n"
      "model:\n"
      "  patch: [1, 4, 4]\n"
      "  deeper:\n"
      "    x: 1e-3\n"
      "  dim: 128\n"
      "empty:\n"
      "nothing: null\n"
      "top: 'single'\n",
      "t.yaml");
  ASSERT_TRUE(keys.ok()) << keys.error().message;
  const std::map<std::string, std::string> want = {
      {"name", "shapes-s"}, {"description", "a # kept inside quotes"}, {"model.patch", "[1, 4, 4]"},
      {"model.deeper.x", "1e-3"}, {"model.dim", "128"}, {"empty", ""}, {"nothing", ""}, {"top", "single"}};
  EXPECT_EQ(*keys, want);
}

TEST(FlatYaml, RejectsWhatItDoesNotSupportWithTheLine) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const auto& c : {Case{"a:\n  - 1\n", "t.yaml:2: lists of items"},
                        Case{"a: 1\n  b: 2\n", "t.yaml:2:"},
                        Case{"a:\n    b: 1\n  c: 2\n", "t.yaml:3: indentation does not match"},
                        Case{"a: 1\na: 2\n", "t.yaml:2: duplicate key 'a'"},
                        Case{"a:\n\tb: 1\n", "t.yaml:2: tabs"},
                        Case{"just text\n", "t.yaml:1: expected 'key: value'"},
                        Case{"a: \"open\n", "t.yaml:1: unterminated"},
                        Case{"a:b\n", "t.yaml:1: expected a space"}}) {
    auto keys = detail::parse_flat_yaml(c.text, "t.yaml");
    ASSERT_FALSE(keys.ok()) << c.text;
    EXPECT_EQ(keys.error().code, Errc::invalid_argument);
    EXPECT_NE(keys.error().message.find(c.message), std::string::npos) << keys.error().message;
  }
}

// ---- training config -----------------------------------------------------------------------

TEST(TrainConfig, TheShippedConfigParsesAndValidates) {
  auto cfg = load_train_config(std::string(REEL_SOURCE_DIR) + "/configs/models/shapes-s.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  EXPECT_EQ(cfg->name, "shapes-s");
  EXPECT_EQ(cfg->prediction, Prediction::sample);
  EXPECT_GT(cfg->dit.stem_channels, 0);
  EXPECT_GT(cfg->dit.refine_channels, 0);
  EXPECT_EQ(cfg->dit.text_dim, cfg->text.dim);
}

TEST(TrainConfig, UnknownKeysAndBadValuesNameTheKey) {
  auto typo = train_config_from({{"train.lr_typo", "1"}}, "c.yaml");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.error().message.find("unknown key 'train.lr_typo' (keys of 'train': "), std::string::npos)
      << typo.error().message;
  EXPECT_EQ(typo.error().message.find("model."), std::string::npos) << typo.error().message;  // its section only
  auto near = train_config_from({{"train.stepz", "1"}}, "c.yaml");
  ASSERT_FALSE(near.ok());
  EXPECT_NE(near.error().message.find("unknown key 'train.stepz'; did you mean 'train.steps'?"), std::string::npos)
      << near.error().message;
  auto section = train_config_from({{"modle.dimension", "1"}}, "c.yaml");
  ASSERT_FALSE(section.ok());
  EXPECT_NE(section.error().message.find("(sections: "), std::string::npos) << section.error().message;
  EXPECT_NE(section.error().message.find("'model'"), std::string::npos) << section.error().message;

  auto bad = train_config_from({{"train.batch", "many"}}, "c.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'train.batch' must be a number"), std::string::npos) << bad.error().message;

  auto range = train_config_from({{"train.ema_decay", "1.5"}}, "c.yaml");
  ASSERT_FALSE(range.ok());
  EXPECT_NE(range.error().message.find("ema_decay"), std::string::npos) << range.error().message;

  // A default length the temporal patch does not divide would make a model that cannot sample it.
  auto odd = train_config_from({{"model.patch", "[2, 4, 4]"}, {"train.image_fraction", "0"},
                                {"sample.frames", "3"}}, "c.yaml");
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.error().message.find("'sample.frames' must be a multiple of the temporal patch 2"),
            std::string::npos) << odd.error().message;

  auto patch = train_config_from({{"model.patch", "[1, 4]"}}, "c.yaml");
  ASSERT_FALSE(patch.ok());
  EXPECT_NE(patch.error().message.find("model.patch"), std::string::npos);

  auto size = train_config_from({{"data.width", "30"}}, "c.yaml");  // not divisible by the 4x4 patch
  ASSERT_FALSE(size.ok());
  EXPECT_NE(size.error().message.find("divisible"), std::string::npos) << size.error().message;
}

// A model small enough to train in seconds.
TrainConfig tiny_config() {
  auto cfg = train_config_from({{"name", "tiny"},
                                {"model.dim", "32"},
                                {"model.ffn_dim", "64"},
                                {"model.freq_dim", "16"},
                                {"model.heads", "2"},
                                {"model.layers", "1"},
                                {"model.stem_channels", "4"},
                                {"model.refine_channels", "4"},
                                {"text_encoder.dim", "16"},
                                {"text_encoder.layers", "1"},
                                {"text_encoder.heads", "2"},
                                {"text_encoder.ffn_dim", "32"},
                                {"data.width", "16"},
                                {"data.height", "16"},
                                {"data.frames", "4"},
                                {"train.batch", "4"},
                                {"train.image_batch", "8"},
                                {"train.image_fraction", "0.25"},
                                {"train.steps", "8"},
                                {"train.warmup", "2"},
                                {"train.lr", "3e-3"},
                                {"train.object_weight", "2"},
                                {"train.checkpoint_every", "3"},
                                {"train.log_every", "1"},
                                {"train.seed", "7"}},
                               "tiny");
  EXPECT_TRUE(cfg.ok()) << cfg.error().message;
  return *cfg;
}

std::map<std::string, at::Tensor> tensors_of(const std::string& path) {
  auto file = SafeTensors::open(path);
  EXPECT_TRUE(file.ok()) << file.error().message;
  std::map<std::string, at::Tensor> out;
  for (const auto& name : file->names()) out[name] = file->get(name)->clone();
  return out;
}

// ---- training ------------------------------------------------------------------------------

using Trainer = TempDir;

TEST_F(Trainer, TheLossFallsOnATinyRun) {
  at::set_num_threads(1);
  auto cfg = tiny_config();
  cfg.steps = 80;
  cfg.image_fraction = 0.0;
  cfg.checkpoint_every = 1000;
  std::vector<double> losses;
  TrainOptions opts;
  opts.out = path("m.safetensors");
  auto result = train(cfg, opts, [&](const TrainProgress& p) {
    losses.push_back(p.loss);
    EXPECT_EQ(p.total, 80);
    return true;
  });
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_TRUE(result->finished);
  EXPECT_EQ(result->step, 80);
  ASSERT_EQ(losses.size(), 80u);
  // The first value is the first step's loss, the last a running mean of the recent ones.
  EXPECT_LT(losses.back(), 0.6 * losses.front()) << "first " << losses.front() << ", last " << losses.back();
  EXPECT_TRUE(fs::exists(opts.out));
  EXPECT_TRUE(fs::exists(opts.out + ".ckpt"));
}

TEST_F(Trainer, AResumedRunEndsWithBitIdenticalWeights) {
  at::set_num_threads(1);
  const auto cfg = tiny_config();  // 8 steps: 2 on images, 6 on clips; checkpoints every 3
  TrainOptions straight;
  straight.out = path("straight.safetensors");
  auto a = train(cfg, straight);
  ASSERT_TRUE(a.ok()) << a.error().message;

  TrainOptions first;
  first.out = path("split.safetensors");
  first.stop_after = 5;  // stops off a checkpoint boundary: the final checkpoint is what resumes
  auto b = train(cfg, first);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_FALSE(b->finished);
  EXPECT_EQ(b->step, 5);

  TrainOptions second = first;
  second.stop_after = 0;
  second.resume = b->checkpoint;
  auto c = train(cfg, second);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->finished);
  EXPECT_DOUBLE_EQ(c->loss, a->loss);

  auto wa = tensors_of(straight.out), wc = tensors_of(first.out);
  ASSERT_EQ(wa.size(), wc.size());
  for (const auto& [name, t] : wa) {
    ASSERT_TRUE(wc.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, wc[name])) << name;
  }
  auto ca = tensors_of(a->checkpoint), cc = tensors_of(c->checkpoint);
  for (const auto& [name, t] : ca) EXPECT_TRUE(torch::equal(t, cc[name])) << name;  // moments and EMA too
}

TEST_F(Trainer, ResumingWithAnotherConfigIsRefusedNamingTheDifference) {
  at::set_num_threads(1);
  auto cfg = tiny_config();
  TrainOptions opts;
  opts.out = path("m.safetensors");
  opts.stop_after = 1;
  auto a = train(cfg, opts);
  ASSERT_TRUE(a.ok()) << a.error().message;
  cfg.lr = 1e-2;
  opts.resume = a->checkpoint;
  auto b = train(cfg, opts);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, Errc::invalid_argument);
  EXPECT_NE(b.error().message.find("lr="), std::string::npos) << b.error().message;

  opts.resume = path("missing.ckpt");
  auto c = train(tiny_config(), opts);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::not_found);
}

// train.freeze_text_encoder: the written text encoder is the one the run started from (the
// model a run stopped at step 0 writes), while the DiT trains; with text_time the DiT's
// prompt and frame weights train too, and the written model loads with them.
TEST_F(Trainer, AFrozenTextEncoderIsWrittenAsInitialisedWhileTheDiTTrains) {
  at::set_num_threads(1);
  auto cfg = tiny_config();
  cfg.freeze_text_encoder = true;
  cfg.dit.text_time = true;
  cfg.steps = 4;
  TrainOptions start;
  start.out = path("start.safetensors");
  start.minutes = 1e-9;  // stops before the first step: the initial weights
  auto s = train(cfg, start);
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_EQ(s->step, 0);
  TrainOptions run;
  run.out = path("run.safetensors");
  auto r = train(cfg, run);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->step, 4);

  auto before = tensors_of(start.out), after = tensors_of(run.out);
  int text = 0, moved = 0;
  for (const auto& [name, t] : before) {
    ASSERT_TRUE(after.count(name)) << name;
    if (name.rfind("text_encoder.", 0) == 0) {
      ++text;
      EXPECT_TRUE(torch::equal(t, after[name])) << name;
    } else if (!torch::equal(t, after[name])) {
      ++moved;
    }
  }
  EXPECT_GT(text, 0);
  EXPECT_GT(moved, 0);
  EXPECT_FALSE(torch::equal(before.at("condition_embedder.text_pool.weight"), after.at("condition_embedder.text_pool.weight")));
  auto model = load_t2v(run.out);
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_TRUE(model->dit->config().text_time);

  // The flag is part of what a checkpoint must be resumed with.
  auto unfrozen = cfg;
  unfrozen.freeze_text_encoder = false;
  EXPECT_NE(unfrozen.fingerprint(), cfg.fingerprint());
}

TEST_F(Trainer, TheWrittenModelLoadsWithItsConfigAndDefaults) {
  at::set_num_threads(1);
  auto cfg = tiny_config();
  cfg.steps = 2;
  cfg.defaults.steps = 7;
  TrainOptions opts;
  opts.out = path("m.safetensors");
  ASSERT_TRUE(train(cfg, opts).ok());
  auto model = load_t2v(opts.out);
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_EQ(model->name, "tiny");
  EXPECT_EQ(model->prediction, Prediction::sample);
  EXPECT_EQ(model->defaults.steps, 7);
  EXPECT_EQ(model->defaults.width, 16);
  EXPECT_EQ(model->dit->config().stem_channels, 4);
  EXPECT_EQ(model->dit->config().refine_channels, 4);
  EXPECT_EQ(model->dit->config().dim, 32);

  // A text encoder whose vocabulary disagrees with its config: one message naming the file once.
  auto file = SafeTensors::open(opts.out);
  ASSERT_TRUE(file.ok());
  std::map<std::string, std::string> md = file->metadata();
  md["text_encoder.vocab_size"] = std::to_string(std::stoi(md.at("text_encoder.vocab_size")) + 1);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, t] : tensors_of(opts.out)) tensors.emplace_back(name, t);
  const std::string bad = path("bad-vocab.safetensors");
  ASSERT_TRUE(save_safetensors(bad, tensors, md).ok());
  auto refused = load_t2v(bad);
  ASSERT_FALSE(refused.ok());
  const std::string& message = refused.error().message;
  EXPECT_EQ(message.find(bad), 0U) << message;
  EXPECT_EQ(message.find(bad, 1), std::string::npos) << message;
  EXPECT_NE(message.find("vocab"), std::string::npos) << message;

  // Weights with a NaN are refused at load, naming the tensor: one of the DiT's (the first) and
  // one of the text encoder's (the last).
  for (bool dit_tensor : {true, false}) {
    tensors.clear();
    for (const auto& [name, t] : tensors_of(opts.out)) tensors.emplace_back(name, t);
    auto& [poisoned_name, poisoned_tensor] = dit_tensor ? tensors.front() : tensors.back();
    poisoned_tensor.view(-1)[0] = NAN;
    const std::string nan = path("nan.safetensors");
    ASSERT_TRUE(save_safetensors(nan, tensors, file->metadata()).ok());
    auto poisoned = load_t2v(nan);
    ASSERT_FALSE(poisoned.ok()) << poisoned_name;
    EXPECT_EQ(poisoned.error().code, Errc::corrupt_data);
    EXPECT_NE(poisoned.error().message.find("tensor '" + poisoned_name + "' holds NaN"), std::string::npos)
        << poisoned.error().message;
  }
}

// ---- the DiT's optional convolutions ---------------------------------------------------------

DiTConfig conv_config() {
  DiTConfig cfg;
  cfg.in_channels = 3;
  cfg.out_channels = 3;
  cfg.patch = {1, 2, 2};
  cfg.dim = 24;
  cfg.ffn_dim = 48;
  cfg.freq_dim = 16;
  cfg.text_dim = 8;
  cfg.text_len = 4;
  cfg.num_heads = 2;
  cfg.num_layers = 1;
  cfg.stem_channels = 5;
  cfg.refine_channels = 6;
  return cfg;
}

TEST(DiTConvolutions, RefinementStartsAsTheIdentityAndStemWidensThePatchInput) {
  torch::manual_seed(0);
  VideoDiT dit(conv_config());
  EXPECT_EQ(dit->patch_embedding->weight.size(1), 3 + 5);
  auto y = torch::randn({1, 3, 2, 4, 4});
  EXPECT_TRUE(torch::equal(dit->refine(y), y));
  EXPECT_GT(dit->forward_flops(2, 4, 4), 0);
}

TEST(DiTConvolutions, AreSavedDetectedAndLoaded) {
  torch::manual_seed(0);
  VideoDiT dit(conv_config());
  {
    torch::NoGradGuard g;
    dit->refine_out->weight.normal_();  // make the refinement do something
  }
  const std::string p = (fs::temp_directory_path() / ("reel_conv_" + std::to_string(::getpid()) + ".safetensors")).string();
  ASSERT_TRUE(save_dit(dit, p).ok());
  auto loaded = load_dit(p);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ((*loaded)->config().stem_channels, 5);
  EXPECT_EQ((*loaded)->config().refine_channels, 6);
  torch::NoGradGuard g;
  auto x = torch::randn({1, 3, 2, 4, 4});
  auto t = torch::tensor({500.0});
  auto text = torch::randn({1, 3, 8});
  EXPECT_TRUE(torch::allclose(dit->forward(x, t, text), (*loaded)->forward(x, t, text)));
  fs::remove(p);
}

// ---- the shipped model -----------------------------------------------------------------------

TEST(ShippedModel, LoadsAndSamplesDeterministically) {
  const std::string zoo = std::string(REEL_SOURCE_DIR) + "/models/zoo";
  if (!fs::exists(zoo + "/shapes-s.safetensors")) GTEST_SKIP() << "no shipped model in " << zoo;
  auto model = open_model("shapes-s", zoo);
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_LT(fs::file_size(zoo + "/shapes-s.safetensors"), 20u << 20);
  torch::NoGradGuard g;
  auto text = model->text_encoder->encode({"a large red circle moving right on a sand background"});
  ASSERT_TRUE(text.ok()) << text.error().message;
  auto run = [&](uint64_t seed) {
    torch::manual_seed(seed);
    auto x = torch::randn({1, 3, 8, 32, 32});
    return model->dit->forward(x, torch::full({1}, 700.0, torch::kFloat64), *text);
  };
  auto a = run(1), b = run(1), c = run(2);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
}

}  // namespace
}  // namespace reel::models
