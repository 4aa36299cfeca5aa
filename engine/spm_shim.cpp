// Keep this file free of gRPC and absl includes: sentencepiece_processor.h declares its own
// absl::string_view.
#include "engine/spm_shim.h"

#include <sentencepiece_processor.h>
#include <sys/stat.h>

#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

struct bpt_spm {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

void WriteError(const std::string& message, char* err, size_t capacity) {
  if (err == nullptr || capacity == 0) return;
  const size_t n = std::min(message.size(), capacity - 1);
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}

}  // namespace

// No exception may leave these functions: the caller is C, and SentencePiece throws (a
// directory given as the model makes its ifstream throw std::ios_failure; memory runs out on a
// hostile model). Each entry point catches everything and reports an error instead.
extern "C" {

bpt_spm* bpt_spm_load(const char* model_path, char* err, size_t err_capacity) {
  try {
    struct stat st {};
    if (stat(model_path, &st) != 0 || !S_ISREG(st.st_mode)) {
      WriteError(std::string(model_path) + " is not a regular file", err, err_capacity);
      return nullptr;
    }
    auto spm = std::make_unique<bpt_spm>();
    const auto status = spm->processor.Load(model_path);
    if (!status.ok()) {
      WriteError(status.ToString(), err, err_capacity);
      return nullptr;
    }
    return spm.release();
  } catch (const std::exception& e) {
    WriteError(std::string("SentencePiece failed: ") + e.what(), err, err_capacity);
  } catch (...) {
    WriteError("SentencePiece failed with an unknown exception", err, err_capacity);
  }
  return nullptr;
}

void bpt_spm_free(bpt_spm* spm) { delete spm; }

int bpt_spm_vocab_size(const bpt_spm* spm) { return spm->processor.GetPieceSize(); }
int bpt_spm_bos_id(const bpt_spm* spm) { return spm->processor.bos_id(); }
int bpt_spm_eos_id(const bpt_spm* spm) { return spm->processor.eos_id(); }

long bpt_spm_encode(const bpt_spm* spm, const char* text, size_t length, int* ids, size_t capacity) {
  try {
    std::vector<int> out;
    if (!spm->processor.Encode(std::string(text, length), &out).ok()) return -1;
    std::memcpy(ids, out.data(), std::min(out.size(), capacity) * sizeof(int));
    return static_cast<long>(out.size());
  } catch (...) {
    return -1;
  }
}

long bpt_spm_decode(const bpt_spm* spm, const int* ids, size_t count, char* text, size_t capacity) {
  try {
    const int vocab = spm->processor.GetPieceSize();
    for (size_t i = 0; i < count; ++i)
      if (ids[i] < 0 || ids[i] >= vocab) return -1;
    std::string out;
    if (!spm->processor.Decode(std::vector<int>(ids, ids + count), &out).ok()) return -1;
    std::memcpy(text, out.data(), std::min(out.size(), capacity));
    return static_cast<long>(out.size());
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
