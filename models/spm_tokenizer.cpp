#include "models/spm_tokenizer.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#ifdef REEL_HAVE_SENTENCEPIECE
#include <dlfcn.h>
#include "models/detail/utf8.hpp"
#endif

namespace reel::models {

namespace {

// --- UTF-8 ----------------------------------------------------------------------------------

// The code point starting at s[i] and its length in bytes; nullopt for a malformed sequence
// (overlong forms, surrogates and values past U+10FFFF included).
std::optional<std::pair<char32_t, size_t>> decode_utf8(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return std::pair{char32_t{b0}, size_t{1}};
  size_t n = 0;
  char32_t cp = 0, min = 0;
  if ((b0 & 0xE0) == 0xC0) n = 2, cp = b0 & 0x1F, min = 0x80;
  else if ((b0 & 0xF0) == 0xE0) n = 3, cp = b0 & 0x0F, min = 0x800;
  else if ((b0 & 0xF8) == 0xF0) n = 4, cp = b0 & 0x07, min = 0x10000;
  else return std::nullopt;
  if (i + n > s.size()) return std::nullopt;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  return std::pair{cp, n};
}

using detail::append_utf8;

// The reference strips with Python's str.strip (str.isspace) but collapses with the `regex`
// module's \s (Unicode White_Space); the two differ only in U+001C..U+001F, which isspace has.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
bool is_python_space(char32_t c) { return is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

std::u32string to_u32(std::string_view s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    auto cp = decode_utf8(s, i);  // callers validated s
    out += cp->first;
    i += cp->second;
  }
  return out;
}

std::string to_utf8(std::u32string_view s) {
  std::string out;
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

// --- html.unescape ----------------------------------------------------------------------------

// Named references read: the ones prompts carry in practice. `legacy` ones are also read without
// the ';' (and as the longest prefix of a longer name), as HTML5 and Python allow.
struct NamedEntity {
  std::u32string_view name;
  char32_t value;
  bool legacy;
};
constexpr std::array<NamedEntity, 25> kNamedEntities = {{
    {U"amp", U'&', true},       {U"lt", U'<', true},         {U"gt", U'>', true},
    {U"quot", U'"', true},      {U"apos", U'\'', false},     {U"nbsp", 0xA0, true},
    {U"copy", 0xA9, true},      {U"reg", 0xAE, true},        {U"deg", 0xB0, true},
    {U"middot", 0xB7, true},    {U"laquo", 0xAB, true},      {U"raquo", 0xBB, true},
    {U"times", 0xD7, true},     {U"eacute", 0xE9, true},     {U"egrave", 0xE8, true},
    {U"ccedil", 0xE7, true},    {U"uuml", 0xFC, true},       {U"trade", 0x2122, false},
    {U"hellip", 0x2026, false}, {U"mdash", 0x2014, false},   {U"ndash", 0x2013, false},
    {U"lsquo", 0x2018, false},  {U"rsquo", 0x2019, false},   {U"ldquo", 0x201C, false},
    {U"rdquo", 0x201D, false},
}};

// Numeric references to C1 controls mean Windows-1252 (HTML5); 0 means U+FFFD and CR stays CR.
// Entries equal to their index stay what they are.
constexpr std::array<char32_t, 32> kWindows1252 = {
    0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};

// What &#<value>; reads as, in Python's html.unescape: possibly nothing (noncharacters and
// most controls are dropped).
std::u32string numeric_reference(uint64_t value) {
  if (value == 0) return U"\uFFFD";
  if (value == 0x0D) return U"\r";
  if (value >= 0x80 && value <= 0x9F) return std::u32string(1, kWindows1252[value - 0x80]);
  if ((value >= 0xD800 && value <= 0xDFFF) || value > 0x10FFFF) return U"\uFFFD";
  const auto c = static_cast<char32_t>(value);
  if ((c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
      (c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE)
    return U"";
  return std::u32string(1, c);
}

std::u32string html_unescape(const std::u32string& s) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != U'&') {
      out += s[i++];
      continue;
    }
    size_t j = i + 1;
    if (j < s.size() && s[j] == U'#') {
      const bool hex = j + 1 < s.size() && (s[j + 1] == U'x' || s[j + 1] == U'X');
      size_t k = j + (hex ? 2 : 1);
      const size_t digits_begin = k;
      uint64_t value = 0;
      for (; k < s.size(); ++k) {
        const char32_t c = s[k];
        int d = -1;
        if (c >= U'0' && c <= U'9') d = static_cast<int>(c - U'0');
        else if (hex && c >= U'a' && c <= U'f') d = static_cast<int>(c - U'a' + 10);
        else if (hex && c >= U'A' && c <= U'F') d = static_cast<int>(c - U'A' + 10);
        if (d < 0) break;
        value = std::min<uint64_t>(value * (hex ? 16 : 10) + static_cast<uint64_t>(d), 0x7FFFFFFF);  // saturate
      }
      if (k == digits_begin) {  // "&#" with no digits is text
        out += s[i++];
        continue;
      }
      if (k < s.size() && s[k] == U';') ++k;
      out += numeric_reference(value);
      i = k;
      continue;
    }
    // A name: up to 32 characters other than \t \n \f space < & # ;, then an optional ';'.
    size_t k = j;
    while (k < s.size() && k - j < 32 && std::u32string_view(U"\t\n\f <&#;").find(s[k]) == std::u32string_view::npos)
      ++k;
    if (k == j) {
      out += s[i++];
      continue;
    }
    const bool semicolon = k < s.size() && s[k] == U';';
    const std::u32string_view name(s.data() + j, k - j);
    const NamedEntity* hit = nullptr;
    size_t used = 0;
    for (const auto& e : kNamedEntities)
      if (e.name == name && (semicolon || e.legacy)) hit = &e, used = name.size() + (semicolon ? 1 : 0);
    if (hit == nullptr)  // the longest legacy name that starts the text, as Python does
      for (size_t len = name.size() - 1; len >= 2 && hit == nullptr; --len)
        for (const auto& e : kNamedEntities)
          if (e.legacy && e.name == name.substr(0, len)) hit = &e, used = len;
    if (hit == nullptr) {
      out += s[i++];
      continue;
    }
    out += hit->value;
    i = j + used;
  }
  return out;
}

std::u32string_view strip(std::u32string_view s) {
  while (!s.empty() && is_python_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_python_space(s.back())) s.remove_suffix(1);
  return s;
}

Status check_utf8(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    auto cp = decode_utf8(text, i);
    if (!cp) return make_error(Errc::invalid_argument, "text is not UTF-8 (byte " + std::to_string(i) + ")");
    i += cp->second;
  }
  return {};
}

}  // namespace

Expected<std::string> SentencePieceTokenizer::clean(const std::string& text) {
  REEL_RETURN_IF_ERROR(check_utf8(text));
  const std::u32string unescaped = html_unescape(html_unescape(to_u32(text)));
  std::u32string collapsed;
  bool in_space = false;
  for (char32_t c : strip(unescaped)) {
    if (is_white_space(c)) {
      if (!in_space) collapsed += U' ';
      in_space = true;
    } else {
      collapsed += c;
      in_space = false;
    }
  }
  return to_utf8(strip(collapsed));
}

#ifdef REEL_HAVE_SENTENCEPIECE

namespace {

// The C interface of libreel_sentencepiece.so (spm_shim.cpp says why it is loaded so).
struct SpmLibrary {
  int (*load)(const char* path, void** handle, char* err, size_t err_size) = nullptr;
  void (*free)(void* handle) = nullptr;
  void (*info)(const void* handle, int64_t* pieces, int64_t* pad_id, int64_t* eos_id) = nullptr;
  int (*encode)(const void* handle, const char* text, size_t size, int* ids, size_t capacity, size_t* count,
                char* err, size_t err_size) = nullptr;
  int (*decode)(const void* handle, const int* ids, size_t count, char* text, size_t capacity, size_t* size,
                char* err, size_t err_size) = nullptr;
  int (*train)(const char* args, char* err, size_t err_size) = nullptr;
};

// Loaded on first use, into a namespace of its own, and kept for the life of the process.
// REEL_SENTENCEPIECE_SHIM in the environment overrides the path this build put it at.
const Expected<SpmLibrary>& spm_library() {
  static const Expected<SpmLibrary> library = []() -> Expected<SpmLibrary> {
    const char* env = std::getenv("REEL_SENTENCEPIECE_SHIM");
    const std::string path = env != nullptr && *env != '\0' ? env : REEL_SENTENCEPIECE_SHIM;
    void* handle = ::dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr)
      return make_error(Errc::unsupported, "cannot load sentencepiece (" + path + "): " + ::dlerror() +
                                               "; set REEL_SENTENCEPIECE_SHIM to libreel_sentencepiece.so");
    SpmLibrary lib;
    std::string missing;
    auto bind = [&](const char* name, auto& fn) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(handle, name));
      if (fn == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
    };
    bind("reel_spm_load", lib.load);
    bind("reel_spm_free", lib.free);
    bind("reel_spm_info", lib.info);
    bind("reel_spm_encode", lib.encode);
    bind("reel_spm_decode", lib.decode);
    bind("reel_spm_train", lib.train);
    if (!missing.empty()) return make_error(Errc::unsupported, path + " lacks " + missing);
    return lib;
  }();
  return library;
}

const void* raw(const std::shared_ptr<const detail::SpmHandle>& p) { return static_cast<const void*>(p.get()); }

}  // namespace

Expected<SentencePieceTokenizer> SentencePieceTokenizer::load(const std::string& model_path, int64_t text_len) {
  if (text_len < 1)
    return make_error(Errc::invalid_argument,
                      "tokenizer: text_len must be at least 1, got " + std::to_string(text_len));
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model_path, ec))
    return make_error(Errc::not_found, model_path + ": no sentencepiece model (spiece.model) there");
  const auto& lib = spm_library();
  if (!lib) return make_error(lib.error().code, model_path + ": " + lib.error().message);
  std::array<char, 512> err{};
  void* handle = nullptr;
  if (lib->load(model_path.c_str(), &handle, err.data(), err.size()) != 0)
    return make_error(Errc::corrupt_data, model_path + ": not a sentencepiece model: " + err.data());
  SentencePieceTokenizer tok;
  tok.processor_ = std::shared_ptr<const detail::SpmHandle>(static_cast<const detail::SpmHandle*>(handle),
                                                            [release = lib->free](const detail::SpmHandle* h) {
                                                              release(const_cast<detail::SpmHandle*>(h));
                                                            });
  tok.path_ = model_path;
  tok.text_len_ = text_len;
  lib->info(handle, &tok.vocab_size_, &tok.pad_id_, &tok.eos_id_);
  // Hugging Face's T5 tokenizers append </s> and pad with <pad>: a model without them (trained
  // with sentencepiece's defaults, pad -1) cannot give what the encoder was trained on.
  if (tok.eos_id_ < 0 || tok.pad_id_ < 0)
    return make_error(Errc::corrupt_data, model_path + ": the sentencepiece model has no " +
                                              (tok.eos_id_ < 0 ? "EOS" : "pad") +
                                              " piece (a T5 model has pad 0 and EOS 1)");
  return tok;
}

Expected<std::vector<int64_t>> SentencePieceTokenizer::encode(const std::string& prompt) const {
  auto text = clean(prompt);
  if (!text) return text.error();
  const auto& lib = *spm_library();  // loaded: this tokenizer exists
  std::array<char, 512> err{};
  std::vector<int> pieces(text->size() + 1);
  size_t count = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {  // a second time only if the first had too little room
    if (lib.encode(raw(processor_), text->data(), text->size(), pieces.data(), pieces.size(), &count, err.data(),
                   err.size()) != 0)
      return make_error(Errc::internal, path_ + ": sentencepiece: " + err.data());
    if (count <= pieces.size()) break;
    pieces.resize(count);
  }
  // Hugging Face truncates before adding EOS, so a long prompt keeps its EOS.
  const size_t keep = std::min(count, static_cast<size_t>(text_len_ - 1));
  std::vector<int64_t> ids(pieces.begin(), pieces.begin() + static_cast<std::ptrdiff_t>(keep));
  ids.push_back(eos_id_);
  return ids;
}

Expected<std::string> SentencePieceTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> pieces;
  for (int64_t id : ids) {
    if (id == eos_id_ || id == pad_id_) break;
    if (id < 0 || id >= vocab_size_)
      return make_error(Errc::invalid_argument, "tokenizer: id " + std::to_string(id) + " is outside the vocabulary (" +
                                                    std::to_string(vocab_size_) + " pieces)");
    pieces.push_back(static_cast<int>(id));
  }
  const auto& lib = *spm_library();
  std::array<char, 512> err{};
  std::string text(4 * pieces.size() + 16, '\0');
  size_t size = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (lib.decode(raw(processor_), pieces.data(), pieces.size(), text.data(), text.size(), &size, err.data(),
                   err.size()) != 0)
      return make_error(Errc::internal, path_ + ": sentencepiece: " + err.data());
    if (size <= text.size()) break;
    text.resize(size);
  }
  text.resize(size);
  return text;
}

Status train_sentencepiece(const std::string& flags) {
  const auto& lib = spm_library();
  if (!lib) return lib.error();
  std::array<char, 1024> err{};
  if (lib->train(flags.c_str(), err.data(), err.size()) != 0)
    return make_error(Errc::invalid_argument, std::string("sentencepiece training failed: ") + err.data());
  return {};
}

#else  // a REEL_MODELS_ONLY build without libsentencepiece-dev

Expected<SentencePieceTokenizer> SentencePieceTokenizer::load(const std::string& model_path, int64_t) {
  return make_error(Errc::unsupported, model_path + ": this build has no sentencepiece (install libsentencepiece-dev "
                                                    "and reconfigure)");
}

Expected<std::vector<int64_t>> SentencePieceTokenizer::encode(const std::string&) const {
  return make_error(Errc::unsupported, "this build has no sentencepiece");
}

Expected<std::string> SentencePieceTokenizer::decode(const std::vector<int64_t>&) const {
  return make_error(Errc::unsupported, "this build has no sentencepiece");
}

Status train_sentencepiece(const std::string&) {
  return make_error(Errc::unsupported, "this build has no sentencepiece");
}

#endif

Expected<TokenBatch> SentencePieceTokenizer::tokenize(const std::vector<std::string>& prompts, Padding padding) const {
  if (prompts.empty()) return make_error(Errc::invalid_argument, "no prompts to tokenize");
  std::vector<std::vector<int64_t>> rows;
  int64_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto ids = encode(prompts[i]);
    if (!ids) {
      if (prompts.size() == 1) return ids.error();
      return make_error(ids.error().code, "prompt " + std::to_string(i) + ": " + ids.error().message);
    }
    longest = std::max<int64_t>(longest, static_cast<int64_t>(ids->size()));
    rows.push_back(std::move(ids).value());
  }
  const int64_t length = padding == Padding::to_text_len ? text_len_ : longest;
  try {
    const auto batch = static_cast<int64_t>(rows.size());
    TokenBatch out{torch::full({batch, length}, pad_id_, torch::kLong), torch::zeros({batch, length}, torch::kLong),
                   {}};
    auto ids = out.ids.accessor<int64_t, 2>();
    auto mask = out.mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < batch; ++b) {
      const auto& row = rows[static_cast<size_t>(b)];
      for (size_t j = 0; j < row.size(); ++j) {
        ids[b][static_cast<int64_t>(j)] = row[j];
        mask[b][static_cast<int64_t>(j)] = 1;
      }
      out.lengths.push_back(static_cast<int64_t>(row.size()));
    }
    return out;
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("tokenizer: ") + e.what_without_backtrace());
  }
}

}  // namespace reel::models
