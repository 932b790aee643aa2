// libreel_sentencepiece.so: sentencepiece behind a small C interface, which spm_tokenizer.cpp
// loads with dlmopen into a link-map namespace of its own.
//
// Why a separate library in a separate namespace: Debian's libsentencepiece carries its own
// protobuf-lite (3.14) and exports its symbols, while LibTorch brings libprotobuf 3.21 (through
// onnx). Linked into one program, whichever comes first in the global symbol scope serves both,
// and the process dies before main (libprotobuf's initialisers run sentencepiece's parser) or at
// the first sentencepiece call (a version check fails). dlopen with RTLD_DEEPBIND separates the
// protobufs but gives sentencepiece an uninitialised std::cerr (the program's copy-relocated one
// is elsewhere), so the whole library, its libstdc++ included, lives in a namespace of its own.
// That is why the interface is C and the caller owns every buffer: memory never changes hands
// between the two C++ runtimes.
//
// Every function returns 0 on success and -1 on failure, with the message in err (cut to
// err_size, NUL-terminated). Nothing here throws across the interface.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#define REEL_SPM_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

int fail(char* err, size_t err_size, const std::string& message) {
  if (err != nullptr && err_size > 0) {
    const size_t n = std::min(message.size(), err_size - 1);
    std::memcpy(err, message.data(), n);
    err[n] = '\0';
  }
  return -1;
}

}  // namespace

// *handle: a new processor for the model at `path`, to be released with reel_spm_free.
REEL_SPM_EXPORT int reel_spm_load(const char* path, void** handle, char* err, size_t err_size) {
  try {
    auto* processor = new sentencepiece::SentencePieceProcessor();
    if (auto st = processor->Load(path); !st.ok()) {
      delete processor;
      return fail(err, err_size, st.ToString());
    }
    *handle = processor;
    return 0;
  } catch (const std::exception& e) {
    return fail(err, err_size, e.what());
  }
}

REEL_SPM_EXPORT void reel_spm_free(void* handle) { delete static_cast<sentencepiece::SentencePieceProcessor*>(handle); }

// Number of pieces and the pad and EOS ids (-1 when the model has none).
REEL_SPM_EXPORT void reel_spm_info(const void* handle, int64_t* pieces, int64_t* pad_id, int64_t* eos_id) {
  const auto* p = static_cast<const sentencepiece::SentencePieceProcessor*>(handle);
  *pieces = p->GetPieceSize();
  *pad_id = p->pad_id();
  *eos_id = p->eos_id();
}

// The ids of text[0, size): *count is set to their number; the first min(count, capacity) are
// written to ids. Call again with more room when *count > capacity.
REEL_SPM_EXPORT int reel_spm_encode(const void* handle, const char* text, size_t size, int* ids, size_t capacity,
                                    size_t* count, char* err, size_t err_size) {
  try {
    std::vector<int> out;
    if (auto st = static_cast<const sentencepiece::SentencePieceProcessor*>(handle)->Encode(
            absl::string_view(text, size), &out);
        !st.ok())
      return fail(err, err_size, st.ToString());
    *count = out.size();
    std::copy_n(out.begin(), std::min(out.size(), capacity), ids);
    return 0;
  } catch (const std::exception& e) {
    return fail(err, err_size, e.what());
  }
}

// The text of ids[0, count), as for reel_spm_encode: *size bytes, the first min(size, capacity)
// written to text (no NUL).
REEL_SPM_EXPORT int reel_spm_decode(const void* handle, const int* ids, size_t count, char* text, size_t capacity,
                                    size_t* size, char* err, size_t err_size) {
  try {
    std::string out;
    if (auto st = static_cast<const sentencepiece::SentencePieceProcessor*>(handle)->Decode(
            std::vector<int>(ids, ids + count), &out);
        !st.ok())
      return fail(err, err_size, st.ToString());
    *size = out.size();
    if (capacity > 0) std::memcpy(text, out.data(), std::min(out.size(), capacity));
    return 0;
  } catch (const std::exception& e) {
    return fail(err, err_size, e.what());
  }
}

// sentencepiece::SentencePieceTrainer::Train with spm_train's flags ("--input=... --model_prefix=...").
REEL_SPM_EXPORT int reel_spm_train(const char* args, char* err, size_t err_size) {
  try {
    if (auto st = sentencepiece::SentencePieceTrainer::Train(args); !st.ok()) return fail(err, err_size, st.ToString());
    return 0;
  } catch (const std::exception& e) {
    return fail(err, err_size, e.what());
  }
}
