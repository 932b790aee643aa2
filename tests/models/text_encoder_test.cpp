#include "models/text_encoder.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "models/decoder.hpp"
#include "models/safetensors.hpp"
#include "models/tokenizer.hpp"

namespace reel::models {
namespace {

const std::vector<std::string> kWords = {"a", "red", "blue", "cat", "dog", "runs", "on", "the", "grass", "3", "times"};

WordTokenizer tokenizer() { return WordTokenizer(kWords); }

WordEncoderConfig small_config() {
  WordEncoderConfig cfg;
  cfg.dim = 32;
  cfg.heads = 4;
  cfg.ffn_dim = 64;
  cfg.layers = 2;
  cfg.max_length = 8;
  return cfg;
}

WordEncoder make_encoder(uint64_t seed) {
  auto enc = WordEncoder::random(kWords, small_config(), seed);
  if (!enc) ADD_FAILURE() << enc.error().message;
  return std::move(enc).value();
}

at::Tensor encode(WordEncoder& enc, const std::vector<std::string>& prompts) {
  auto out = enc.encode(prompts);
  if (!out) ADD_FAILURE() << out.error().message;
  return out ? *out : at::Tensor();
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("reel_te_" + std::to_string(::getpid()) + "_" + name)).string();
}

// --- tokenizer ----------------------------------------------------------------------------

TEST(WordTokenizer, SplitsOnSpaceAndPunctuationAndLowercases) {
  EXPECT_EQ(WordTokenizer::split("  A Red-haired CAT,\truns 3 times!\n"),
            (std::vector<std::string>{"a", "red", "haired", "cat", "runs", "3", "times"}));
  EXPECT_EQ(WordTokenizer::split("dog's...   (grass)"), (std::vector<std::string>{"dog", "s", "grass"}));
}

TEST(WordTokenizer, MapsWordsToIdsAfterTheReservedOnes) {
  auto ids = tokenizer().encode("The RED cat.", UnknownPolicy::error);
  ASSERT_TRUE(ids) << ids.error().message;
  EXPECT_EQ(*ids, (std::vector<int64_t>{2 + 7, 2 + 1, 2 + 3}));
  EXPECT_EQ(tokenizer().vocab_size(), static_cast<int64_t>(kWords.size()) + 2);
}

TEST(WordTokenizer, UnknownWordsErrorListsEveryUnknownWordQuoted) {
  auto ids = tokenizer().encode("a purple cat on a hexagon, purple!", UnknownPolicy::error);
  ASSERT_FALSE(ids);
  EXPECT_EQ(ids.error().code, Errc::invalid_argument);
  EXPECT_EQ(ids.error().message, "unknown words in prompt: \"purple\", \"hexagon\" (the model knows " +
                                     std::to_string(kWords.size()) + " words; see 'reel models')");
}

TEST(WordTokenizer, MapToUnkGivesIdOneAndReportsTheUnknownWords) {
  std::vector<std::string> unknown;
  auto ids = tokenizer().encode("a Purple cat on a hexagon", UnknownPolicy::map_to_unk, WordTokenizer::kNoLimit,
                                &unknown);
  ASSERT_TRUE(ids) << ids.error().message;
  EXPECT_EQ(*ids, (std::vector<int64_t>{2, 1, 5, 8, 2, 1}));
  EXPECT_EQ(unknown, (std::vector<std::string>{"purple", "hexagon"}));
  EXPECT_EQ(tokenizer().unknown_words("purple hexagon purple cat"),
            (std::vector<std::string>{"purple", "hexagon"}));
}

TEST(WordTokenizer, EmptyOrPunctuationOnlyPromptIsAnError) {
  for (const char* prompt : {"", "   ", " ,.!? -- "}) {
    auto ids = tokenizer().encode(prompt, UnknownPolicy::map_to_unk);
    ASSERT_FALSE(ids) << "prompt '" << prompt << "'";
    EXPECT_EQ(ids.error().code, Errc::invalid_argument);
    EXPECT_EQ(ids.error().message, "empty prompt");
  }
}

TEST(WordTokenizer, PromptLongerThanTheLimitIsAnErrorNamingTheLimit) {
  auto ok = tokenizer().encode("a red cat", UnknownPolicy::error, 3);
  EXPECT_TRUE(ok);
  auto ids = tokenizer().encode("a red cat runs", UnknownPolicy::error, 3);
  ASSERT_FALSE(ids);
  EXPECT_EQ(ids.error().code, Errc::invalid_argument);
  EXPECT_NE(ids.error().message.find("at most 3"), std::string::npos) << ids.error().message;
}

TEST(WordTokenizer, ToStringAndFromStringRoundTrip) {
  auto t = tokenizer();
  auto back = WordTokenizer::from_string(t.to_string());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->words(), t.words());
  const std::string prompt = "the blue dog runs";
  EXPECT_EQ(*back->encode(prompt, UnknownPolicy::error), *t.encode(prompt, UnknownPolicy::error));
  auto trailing = WordTokenizer::from_string("cat\ndog\n");
  ASSERT_TRUE(trailing);
  EXPECT_EQ(trailing->words(), (std::vector<std::string>{"cat", "dog"}));
}

TEST(WordTokenizer, FromStringRejectsEmptyLinesRepeatsAndNonWords) {
  for (const char* bad : {"cat\n\ndog", "cat\ndog\ncat", "red cat", "Cat", "cat!"}) {
    auto t = WordTokenizer::from_string(bad);
    ASSERT_FALSE(t) << bad;
    EXPECT_EQ(t.error().code, Errc::invalid_argument);
  }
}

// --- encoder ------------------------------------------------------------------------------

TEST(WordEncoder, OutputIsBatchByLongestPromptByDimWithZeroRowsAtPads) {
  auto enc = make_encoder(7);
  auto out = encode(enc, {"a red cat", "the blue dog runs on the grass", "cat"});
  ASSERT_TRUE(out.defined());
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 7, 32}));
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  EXPECT_TRUE(out[0].slice(0, 3).eq(0).all().item<bool>());
  EXPECT_TRUE(out[2].slice(0, 1).eq(0).all().item<bool>());
  EXPECT_TRUE(out[1].abs().sum(-1).gt(0).all().item<bool>());
  EXPECT_TRUE(out[0].slice(0, 0, 3).abs().sum(-1).gt(0).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
}

TEST(WordEncoder, SameSeedGivesSameOutputsAndOtherSeedsDiffer) {
  auto a = make_encoder(11);
  auto b = make_encoder(11);
  auto c = make_encoder(12);
  const std::vector<std::string> prompts = {"a red cat runs", "the dog"};
  auto oa = encode(a, prompts);
  EXPECT_TRUE(torch::equal(oa, encode(b, prompts)));
  EXPECT_GT((oa - encode(c, prompts)).abs().max().item<double>(), 1e-3);
}

TEST(WordEncoder, PromptOutputDoesNotDependOnTheOtherPromptsInTheBatch) {
  auto enc = make_encoder(3);
  const std::vector<std::string> prompts = {"a cat", "the red dog runs on the grass", "blue cat runs"};
  auto batched = encode(enc, prompts);
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto alone = encode(enc, {prompts[i]})[0];  // [L_i, D]
    auto rows = batched[static_cast<int64_t>(i)].slice(0, 0, alone.size(0));
    EXPECT_LT((rows - alone).abs().max().item<double>(), 1e-5) << prompts[i];
  }
}

TEST(WordEncoder, UnknownWordsFollowThePolicy) {
  auto enc = make_encoder(1);
  auto err = enc.encode({"a red cat", "a purple cat"});
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().code, Errc::invalid_argument);
  EXPECT_NE(err.error().message.find("prompt 1: unknown words in prompt: \"purple\""), std::string::npos)
      << err.error().message;
  enc.set_unknown_policy(UnknownPolicy::map_to_unk);
  auto out = enc.encode({"a purple cat"});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->sizes(), (std::vector<int64_t>{1, 3, 32}));
}

TEST(WordEncoder, TooLongPromptAndEmptyBatchAreErrors) {
  auto enc = make_encoder(1);
  auto too_long = enc.encode({"a red cat runs on the grass 3 times"});  // 9 words, limit 8
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, Errc::invalid_argument);
  EXPECT_NE(too_long.error().message.find("at most 8"), std::string::npos) << too_long.error().message;
  auto none = enc.encode({});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::invalid_argument);
}

TEST(WordEncoder, ConfigThatDoesNotFitIsRejected) {
  auto cfg = small_config();
  cfg.heads = 5;
  EXPECT_FALSE(WordEncoder::random(kWords, cfg, 0));
  cfg = small_config();
  cfg.vocab_size = 4;
  auto wrong_vocab = WordEncoder::random(kWords, cfg, 0);
  ASSERT_FALSE(wrong_vocab);
  EXPECT_EQ(wrong_vocab.error().code, Errc::invalid_argument);
}

TEST(WordEncoder, SaveAndLoadThroughSafetensorsGivesIdenticalOutputs) {
  auto enc = make_encoder(5);
  const std::string path = temp_path("roundtrip.safetensors");
  auto tensors = enc.named_tensors();
  tensors.emplace_back("blocks.0.other_model.weight", torch::ones({2, 2}));  // a DiT beside it
  for (const auto& [name, t] : tensors) {
    if (name == "blocks.0.other_model.weight") continue;
    EXPECT_EQ(name.rfind("text_encoder.", 0), 0u) << name;
  }
  auto md = enc.metadata();
  EXPECT_EQ(md.at("text_encoder.dim"), "32");
  ASSERT_TRUE(save_safetensors(path, tensors, md));

  auto file = SafeTensors::open(path);
  ASSERT_TRUE(file) << file.error().message;
  auto loaded = WordEncoder::load(*file);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->tokenizer().words(), enc.tokenizer().words());
  EXPECT_EQ(loaded->dim(), 32);
  EXPECT_EQ(loaded->max_length(), 8);
  const std::vector<std::string> prompts = {"a red cat runs", "the dog on the grass"};
  EXPECT_TRUE(torch::equal(encode(enc, prompts), encode(*loaded, prompts)));
  std::filesystem::remove(path);
}

TEST(WordEncoder, LoadingReportsMissingAndMisshapenTensorsByName) {
  auto enc = make_encoder(5);
  auto tensors = enc.named_tensors();
  const std::string path = temp_path("broken.safetensors");

  auto missing = tensors;
  missing.erase(missing.begin());  // text_encoder.token_embedding.weight
  ASSERT_TRUE(save_safetensors(path, missing, enc.metadata()));
  auto file = SafeTensors::open(path);
  ASSERT_TRUE(file) << file.error().message;
  auto loaded = WordEncoder::load(*file);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, Errc::corrupt_data);
  EXPECT_NE(loaded.error().message.find(path), std::string::npos) << loaded.error().message;
  EXPECT_NE(loaded.error().message.find("missing tensor 'text_encoder.token_embedding.weight'"), std::string::npos)
      << loaded.error().message;

  auto misshapen = tensors;
  misshapen[1].second = torch::zeros({3, 32});  // position_embedding is [8, 32]
  ASSERT_TRUE(save_safetensors(path, misshapen, enc.metadata()));
  file = SafeTensors::open(path);
  ASSERT_TRUE(file) << file.error().message;
  loaded = WordEncoder::load(*file);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("'text_encoder.position_embedding.weight' has shape"), std::string::npos)
      << loaded.error().message;

  auto md = enc.metadata();
  md.erase("text_encoder.vocab");
  ASSERT_TRUE(save_safetensors(path, tensors, md));
  file = SafeTensors::open(path);
  ASSERT_TRUE(file) << file.error().message;
  loaded = WordEncoder::load(*file);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("'text_encoder.vocab' is missing"), std::string::npos)
      << loaded.error().message;
  std::filesystem::remove(path);
}

TEST(WordEncoder, ConfigMetadataRoundTrips) {
  auto cfg = small_config();
  cfg.vocab_size = 13;
  cfg.eps = 1e-5;
  auto back = WordEncoderConfig::from_metadata(cfg.to_metadata("te"), "te");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->vocab_size, 13);
  EXPECT_EQ(back->dim, cfg.dim);
  EXPECT_EQ(back->layers, cfg.layers);
  EXPECT_EQ(back->heads, cfg.heads);
  EXPECT_EQ(back->ffn_dim, cfg.ffn_dim);
  EXPECT_EQ(back->max_length, cfg.max_length);
  EXPECT_EQ(back->eps, cfg.eps);
}

// --- decoder ------------------------------------------------------------------------------

TEST(IdentityDecoder, MapsMinusOneZeroAndOneToZero128And255) {
  IdentityDecoder dec;
  auto latents = torch::tensor({-1.0f, 0.0f, 1.0f}).view({1, 3, 1, 1, 1});  // channels R, G, B
  auto frames = dec.decode(latents);
  ASSERT_TRUE(frames) << frames.error().message;
  EXPECT_EQ(frames->sizes(), (std::vector<int64_t>{1, 1, 1, 1, 3}));
  EXPECT_EQ(frames->scalar_type(), at::kByte);
  auto px = frames->flatten();
  EXPECT_EQ(px[0].item<int>(), 0);
  EXPECT_EQ(px[1].item<int>(), 128);
  EXPECT_EQ(px[2].item<int>(), 255);
}

TEST(IdentityDecoder, ClampsValuesOutsideTheRange) {
  IdentityDecoder dec;
  auto latents = torch::tensor({-7.0f, 1.5f, 1e30f}).view({1, 3, 1, 1, 1});
  auto frames = dec.decode(latents);
  ASSERT_TRUE(frames) << frames.error().message;
  auto px = frames->flatten();
  EXPECT_EQ(px[0].item<int>(), 0);
  EXPECT_EQ(px[1].item<int>(), 255);
  EXPECT_EQ(px[2].item<int>(), 255);
}

TEST(IdentityDecoder, WrongChannelCountRankOrNanIsAnError) {
  IdentityDecoder dec;
  auto four = dec.decode(torch::zeros({1, 4, 2, 2, 2}));
  ASSERT_FALSE(four);
  EXPECT_EQ(four.error().code, Errc::invalid_argument);
  EXPECT_NE(four.error().message.find("3 (RGB) channels, got 4"), std::string::npos) << four.error().message;
  EXPECT_FALSE(dec.decode(torch::zeros({3, 2, 2, 2})));
  auto nan = torch::zeros({1, 3, 1, 1, 1});
  nan[0][1] = std::nanf("");
  EXPECT_FALSE(dec.decode(nan));
}

TEST(IdentityDecoder, EncodePixelsIsTheInverseWithinOneStep) {
  auto frames = torch::randint(0, 256, {4, 5, 6, 3}, torch::kLong).to(torch::kByte);  // [F, H, W, 3]
  auto latents = encode_pixels(frames);
  ASSERT_TRUE(latents) << latents.error().message;
  EXPECT_EQ(latents->sizes(), (std::vector<int64_t>{1, 3, 4, 5, 6}));
  EXPECT_GE(latents->min().item<float>(), -1.0f);
  EXPECT_LE(latents->max().item<float>(), 1.0f);
  IdentityDecoder dec;
  auto back = dec.decode(*latents);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(torch::equal((*back)[0], frames));
  // And latents -> pixels -> latents moves a value by at most one quantisation step.
  auto x = torch::rand({1, 3, 2, 3, 3}) * 2 - 1;
  auto again = encode_pixels((*dec.decode(x))[0]);
  ASSERT_TRUE(again);
  EXPECT_LE((*again - x).abs().max().item<double>(), 1.0 / 127.5);
  EXPECT_FALSE(encode_pixels(torch::zeros({4, 5, 6, 3})));  // float, not uint8
}

TEST(Decoder, ChunkedDecodingEqualsDecodingAllFramesAtOnce) {
  IdentityDecoder dec;
  auto latents = torch::rand({2, 3, 7, 4, 4}) * 2 - 1;
  auto whole = dec.decode(latents);
  ASSERT_TRUE(whole);
  auto chunked = decode_chunked(dec, latents, 3);
  ASSERT_TRUE(chunked) << chunked.error().message;
  EXPECT_TRUE(torch::equal(*whole, *chunked));

  std::vector<int64_t> firsts;
  auto st = decode_in_chunks(dec, latents, 3, [&](int64_t first, const at::Tensor& frames) -> Status {
    firsts.push_back(first);
    EXPECT_EQ(frames.size(1), std::min<int64_t>(3, 7 - first));
    return {};
  });
  EXPECT_TRUE(st);
  EXPECT_EQ(firsts, (std::vector<int64_t>{0, 3, 6}));

  auto part = decode_frames(dec, latents, 2, 4);
  ASSERT_TRUE(part);
  EXPECT_TRUE(torch::equal(*part, whole->slice(1, 2, 6)));
  EXPECT_FALSE(decode_frames(dec, latents, 5, 3));
  EXPECT_FALSE(decode_chunked(dec, latents, 0));
}

}  // namespace
}  // namespace reel::models
