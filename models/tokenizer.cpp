#include "models/tokenizer.hpp"

#include <algorithm>
#include <unordered_set>

namespace reel::models {

namespace {

bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c); }

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return lower(c); });
  return s;
}

// "purple", "hexagon"
std::string quoted_list(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out += ", ";
    out += '"' + w + '"';
  }
  return out;
}

}  // namespace

WordTokenizer::WordTokenizer(std::vector<std::string> words) : words_(std::move(words)) {
  for (size_t i = 0; i < words_.size(); ++i) {
    words_[i] = lowercase(std::move(words_[i]));
    ids_.emplace(words_[i], kFirstWordId + static_cast<int64_t>(i));  // keeps the first on repeats
  }
}

std::vector<std::string> WordTokenizer::split(const std::string& prompt) {
  std::vector<std::string> out;
  std::string word;
  for (unsigned char c : prompt) {
    if (is_word_byte(c)) {
      word += lower(c);
    } else if (!word.empty()) {
      out.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

int64_t WordTokenizer::id(const std::string& word) const {
  auto it = ids_.find(word);
  return it == ids_.end() ? kUnkId : it->second;
}

std::vector<std::string> WordTokenizer::unknown_words(const std::string& prompt) const {
  std::vector<std::string> unknown;
  std::unordered_set<std::string> seen;
  for (auto& word : split(prompt))
    if (!ids_.count(word) && seen.insert(word).second) unknown.push_back(std::move(word));
  return unknown;
}

Expected<std::vector<int64_t>> WordTokenizer::encode(const std::string& prompt, UnknownPolicy policy,
                                                     int64_t max_length, std::vector<std::string>* unknown) const {
  const auto words = split(prompt);
  if (words.empty()) return make_error(Errc::invalid_argument, "empty prompt");

  auto missing = unknown_words(prompt);
  switch (policy) {
    case UnknownPolicy::error:
      if (!missing.empty())
        return make_error(Errc::invalid_argument, "unknown words in prompt: " + quoted_list(missing) +
                                                      " (the model knows " + std::to_string(words_.size()) +
                                                      " words; see 'reel models')");
      break;
    case UnknownPolicy::map_to_unk:
      break;
  }
  if (static_cast<int64_t>(words.size()) > max_length)
    return make_error(Errc::invalid_argument, "prompt has " + std::to_string(words.size()) +
                                                  " words; the text encoder reads at most " +
                                                  std::to_string(max_length));

  std::vector<int64_t> ids;
  ids.reserve(words.size());
  for (const auto& word : words) ids.push_back(id(word));
  if (unknown != nullptr) *unknown = std::move(missing);
  return ids;
}

std::string WordTokenizer::to_string() const {
  std::string out;
  for (size_t i = 0; i < words_.size(); ++i) {
    if (i > 0) out += '\n';
    out += words_[i];
  }
  return out;
}

Expected<WordTokenizer> WordTokenizer::from_string(const std::string& s) {
  std::vector<std::string> words;
  std::unordered_set<std::string> seen;
  size_t begin = 0;
  while (begin < s.size()) {
    size_t end = s.find('\n', begin);
    if (end == std::string::npos) end = s.size();
    std::string line = s.substr(begin, end - begin);
    const std::string where = "vocabulary line " + std::to_string(words.size() + 1);
    if (line.empty()) return make_error(Errc::invalid_argument, where + " is empty");
    auto parts = split(line);
    if (parts.size() != 1 || parts[0] != line)
      return make_error(Errc::invalid_argument, where + " is not a single lowercase word: \"" + line + "\"");
    if (!seen.insert(line).second)
      return make_error(Errc::invalid_argument, where + " repeats the word \"" + line + "\"");
    words.push_back(std::move(line));
    begin = end + 1;
  }
  return WordTokenizer(std::move(words));
}

}  // namespace reel::models
