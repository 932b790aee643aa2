#include "cachestore/prompt_parts.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cachestore/embedder.hpp"

namespace reel::cachestore {

// Readable failure messages: objects in brackets, then the background.
void PrintTo(const PromptParts& parts, std::ostream* os) {
  for (const std::string& object : parts.objects) *os << "[" << object << "] ";
  *os << "on {" << parts.background << "}";
}

namespace {

PromptParts parts(std::vector<std::string> objects, std::string background) {
  return PromptParts{std::move(objects), std::move(background)};
}

TEST(PromptParts, SplitsShapesWorldPromptsExactly) {
  // Written by hand following models/shapes/grammar.hpp.
  struct Case {
    const char* prompt;
    PromptParts expected;
  };
  const std::vector<Case> cases = {
      {"a large red circle moving right and a small blue square standing still on a striped navy "
       "background",
       parts({"a large red circle moving right", "a small blue square standing still"},
             "a striped navy background")},
      {"a small green triangle bouncing on a gray background",
       parts({"a small green triangle bouncing"}, "a gray background")},
      {"a large yellow square moving up on a sand background",
       parts({"a large yellow square moving up"}, "a sand background")},
      {"a small purple circle moving left and a large white triangle bouncing on a checkered gray "
       "background",
       parts({"a small purple circle moving left", "a large white triangle bouncing"},
             "a checkered gray background")},
      {"a large black triangle standing still on a sky background",
       parts({"a large black triangle standing still"}, "a sky background")},
      {"a small orange square moving down on a striped sand background",
       parts({"a small orange square moving down"}, "a striped sand background")},
      {"A Large Cyan Circle moving up on a navy background.",
       parts({"a large cyan circle moving up"}, "a navy background")},
      {"a small magenta triangle moving right and a small red circle moving left on a sky "
       "background",
       parts({"a small magenta triangle moving right", "a small red circle moving left"},
             "a sky background")},
      {"a large blue square bouncing and a large green circle standing still on a gray background",
       parts({"a large blue square bouncing", "a large green circle standing still"},
             "a gray background")},
      {"a small white circle standing still on a striped navy background",
       parts({"a small white circle standing still"}, "a striped navy background")},
      {"a large red triangle moving down and a small yellow square bouncing on a sand background",
       parts({"a large red triangle moving down", "a small yellow square bouncing"},
             "a sand background")},
      {"a  small black square   moving left on a checkered gray background",
       parts({"a small black square moving left"}, "a checkered gray background")},
  };
  for (const Case& c : cases) {
    PromptParts got = split_prompt(c.prompt);
    EXPECT_TRUE(got.split()) << c.prompt;
    EXPECT_EQ(got, c.expected) << c.prompt;
  }
}

TEST(PromptParts, SplitsNaturalPromptsIntoSubjectAndScene) {
  struct Case {
    const char* prompt;
    PromptParts expected;
  };
  const std::vector<Case> cases = {
      {"a green van drives past a wooden picket fence on a rainy day",
       parts({"a green van"}, "a wooden picket fence on a rainy day")},
      {"A cat sitting on a windowsill at sunset", parts({"a cat"}, "a windowsill at sunset")},
      {"two dogs running in a snowy forest", parts({"two dogs"}, "a snowy forest")},
      {"an old man walks his dog along a quiet beach", parts({"an old man"}, "a quiet beach")},
      {"three ducks and a goose swim across a frozen pond",
       parts({"three ducks", "a goose"}, "a frozen pond")},
      {"a woman in a yellow raincoat walking through a rainy city street",
       parts({"a woman in a yellow raincoat"}, "a rainy city street")},
      {"a fox trots across a field while an owl watches from a branch",
       parts({"a fox"}, "a field")},
      {"a timelapse of clouds drifting over a mountain ridge",
       parts({"clouds"}, "a mountain ridge")},
      {"a black and white cat sleeping on a red sofa",
       parts({"a black and white cat"}, "a red sofa")},
      {"a fish swimming underwater", parts({"a fish"}, "underwater")},
      {"a ball rolling from left to right across a wooden floor",
       parts({"a ball"}, "a wooden floor")},
      {"Golden retriever puppies playing in the snow.",
       parts({"golden retriever puppies"}, "the snow")},
      {"a skier sliding down a snowy mountain", parts({"a skier"}, "a snowy mountain")},
      {"an artist with a grey beard painting on a big canvas",
       parts({"an artist with a grey beard"}, "a big canvas")},
  };
  for (const Case& c : cases) {
    PromptParts got = split_prompt(c.prompt);
    EXPECT_TRUE(got.split()) << c.prompt;
    EXPECT_EQ(got, c.expected) << c.prompt;
  }
}

TEST(PromptParts, TurnsARelationalPhraseBeforeTheSceneIntoASecondObject) {
  EXPECT_EQ(split_prompt("a brown horse grazing beside a wooden barn in a green meadow"),
            parts({"a brown horse", "a wooden barn"}, "a green meadow"));
  EXPECT_EQ(split_prompt("a lamp standing next to an armchair in a bright living room"),
            parts({"a lamp", "an armchair"}, "a bright living room"));
  // With no scene after it, the related thing is the background.
  EXPECT_EQ(split_prompt("a rabbit resting near a stone wall"),
            parts({"a rabbit"}, "a stone wall"));
}

TEST(PromptParts, LeavesPromptsWithoutSubjectOrSceneWhole) {
  for (const char* prompt : {"a robot dancing", "in a quiet forest", "it is raining in the city",
                             "a chef chopping vegetables", "a paper boat floating in slow motion",
                             "a dog chases a ball and a cat watches from the sofa", "", "...",
                             "a tree changes colour over time", "a man sets up a tent",
                             "a caterpillar turning into a butterfly",
                             "a man in a grey coat reading a newspaper"}) {
    PromptParts got = split_prompt(prompt);
    EXPECT_FALSE(got.split()) << prompt;
    EXPECT_EQ(got, PromptParts{}) << prompt;
  }
}

// The T2V-CompBench prompts (../shared/data/prompts): no crash, a fair share split, and every
// part made of the prompt's own words.
TEST(PromptParts, SplitsAShareOfRealPromptsIntoPartsOfTheirOwnWords) {
  std::filesystem::path file = std::filesystem::path(REEL_SHARED_DIR) / "data/prompts/t2v-compbench.txt";
  if (!std::filesystem::exists(file)) GTEST_SKIP() << file << " is absent";
  std::ifstream in(file);
  std::string line;
  int total = 0;
  int split = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ++total;
    PromptParts got = split_prompt(line);
    if (!got.split()) continue;
    ++split;
    std::set<std::string> words;
    std::istringstream prompt_words(normalize_text(line));
    for (std::string w; prompt_words >> w;) words.insert(w);
    std::vector<std::string> pieces = got.objects;
    pieces.push_back(got.background);
    for (const std::string& piece : pieces) {
      std::istringstream piece_words(normalize_text(piece));
      for (std::string w; piece_words >> w;) EXPECT_TRUE(words.contains(w)) << w << " in " << line;
    }
  }
  EXPECT_GE(total, 700);
  EXPECT_GE(split, total * 2 / 5) << split << " of " << total << " split";
}

}  // namespace
}  // namespace reel::cachestore
