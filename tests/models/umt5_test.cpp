// The umT5 encoder against Wan's T5Encoder (golden vectors), and the sentencepiece tokenizer on a
// model the test trains itself.
#include "models/umt5.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "models/safetensors.hpp"
#include "models/spm_tokenizer.hpp"
#include "tests/models/golden.hpp"

namespace reel::models {
namespace {

namespace fs = std::filesystem;
using reel::testing::deviation;
using reel::testing::golden_tensor;
using reel::testing::open_golden;

// The README's tolerance for t5_tiny.
constexpr double kRel = 1e-5;
constexpr double kMaxAbs = 1e-5;

// A folder for this process's files, removed when the tests end.
const fs::path& scratch() {
  struct Dir {
    fs::path path = fs::temp_directory_path() / ("reel_umt5_" + std::to_string(::getpid()));
    Dir() { fs::create_directories(path); }
    ~Dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static Dir dir;
  return dir.path;
}

// Trains a small unigram model on a corpus written here. T5 models have pad 0, EOS 1, unk 2 and
// no BOS; `t5_ids` false keeps sentencepiece's defaults (unk 0, BOS 1, EOS 2, no pad).
std::string train_spm(const std::string& name, bool t5_ids) {
  const fs::path corpus = scratch() / (name + ".txt");
  {
    std::ofstream out(corpus);
    const char* subjects[] = {"a red fox", "the lazy dog", "a small cat", "two birds", "an old man", "the river",
                              "a blue car", "children", "the moon", "a tall tree"};
    const char* verbs[] = {"jumps over", "sleeps under", "runs along", "looks at", "flies above", "walks past"};
    const char* places[] = {"the fence", "a bridge", "the city at night", "green hills", "the sea", "a garden"};
    for (const char* s : subjects)
      for (const char* v : verbs)
        for (const char* p : places) out << s << ' ' << v << ' ' << p << ", slowly & quietly.\n";
  }
  const fs::path prefix = scratch() / name;
  std::string args = "--input=" + corpus.string() + " --model_prefix=" + prefix.string() +
                     " --vocab_size=100 --hard_vocab_limit=false --character_coverage=1.0 --minloglevel=2";
  args += t5_ids ? " --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1" : "";
  const auto status = train_sentencepiece(args);  // sentencepiece::SentencePieceTrainer::Train
  EXPECT_TRUE(status.ok()) << status.error().message;
  return prefix.string() + ".model";
}

const std::string& t5_spm() {
  static const std::string path = train_spm("t5", true);
  return path;
}

SentencePieceTokenizer tokenizer(int64_t text_len = 16) {
  auto tok = SentencePieceTokenizer::load(t5_spm(), text_len);
  EXPECT_TRUE(tok.ok()) << (tok.ok() ? "" : tok.error().message);
  return std::move(tok).value();
}

std::vector<int64_t> encode(const SentencePieceTokenizer& tok, const std::string& prompt) {
  auto ids = tok.encode(prompt);
  EXPECT_TRUE(ids.ok()) << (ids.ok() ? "" : ids.error().message);
  return ids.ok() ? *ids : std::vector<int64_t>{};
}

std::string clean(const std::string& text) {
  auto out = SentencePieceTokenizer::clean(text);
  EXPECT_TRUE(out.ok()) << (out.ok() ? "" : out.error().message);
  return out.ok() ? *out : "";
}

UmT5Config small_config(int64_t vocab = 128) {
  UmT5Config cfg;
  cfg.vocab = vocab;
  cfg.dim = 32;
  cfg.dim_attn = 32;
  cfg.dim_ffn = 48;
  cfg.num_heads = 4;
  cfg.num_layers = 2;
  cfg.text_len = 16;
  return cfg;
}

UmT5Encoder random_encoder(const UmT5Config& cfg, uint64_t seed) {
  UmT5Encoder model(cfg);
  model->initialize(seed);
  model->eval();
  return model;
}

// The model's parameters under the reference's names, or renamed by `rename`.
std::string save(const UmT5Encoder& model, const std::string& file, std::string (*rename)(const std::string&) = nullptr,
                 const std::string& skip = "") {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : model->named_parameters())
    if (p.key() != skip) tensors.emplace_back(rename ? rename(p.key()) : p.key(), p.value());
  const std::string path = (scratch() / file).string();
  auto st = save_safetensors(path, tensors);
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
  return path;
}

UmT5Encoder load(const std::vector<std::string>& paths) {
  auto model = load_umt5(paths);
  EXPECT_TRUE(model.ok()) << (model.ok() ? "" : model.error().message);
  return std::move(model).value();
}

// --- golden: Wan's T5Encoder ----------------------------------------------------------------

TEST(UmT5Golden, DetectsTheConfigFromTheReferenceWeights) {
  REEL_SKIP_WITHOUT_GOLDEN();
  auto model = load({reel::testing::golden_dir() + "/t5_tiny/weights.safetensors"});
  const auto& cfg = model->config();
  EXPECT_EQ(cfg.vocab, 128);
  EXPECT_EQ(cfg.dim, 32);
  EXPECT_EQ(cfg.dim_attn, 32);
  EXPECT_EQ(cfg.dim_ffn, 64);
  EXPECT_EQ(cfg.num_heads, 4);
  EXPECT_EQ(cfg.num_layers, 2);
  EXPECT_EQ(cfg.num_buckets, 32);
  EXPECT_EQ(cfg.max_distance, 128);
  EXPECT_FALSE(cfg.shared_pos);
  EXPECT_DOUBLE_EQ(cfg.eps, 1e-6);
}

TEST(UmT5Golden, BucketsRelativePositionsAsTheReference) {
  REEL_SKIP_WITHOUT_GOLDEN();
  auto ref = golden_tensor(open_golden("t5_tiny/output.safetensors"), "rel_pos_bucket");  // [24, 24]
  auto rel_pos = torch::arange(24).unsqueeze(0) - torch::arange(24).unsqueeze(1);          // key - query
  EXPECT_TRUE(torch::equal(umt5_relative_position_bucket(rel_pos, 32, 128), ref));
}

TEST(UmT5Golden, ReproducesTheReferenceOutputWithPadding) {
  REEL_SKIP_WITHOUT_GOLDEN();
  torch::NoGradGuard no_grad;
  auto model = load({reel::testing::golden_dir() + "/t5_tiny/weights.safetensors"});
  auto in = open_golden("t5_tiny/inputs.safetensors");
  auto ids = golden_tensor(in, "ids");    // [2, 24]
  auto mask = golden_tensor(in, "mask");  // [2, 24]
  auto ref = open_golden("t5_tiny/output.safetensors");
  auto expected = golden_tensor(ref, "out");  // [2, 24, 32], padded positions included

  auto out = model->forward(ids, mask);
  auto all = deviation(out, expected);
  std::printf("t5_tiny out [2, 24, 32]: rel %.3g, max abs %.3g\n", all.rel, all.max_abs);
  EXPECT_LE(all.rel, kRel);
  EXPECT_LE(all.max_abs, kMaxAbs);
  for (int64_t b = 0; b < 2; ++b) {  // the rows the reference keeps
    const int64_t len = golden_tensor(in, "seq_lens")[b].item<int64_t>();
    auto d = deviation(out[b].narrow(0, 0, len), expected[b].narrow(0, 0, len));
    std::printf("t5_tiny out[%ld, :%ld]: rel %.3g, max abs %.3g\n", static_cast<long>(b), static_cast<long>(len), d.rel,
                d.max_abs);
    EXPECT_LE(d.rel, kRel);
    EXPECT_LE(d.max_abs, kMaxAbs);
  }

  auto alone = model->forward(ids[0].narrow(0, 0, 17).unsqueeze(0));  // sample 0 without padding or mask
  auto d = deviation(alone[0], golden_tensor(ref, "out_sample0_unpadded"));
  EXPECT_LE(d.rel, kRel);
  EXPECT_LE(d.max_abs, kMaxAbs);
}

TEST(UmT5Golden, IgnoringThePaddingMaskMovesTheValidRows) {
  REEL_SKIP_WITHOUT_GOLDEN();
  torch::NoGradGuard no_grad;
  auto model = load({reel::testing::golden_dir() + "/t5_tiny/weights.safetensors"});
  auto in = open_golden("t5_tiny/inputs.safetensors");
  auto expected = golden_tensor(open_golden("t5_tiny/output.safetensors"), "out");
  auto unmasked = model->forward(golden_tensor(in, "ids"));
  auto d = deviation(unmasked[1].narrow(0, 0, 9), expected[1].narrow(0, 0, 9));  // sample 1: 9 tokens, 15 pads
  EXPECT_GT(d.rel, 0.05);  // the README measures 0.37
}

// --- the encoder without golden vectors -----------------------------------------------------

TEST(UmT5Encoder, BucketsExactNearPositionsAndLogarithmicFarOnes) {
  auto rel = torch::tensor({0, -1, 1, -7, 7, -8, 8, -12, -40, -128, -1000, 1000}, torch::kLong);
  // 16 buckets a direction, 8 of them exact; keys after the query use buckets 16..31.
  auto expected = torch::tensor({0, 1, 17, 7, 23, 8, 24, 9, 12, 15, 15, 31}, torch::kLong);
  EXPECT_TRUE(torch::equal(umt5_relative_position_bucket(rel, 32, 128), expected))
      << umt5_relative_position_bucket(rel, 32, 128);
}

TEST(UmT5Encoder, PaddedRowsDoNotReachValidOnesUnlessTheMaskIsIgnored) {
  torch::NoGradGuard no_grad;
  auto model = random_encoder(small_config(), 7);
  auto ids = torch::tensor({{5, 17, 42, 99, 3, 1, 0, 0, 0, 0, 0, 0}}, torch::kLong);
  auto mask = ids.ne(0).to(torch::kLong);
  auto alone = model->forward(ids.narrow(1, 0, 6))[0];           // [6, D], no padding at all
  auto masked = model->forward(ids, mask)[0].narrow(0, 0, 6);    // the same rows, padded to 12
  auto unmasked = model->forward(ids)[0].narrow(0, 0, 6);
  auto d = deviation(masked, alone);
  EXPECT_LE(d.rel, 1e-6);
  EXPECT_GT(deviation(unmasked, alone).rel, 1e-2);
}

TEST(UmT5Encoder, LoadsHuggingFaceNamesToTheSameModel) {
  torch::NoGradGuard no_grad;
  auto original = random_encoder(small_config(), 11);
  const std::string path = save(original, "hf.safetensors", [](const std::string& n) { return umt5_hf_name(n); });
  EXPECT_EQ(umt5_hf_name("blocks.1.ffn.gate.0.weight"), "encoder.block.1.layer.1.DenseReluDense.wi_0.weight");
  auto loaded = load({path});
  EXPECT_EQ(loaded->config().num_layers, 2);
  EXPECT_EQ(loaded->config().dim_ffn, 48);
  EXPECT_FALSE(loaded->config().shared_pos);
  auto ids = torch::tensor({{4, 8, 15, 16, 23, 42, 1}}, torch::kLong);
  EXPECT_TRUE(torch::equal(loaded->forward(ids), original->forward(ids)));
}

TEST(UmT5Encoder, DetectsOneSharedPositionTableAsPlainT5HasIt) {
  torch::NoGradGuard no_grad;
  auto cfg = small_config();
  cfg.shared_pos = true;
  auto original = random_encoder(cfg, 13);
  auto loaded = load({save(original, "shared.safetensors")});
  EXPECT_TRUE(loaded->config().shared_pos);
  auto ids = torch::tensor({{4, 8, 15, 16, 23, 42, 1}}, torch::kLong);
  EXPECT_TRUE(torch::equal(loaded->forward(ids), original->forward(ids)));
}

TEST(UmT5Encoder, NamesTheMissingTensorAndTheFile) {
  auto model = random_encoder(small_config(), 17);
  const std::string path = save(model, "missing.safetensors", nullptr, "blocks.1.ffn.fc2.weight");
  auto loaded = load_umt5({path});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, Errc::corrupt_data);
  EXPECT_NE(loaded.error().message.find("blocks.1.ffn.fc2.weight"), std::string::npos) << loaded.error().message;
  EXPECT_NE(loaded.error().message.find(path), std::string::npos) << loaded.error().message;
}

// --- tokenizer ------------------------------------------------------------------------------

TEST(SentencePieceTokenizer, HasT5sPadAndEosIds) {
  auto tok = tokenizer();
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_GT(tok.vocab_size(), 40);
  EXPECT_LE(tok.vocab_size(), 128);  // fits the small encoders here
}

TEST(SentencePieceTokenizer, RoundTripsAPromptThroughIdsAndEndsItWithEos) {
  auto tok = tokenizer(64);
  const std::string prompt = "a red fox jumps over the lazy dog";
  auto ids = encode(tok, prompt);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids.back(), 1);
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_GT(ids[i], 1) << i;
  auto text = tok.decode(ids);
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(*text, prompt);
  EXPECT_EQ(encode(tok, ""), std::vector<int64_t>{1});
  EXPECT_EQ(encode(tok, " \t\n "), std::vector<int64_t>{1});
  EXPECT_FALSE(tok.decode({5, 1000}).ok());
}

TEST(SentencePieceTokenizer, PadsToTextLenAndCutsLongPromptsKeepingEos) {
  auto tok = tokenizer(8);
  const std::string long_prompt = "the lazy dog sleeps under a bridge and the moon flies above green hills";
  auto long_ids = encode(tok, long_prompt);
  ASSERT_EQ(long_ids.size(), 8u);
  EXPECT_EQ(long_ids.back(), 1);
  auto uncut = encode(tokenizer(64), long_prompt);
  ASSERT_GT(uncut.size(), 9u);
  EXPECT_EQ(std::vector<int64_t>(long_ids.begin(), long_ids.end() - 1),
            std::vector<int64_t>(uncut.begin(), uncut.begin() + 7));

  auto batch = tok.tokenize({"a cat", long_prompt});
  ASSERT_TRUE(batch.ok()) << batch.error().message;
  ASSERT_EQ(batch->ids.sizes(), (std::vector<int64_t>{2, 8}));
  ASSERT_EQ(batch->mask.sizes(), (std::vector<int64_t>{2, 8}));
  const int64_t short_len = batch->lengths[0];
  EXPECT_EQ(batch->lengths[1], 8);
  EXPECT_EQ(batch->mask[0].sum().item<int64_t>(), short_len);
  EXPECT_EQ(batch->ids[0][short_len - 1].item<int64_t>(), 1);
  EXPECT_TRUE(batch->ids[0].narrow(0, short_len, 8 - short_len).eq(0).all().item<bool>());
  EXPECT_TRUE(batch->mask[0].narrow(0, short_len, 8 - short_len).eq(0).all().item<bool>());

  auto shortest = tok.tokenize({"a cat", "a dog"}, Padding::to_longest);
  ASSERT_TRUE(shortest.ok());
  EXPECT_EQ(shortest->ids.size(1), std::max(shortest->lengths[0], shortest->lengths[1]));
  EXPECT_FALSE(tok.tokenize({}).ok());
}

TEST(SentencePieceTokenizer, UnescapesHtmlTwiceAndCollapsesWhitespace) {
  EXPECT_EQ(clean("  a&amp;amp;b \t\n c&#x27;s&nbsp;&lt;x&gt;  "), "a&b c's <x>");
  EXPECT_EQ(clean("caf&#233; &#128; &ampx &bogus; &#0; &#"), "caf\u00e9 \u20ac &x &bogus; \uFFFD &#");
  EXPECT_EQ(clean("line\u2028break\u3000wide"), "line break wide");
  auto tok = tokenizer(64);
  EXPECT_EQ(encode(tok, "the river &amp;   the sea"), encode(tok, "the river & the sea"));
}

TEST(SentencePieceTokenizer, RejectsTextThatIsNotUtf8) {
  auto tok = tokenizer();
  auto ids = tok.encode("a \xff cat");
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.error().code, Errc::invalid_argument);
  auto batch = tok.tokenize({"a cat", "bad \xc3"});
  ASSERT_FALSE(batch.ok());
  EXPECT_NE(batch.error().message.find("prompt 1"), std::string::npos) << batch.error().message;
}

TEST(SentencePieceTokenizer, NamesAMissingOrUnreadableModelFile) {
  const std::string missing = (scratch() / "nowhere" / "spiece.model").string();
  auto tok = SentencePieceTokenizer::load(missing, 16);
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.error().code, Errc::not_found);
  EXPECT_NE(tok.error().message.find(missing), std::string::npos) << tok.error().message;

  const std::string garbage = (scratch() / "garbage.model").string();
  std::ofstream(garbage) << "not a model";
  auto bad = SentencePieceTokenizer::load(garbage, 16);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::corrupt_data);
  EXPECT_NE(bad.error().message.find(garbage), std::string::npos) << bad.error().message;
}

TEST(SentencePieceTokenizer, RejectsAModelWithoutAPadPiece) {
  auto tok = SentencePieceTokenizer::load(train_spm("defaults", false), 16);
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.error().code, Errc::corrupt_data);
  EXPECT_NE(tok.error().message.find("pad"), std::string::npos) << tok.error().message;
}

// --- the TextEncoder --------------------------------------------------------------------------

TEST(UmT5TextEncoder, EncodesEachPromptAsItWouldAloneWithZeroRowsAfterIt) {
  UmT5TextEncoder encoder(tokenizer(), random_encoder(small_config(), 19));
  EXPECT_EQ(encoder.dim(), 32);
  EXPECT_EQ(encoder.max_length(), 16);
  const std::vector<std::string> prompts = {"a cat", "the lazy dog sleeps under a tall tree"};
  auto out = encoder.encode(prompts);
  ASSERT_TRUE(out.ok()) << out.error().message;
  const auto n0 = static_cast<int64_t>(encode(encoder.tokenizer(), prompts[0]).size());
  const auto n1 = static_cast<int64_t>(encode(encoder.tokenizer(), prompts[1]).size());
  ASSERT_EQ(out->sizes(), (std::vector<int64_t>{2, n1, 32}));
  EXPECT_TRUE(out->select(0, 0).narrow(0, n0, n1 - n0).eq(0).all().item<bool>());
  EXPECT_GT(out->select(0, 0).narrow(0, 0, n0).abs().min().item<float>(), 0.0f);
  for (size_t b = 0; b < prompts.size(); ++b) {
    auto alone = encoder.encode({prompts[b]});
    ASSERT_TRUE(alone.ok());
    const int64_t n = b == 0 ? n0 : n1;
    EXPECT_LE(deviation((*out)[static_cast<int64_t>(b)].narrow(0, 0, n), (*alone)[0]).rel, 1e-6) << b;
  }
  EXPECT_FALSE(encoder.encode({}).ok());
  EXPECT_FALSE(encoder.encode_ids(torch::tensor({{200, 1}}, torch::kLong), torch::ones({1, 2}, torch::kLong)).ok());
}

TEST(UmT5TextEncoder, LoadNamesAMissingSpieceModel) {
  const std::string weights = save(random_encoder(small_config(), 23), "te.safetensors");
  const std::string missing = (scratch() / "no_such_dir" / "spiece.model").string();
  auto encoder = UmT5TextEncoder::load(missing, {weights});
  ASSERT_FALSE(encoder.ok());
  EXPECT_EQ(encoder.error().code, Errc::not_found);
  EXPECT_NE(encoder.error().message.find(missing), std::string::npos) << encoder.error().message;

  auto loaded = UmT5TextEncoder::load(t5_spm(), {weights});
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->max_length(), 512);  // no text_len in the metadata: Wan's
}

}  // namespace
}  // namespace reel::models
