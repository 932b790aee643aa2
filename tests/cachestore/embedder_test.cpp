#include "cachestore/embedder.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace reel::cachestore {
namespace {

float dot(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(sum);
}

float norm(const std::vector<float>& a) { return std::sqrt(dot(a, a)); }

const std::vector<std::string> kCorpus = {
    "a video of a red fox running through a snowy forest",
    "a video of a black cat sleeping on a sofa",
    "a video of a sailboat drifting across a calm lake at dawn",
    "a video of two horses galloping along a beach",
    "a video of a chef slicing onions in a busy kitchen",
    "a video of a hot air balloon rising over green hills",
};

TEST(Embedder, NormalizesCasePunctuationAndWhitespace) {
  EXPECT_EQ(normalize_text("  A Cat,   sitting!\tOn the MAT. "), "a cat sitting on the mat");
  EXPECT_EQ(normalize_text("dog's ball -- x-ray"), "dog s ball x ray");
  EXPECT_EQ(normalize_text("?!..."), "");
  EXPECT_EQ(normalize_text("Café"), "caf\xc3\xa9");  // UTF-8 bytes are kept as word bytes
}

TEST(NgramEmbedder, GivesUnitVectorsOfItsDimension) {
  NgramEmbedder embedder(NgramOptions{.dim = 256});
  EXPECT_EQ(embedder.dim(), 256);
  for (const std::string& prompt : kCorpus) {
    std::vector<float> v = embedder.embed(prompt);
    ASSERT_EQ(v.size(), 256u);
    EXPECT_NEAR(norm(v), 1.0F, 1e-5F);
  }
}

TEST(NgramEmbedder, GivesEmptyTextAFixedUnitVectorInsteadOfZero) {
  NgramEmbedder embedder;
  std::vector<float> empty = embedder.embed("");
  EXPECT_NEAR(norm(empty), 1.0F, 1e-6F);
  EXPECT_EQ(embedder.embed("?!  ..."), empty);
  EXPECT_LT(std::abs(dot(empty, embedder.embed("a red fox"))), 0.2F);
}

TEST(NgramEmbedder, IgnoresCaseAndPunctuation) {
  NgramEmbedder embedder;
  EXPECT_EQ(embedder.embed("A red fox, running!"), embedder.embed("a red fox running"));
}

TEST(NgramEmbedder, RanksNearDuplicatesAboveRelatedAboveUnrelatedPrompts) {
  NgramEmbedder embedder;
  auto base = embedder.embed("a red fox running through a snowy forest");
  float near_duplicate = dot(base, embedder.embed("a red fox runs through the snowy forest"));
  float related = dot(base, embedder.embed("a grey wolf walking in a forest"));
  float unrelated = dot(base, embedder.embed("chef slicing onions in a busy kitchen"));
  EXPECT_GT(near_duplicate, 0.7F);
  EXPECT_GT(near_duplicate, related);
  EXPECT_GT(related, unrelated);
  EXPECT_LT(unrelated, 0.3F);
}

TEST(NgramEmbedder, CharacterNgramsMatchInflectionsThatWordsMiss) {
  NgramEmbedder words_only(NgramOptions{.char_weight = 0.0});
  NgramEmbedder mixed(NgramOptions{.char_weight = 0.5});
  auto similarity = [](const NgramEmbedder& e) {
    return dot(e.embed("dogs jumping"), e.embed("dog jumps"));
  };
  EXPECT_LT(similarity(words_only), 0.1F);
  EXPECT_GT(similarity(mixed), similarity(words_only) + 0.1F);
}

TEST(NgramEmbedder, FittingDownweightsWordsThatEveryPromptShares) {
  NgramEmbedder plain;
  NgramEmbedder fitted;
  fitted.fit(kCorpus);
  // The two share only "a video of a"; after fitting those words say little.
  std::string a = "a video of a red fox running through a snowy forest";
  std::string b = "a video of a chef slicing onions in a busy kitchen";
  EXPECT_LT(dot(fitted.embed(a), fitted.embed(b)), dot(plain.embed(a), plain.embed(b)));
}

TEST(NgramEmbedder, NameCarriesEveryOptionThatChangesVectors) {
  EXPECT_EQ(NgramEmbedder().name(), "ngram-v1(dim=1024,word=1-2,char=3-5,char_weight=0.5)");
  EXPECT_NE(NgramEmbedder(NgramOptions{.dim = 512}).name(), NgramEmbedder().name());
  EXPECT_NE(NgramEmbedder(NgramOptions{.word_ngram_max = 3}).name(), NgramEmbedder().name());
  EXPECT_NE(NgramEmbedder(NgramOptions{.char_ngram_min = 2}).name(), NgramEmbedder().name());
  EXPECT_NE(NgramEmbedder(NgramOptions{.char_weight = 0.25}).name(), NgramEmbedder().name());
}

TEST(NgramEmbedder, ClampsOptionsThatValidateRejects) {
  EXPECT_TRUE(validate(NgramOptions{}).ok());
  NgramOptions bad{.dim = 0, .word_ngram_max = 0, .char_ngram_min = 4, .char_ngram_max = 2,
                   .char_weight = 2.0};
  EXPECT_EQ(validate(bad).error().code, Errc::invalid_argument);
  NgramEmbedder embedder(bad);
  EXPECT_EQ(embedder.name(), "ngram-v1(dim=1,word=1-1,char=4-4,char_weight=1)");
  EXPECT_NEAR(norm(embedder.embed("a cat")), 1.0F, 1e-6F);
}

TEST(NgramEmbedder, IsTheSameOnEveryMachine) {
  // Hashes come from codecs::checksum64, not std::hash: these values must never change without
  // a new name(), or cached vectors stop matching new ones.
  NgramEmbedder embedder(NgramOptions{.dim = 64});
  std::vector<float> v = embedder.embed("a red circle");
  EXPECT_NEAR(v[17], 0.316228F, 1e-5F);   // one word n-gram
  EXPECT_NEAR(v[54], -0.316228F, 1e-5F);  // another, hashed to a negative sign
  EXPECT_NEAR(v[1], -0.176777F, 1e-5F);   // one character n-gram
  EXPECT_NEAR(v[10], -0.353553F, 1e-5F);  // two character n-grams in one bucket
  EXPECT_EQ(v[0], 0.0F);
}

TEST(NgramEmbedder, IdfSurvivesSerialisationSoVectorsStayComparable) {
  NgramEmbedder fitted;
  fitted.fit(kCorpus);
  EXPECT_NE(fitted.idf_checksum(), 0u);
  NgramEmbedder restored;
  EXPECT_EQ(restored.idf_checksum(), 0u);
  Status status = restored.load_idf(fitted.serialize_idf());
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(restored.idf_checksum(), fitted.idf_checksum());
  EXPECT_EQ(restored.serialize_idf(), fitted.serialize_idf());
  for (const std::string& prompt : kCorpus) EXPECT_EQ(restored.embed(prompt), fitted.embed(prompt));

  // An unfitted table round-trips to the unfitted state.
  NgramEmbedder plain;
  ASSERT_TRUE(restored.load_idf(NgramEmbedder().serialize_idf()).ok());
  EXPECT_EQ(restored.idf_checksum(), 0u);
  EXPECT_EQ(restored.embed(kCorpus[0]), plain.embed(kCorpus[0]));
}

TEST(NgramEmbedder, RefusesIdfFromOtherOptionsOrDamagedText) {
  NgramEmbedder fitted;
  fitted.fit(kCorpus);
  std::string text = fitted.serialize_idf();

  NgramEmbedder other(NgramOptions{.dim = 512});
  Status wrong_options = other.load_idf(text);
  ASSERT_FALSE(wrong_options.ok());
  EXPECT_EQ(wrong_options.error().code, Errc::invalid_argument);

  NgramEmbedder target;
  std::vector<float> before = target.embed(kCorpus[0]);
  std::string flipped = text;
  size_t digit = flipped.find("word ") + 5;
  flipped[digit] = flipped[digit] == '1' ? '2' : '1';
  for (const std::string& damaged :
       {flipped, text.substr(0, text.size() / 2), std::string("garbage"), std::string()}) {
    Status status = target.load_idf(damaged);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code, Errc::corrupt_data) << status.error().message;
  }
  EXPECT_EQ(target.embed(kCorpus[0]), before);  // failed loads change nothing
  EXPECT_EQ(target.idf_checksum(), 0u);
}

}  // namespace
}  // namespace reel::cachestore
