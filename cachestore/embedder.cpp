#include "cachestore/embedder.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "codecs/checksum.hpp"

namespace reel::cachestore {
namespace {

// Hash domains, so that the word "cat" and the character trigram "cat" land apart. Changing
// either changes every vector: bump the "v1" in name() with them.
constexpr uint64_t kWordSeed = 0x776f72642d6e6731ULL;
constexpr uint64_t kCharSeed = 0x636861722d6e6731ULL;
constexpr std::string_view kIdfMagic = "reel-ngram-idf 1";

bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    words.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return words;
}

// Feature hashes of a normalised, non-empty text. Word n-grams are substrings of the text
// itself because words are separated by exactly one space.
void word_features(std::string_view text, const std::vector<std::string_view>& words, int max_n,
                   std::vector<uint64_t>& out) {
  for (int n = 1; n <= max_n; ++n) {
    for (size_t i = 0; i + static_cast<size_t>(n) <= words.size(); ++i) {
      const std::string_view& last = words[i + static_cast<size_t>(n) - 1];
      size_t begin = static_cast<size_t>(words[i].data() - text.data());
      size_t end = static_cast<size_t>(last.data() - text.data()) + last.size();
      out.push_back(codecs::checksum64(text.substr(begin, end - begin), kWordSeed));
    }
  }
}

void char_features(const std::vector<std::string_view>& words, int min_n, int max_n,
                   std::vector<uint64_t>& out) {
  std::string padded;
  for (std::string_view word : words) {
    padded.assign(1, '<');
    padded.append(word);
    padded.push_back('>');
    for (int n = min_n; n <= max_n; ++n) {
      for (size_t i = 0; i + static_cast<size_t>(n) <= padded.size(); ++i) {
        out.push_back(
            codecs::checksum64(std::string_view(padded).substr(i, static_cast<size_t>(n)), kCharSeed));
      }
    }
  }
}

size_t bucket_of(uint64_t hash, int dim) { return static_cast<size_t>(hash % static_cast<uint64_t>(dim)); }
float sign_of(uint64_t hash) { return (hash >> 63) != 0 ? -1.0F : 1.0F; }

// Adds (1 + ln count) * idf, signed, per distinct feature; then scales to unit length.
std::vector<float> weigh(std::vector<uint64_t>& hashes, const std::vector<float>& idf, int dim) {
  std::vector<float> block(static_cast<size_t>(dim), 0.0F);
  std::sort(hashes.begin(), hashes.end());
  for (size_t i = 0; i < hashes.size();) {
    size_t j = i;
    while (j < hashes.size() && hashes[j] == hashes[i]) ++j;
    size_t bucket = bucket_of(hashes[i], dim);
    float tf = 1.0F + std::log(static_cast<float>(j - i));
    block[bucket] += sign_of(hashes[i]) * tf * idf[bucket];
    i = j;
  }
  double norm = 0.0;
  for (float x : block) norm += static_cast<double>(x) * x;
  if (norm > 0.0) {
    float scale = static_cast<float>(1.0 / std::sqrt(norm));
    for (float& x : block) x *= scale;
  }
  return block;
}

void count_documents(std::vector<uint64_t>& hashes, int dim, std::vector<uint32_t>& df) {
  std::vector<size_t> buckets;
  buckets.reserve(hashes.size());
  for (uint64_t h : hashes) buckets.push_back(bucket_of(h, dim));
  std::sort(buckets.begin(), buckets.end());
  buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
  for (size_t b : buckets) ++df[b];
}

std::string number_text(double value) {
  char buffer[32];
  return std::string(buffer, std::to_chars(buffer, buffer + sizeof(buffer), value).ptr);
}

std::string counts_line(std::string_view label, const std::vector<uint32_t>& counts) {
  std::string line(label);
  for (uint32_t c : counts) {
    line += ' ';
    line += std::to_string(c);
  }
  line += '\n';
  return line;
}

Error corrupt(std::string what) {
  return make_error(Errc::corrupt_data, "n-gram IDF table: " + std::move(what));
}

// Reads "<label> c0 c1 ... c{dim-1}" into counts.
Status parse_counts(std::string_view line, std::string_view label, size_t dim,
                    std::vector<uint32_t>& counts) {
  std::string quoted;
  quoted.append(1, '"').append(label).append(1, '"');
  if (line.substr(0, label.size()) != label) return corrupt("expected the " + quoted + " line");
  line.remove_prefix(label.size());
  counts.clear();
  while (!line.empty()) {
    if (line.front() != ' ') return corrupt("malformed " + quoted + " line");
    line.remove_prefix(1);
    uint32_t value = 0;
    auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), value);
    if (ec != std::errc()) return corrupt("malformed " + quoted + " line");
    counts.push_back(value);
    line.remove_prefix(static_cast<size_t>(end - line.data()));
  }
  if (counts.size() != dim) {
    return corrupt(quoted + " has " + std::to_string(counts.size()) + " counts, expected " +
                   std::to_string(dim));
  }
  return {};
}

}  // namespace

std::string normalize_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (!is_word_byte(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : ch);
  }
  return out;
}

Status validate(const NgramOptions& options) {
  if (options.dim < 1) return make_error(Errc::invalid_argument, "ngram embedder: dim must be >= 1");
  if (options.word_ngram_max < 1) {
    return make_error(Errc::invalid_argument, "ngram embedder: word_ngram_max must be >= 1");
  }
  if (options.char_ngram_min < 1) {
    return make_error(Errc::invalid_argument, "ngram embedder: char_ngram_min must be >= 1");
  }
  if (options.char_ngram_max < options.char_ngram_min) {
    return make_error(Errc::invalid_argument,
                      "ngram embedder: char_ngram_max must be >= char_ngram_min");
  }
  if (!(options.char_weight >= 0.0 && options.char_weight <= 1.0)) {
    return make_error(Errc::invalid_argument, "ngram embedder: char_weight must be in [0, 1]");
  }
  return {};
}

NgramEmbedder::NgramEmbedder(NgramOptions options) : options_(options) {
  options_.dim = std::max(options_.dim, 1);
  options_.word_ngram_max = std::max(options_.word_ngram_max, 1);
  options_.char_ngram_min = std::max(options_.char_ngram_min, 1);
  options_.char_ngram_max = std::max(options_.char_ngram_max, options_.char_ngram_min);
  options_.char_weight = std::isnan(options_.char_weight) ? 0.5 : std::clamp(options_.char_weight, 0.0, 1.0);
  auto dim = static_cast<size_t>(options_.dim);
  word_df_.assign(dim, 0);
  char_df_.assign(dim, 0);
  update_idf();
}

std::string NgramEmbedder::name() const {
  return "ngram-v1(dim=" + std::to_string(options_.dim) + ",word=1-" +
         std::to_string(options_.word_ngram_max) + ",char=" + std::to_string(options_.char_ngram_min) +
         "-" + std::to_string(options_.char_ngram_max) +
         ",char_weight=" + number_text(options_.char_weight) + ")";
}

std::vector<float> NgramEmbedder::embed(std::string_view prompt) const {
  auto dim = static_cast<size_t>(options_.dim);
  std::vector<float> out(dim, 0.0F);
  std::string text = normalize_text(prompt);
  if (text.empty()) {
    out[0] = 1.0F;
    return out;
  }
  std::vector<std::string_view> words = split_words(text);
  std::vector<uint64_t> hashes;
  word_features(text, words, options_.word_ngram_max, hashes);
  std::vector<float> word_block = weigh(hashes, word_idf_, options_.dim);
  hashes.clear();
  char_features(words, options_.char_ngram_min, options_.char_ngram_max, hashes);
  std::vector<float> char_block = weigh(hashes, char_idf_, options_.dim);

  // Unit blocks mixed with square-root weights: the inner product of two prompts is then
  // (1 - w) * word similarity + w * char similarity, up to cross terms from shared buckets.
  auto word_scale = static_cast<float>(std::sqrt(1.0 - options_.char_weight));
  auto char_scale = static_cast<float>(std::sqrt(options_.char_weight));
  double norm = 0.0;
  for (size_t i = 0; i < dim; ++i) {
    out[i] = word_scale * word_block[i] + char_scale * char_block[i];
    norm += static_cast<double>(out[i]) * out[i];
  }
  if (norm <= 0.0) {  // every feature cancelled out: vanishingly rare, but never return zero
    std::fill(out.begin(), out.end(), 0.0F);
    out[0] = 1.0F;
    return out;
  }
  auto scale = static_cast<float>(1.0 / std::sqrt(norm));
  for (float& x : out) x *= scale;
  return out;
}

void NgramEmbedder::fit(std::span<const std::string> corpus) {
  std::fill(word_df_.begin(), word_df_.end(), 0);
  std::fill(char_df_.begin(), char_df_.end(), 0);
  documents_ = 0;
  std::vector<uint64_t> hashes;
  for (const std::string& prompt : corpus) {
    ++documents_;
    std::string text = normalize_text(prompt);
    if (text.empty()) continue;
    std::vector<std::string_view> words = split_words(text);
    hashes.clear();
    word_features(text, words, options_.word_ngram_max, hashes);
    count_documents(hashes, options_.dim, word_df_);
    hashes.clear();
    char_features(words, options_.char_ngram_min, options_.char_ngram_max, hashes);
    count_documents(hashes, options_.dim, char_df_);
  }
  update_idf();
}

void NgramEmbedder::update_idf() {
  // Smoothed IDF, ln((1 + N) / (1 + df)) + 1: 1 for a bucket in every document (and for all
  // buckets before fitting), larger for rare ones, never zero.
  auto idf = [this](uint32_t df) {
    return static_cast<float>(std::log((1.0 + static_cast<double>(documents_)) / (1.0 + df)) + 1.0);
  };
  word_idf_.resize(word_df_.size());
  char_idf_.resize(char_df_.size());
  std::transform(word_df_.begin(), word_df_.end(), word_idf_.begin(), idf);
  std::transform(char_df_.begin(), char_df_.end(), char_idf_.begin(), idf);
  idf_checksum_ = documents_ == 0 ? 0 : codecs::checksum64(serialize_idf());
}

std::string NgramEmbedder::serialize_idf() const {
  std::string body = std::string(kIdfMagic) + "\nembedder " + name() + "\ndocuments " +
                     std::to_string(documents_) + "\n" + counts_line("word", word_df_) +
                     counts_line("char", char_df_);
  char checksum[40];
  std::snprintf(checksum, sizeof(checksum), "checksum %016llx\n",
                static_cast<unsigned long long>(codecs::checksum64(body)));
  return body + checksum;
}

Status NgramEmbedder::load_idf(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  }
  if (lines.size() != 6 || lines[0] != kIdfMagic) return corrupt("not an n-gram IDF table");
  std::string_view stored = lines[5];
  constexpr std::string_view kChecksum = "checksum ";
  uint64_t expected = 0;
  if (stored.substr(0, kChecksum.size()) != kChecksum ||
      std::from_chars(stored.data() + kChecksum.size(), stored.data() + stored.size(), expected, 16)
              .ptr != stored.data() + stored.size()) {
    return corrupt("malformed checksum line");
  }
  size_t body_size = static_cast<size_t>(lines[5].data() - lines[0].data());
  if (codecs::checksum64(std::string_view(lines[0].data(), body_size)) != expected) {
    return corrupt("checksum mismatch");
  }
  constexpr std::string_view kEmbedder = "embedder ";
  if (lines[1].substr(0, kEmbedder.size()) != kEmbedder) return corrupt("expected the embedder line");
  std::string_view writer = lines[1].substr(kEmbedder.size());
  if (writer != name()) {
    return make_error(Errc::invalid_argument, "n-gram IDF table was written by " + std::string(writer) +
                                                  ", not by " + name());
  }
  constexpr std::string_view kDocuments = "documents ";
  uint64_t documents = 0;
  if (lines[2].substr(0, kDocuments.size()) != kDocuments ||
      std::from_chars(lines[2].data() + kDocuments.size(), lines[2].data() + lines[2].size(), documents)
              .ptr != lines[2].data() + lines[2].size()) {
    return corrupt("malformed documents line");
  }
  std::vector<uint32_t> word_df;
  std::vector<uint32_t> char_df;
  REEL_RETURN_IF_ERROR(parse_counts(lines[3], "word", word_df_.size(), word_df));
  REEL_RETURN_IF_ERROR(parse_counts(lines[4], "char", char_df_.size(), char_df));
  auto over = [documents](uint32_t df) { return df > documents; };
  if (std::any_of(word_df.begin(), word_df.end(), over) || std::any_of(char_df.begin(), char_df.end(), over)) {
    return corrupt("a document frequency exceeds the number of documents");
  }
  documents_ = documents;
  word_df_ = std::move(word_df);
  char_df_ = std::move(char_df);
  update_idf();
  return {};
}

}  // namespace reel::cachestore
