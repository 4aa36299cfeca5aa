// Keep this file free of gRPC and absl includes: sentencepiece_processor.h declares its own
// absl::string_view.
#include "spm_shim.h"

#include <sentencepiece_processor.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

struct bpt_spm {
  sentencepiece::SentencePieceProcessor processor;
  int max_piece_bytes = 0;
  bool splits_before_spaces = false;
};

namespace {

constexpr char kSpaceSymbol[] = "\xe2\x96\x81";  // U+2581, SentencePiece's escaped ' '

// The few NormalizerSpec fields that decide whether text keeps its length and its spaces.
// Debian ships no sentencepiece_model.pb.h, so they are read from the serialized ModelProto.
struct NormalizerFacts {
  std::string name;
  bool has_charsmap = false;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
  bool byte_fallback = false;  // TrainerSpec's: unknown characters become byte pieces, not <unk>
  bool parsed = false;
};

bool ReadVarint(const std::string& s, size_t* pos, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64 && *pos < s.size(); shift += 7) {
    const uint8_t b = static_cast<uint8_t>(s[(*pos)++]);
    *value |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// Calls field(number, wire_type, varint, bytes) for each field of one message; false when the
// bytes are not a well-formed message.
template <typename Field>
bool ForEachField(const std::string& message, Field field) {
  size_t pos = 0;
  while (pos < message.size()) {
    uint64_t key = 0, value = 0;
    if (!ReadVarint(message, &pos, &key)) return false;
    const int wire_type = static_cast<int>(key & 7);
    std::string bytes;
    if (wire_type == 0) {
      if (!ReadVarint(message, &pos, &value)) return false;
    } else if (wire_type == 2) {
      if (!ReadVarint(message, &pos, &value) || value > message.size() - pos) return false;
      bytes = message.substr(pos, value);
      pos += value;
    } else if (wire_type == 5) {
      pos += 4;
    } else if (wire_type == 1) {
      pos += 8;
    } else {
      return false;
    }
    if (pos > message.size()) return false;
    field(static_cast<int>(key >> 3), wire_type, value, bytes);
  }
  return true;
}

NormalizerFacts ReadNormalizerFacts(const std::string& model_proto) {
  NormalizerFacts facts;
  constexpr int kTrainerSpec = 2;     // ModelProto.trainer_spec
  constexpr int kNormalizerSpec = 3;  // ModelProto.normalizer_spec
  constexpr int kByteFallback = 35;   // TrainerSpec.byte_fallback
  std::string spec, trainer;
  bool found = false;
  if (!ForEachField(model_proto, [&](int number, int wire_type, uint64_t, const std::string& bytes) {
        if (number == kNormalizerSpec && wire_type == 2) {
          spec = bytes;
          found = true;
        }
        if (number == kTrainerSpec && wire_type == 2) trainer = bytes;
      }))
    return facts;
  if (!found) return facts;
  if (!ForEachField(trainer, [&](int number, int wire_type, uint64_t value, const std::string&) {
        if (number == kByteFallback && wire_type == 0) facts.byte_fallback = value != 0;
      }))
    return facts;
  facts.parsed = ForEachField(spec, [&](int number, int wire_type, uint64_t value, const std::string& bytes) {
    switch (number) {
      case 1: facts.name = bytes; break;
      case 2: facts.has_charsmap = !bytes.empty(); break;
      case 3: facts.add_dummy_prefix = value != 0; break;
      case 4: facts.remove_extra_whitespaces = value != 0; break;
      case 5: facts.escape_whitespaces = value != 0; break;
      default: break;
    }
  });
  return facts;
}

// Bytes of text a piece decodes to: the escaped space is one byte, a byte piece one byte.
int PieceBytes(const sentencepiece::SentencePieceProcessor& p, int id) {
  if (p.IsControl(id)) return 0;
  if (p.IsByte(id)) return 1;
  const std::string& piece = p.IdToPiece(id);
  int bytes = 0;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, 3, kSpaceSymbol) == 0) {
      i += 3;
      bytes += 1;
    } else {
      ++i;
      ++bytes;
    }
  }
  return bytes;
}

// Whether some piece holds another character right before an escaped space: such a piece could
// join the two sides of a cut made before that space.
bool SomePieceCrossesBeforeASpace(const sentencepiece::SentencePieceProcessor& p) {
  for (int id = 0; id < p.GetPieceSize(); ++id) {
    const std::string& piece = p.IdToPiece(id);
    for (size_t at = piece.find(kSpaceSymbol, 1); at != std::string::npos; at = piece.find(kSpaceSymbol, at + 1))
      if (at < 3 || piece.compare(at - 3, 3, kSpaceSymbol) != 0) return true;
  }
  return false;
}

// Identity normalization that keeps every space and escapes it keeps a text's characters one
// for one, so cuts and length bounds on the raw text hold for what the model sees.
void AnalyzeModel(bpt_spm* spm) {
  const auto& p = spm->processor;
  const NormalizerFacts facts = ReadNormalizerFacts(p.serialized_model_proto());
  const bool text_kept = facts.parsed && facts.name == "identity" && !facts.has_charsmap &&
                         !facts.remove_extra_whitespaces && facts.escape_whitespaces;
  int longest = 0;
  for (int id = 0; id < p.GetPieceSize(); ++id) longest = std::max(longest, PieceBytes(p, id));
  // Without byte fallback a run of unknown characters becomes one <unk> of any length, and it
  // may run across a cut unless the escaped space is a piece of its own.
  const bool space_is_known = p.PieceToId(kSpaceSymbol) != p.unk_id();
  spm->max_piece_bytes = text_kept && facts.byte_fallback ? longest : 0;
  spm->splits_before_spaces =
      text_kept && (facts.byte_fallback || space_is_known) && !SomePieceCrossesBeforeASpace(p);
}

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
    AnalyzeModel(spm.get());
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
int bpt_spm_piece_id(const bpt_spm* spm, const char* piece, size_t length) {
  try {
    const std::string text(piece, length);
    const int id = spm->processor.PieceToId(text);
    return spm->processor.IdToPiece(id) == text ? id : -1;
  } catch (...) {
    return -1;
  }
}
int bpt_spm_is_special(const bpt_spm* spm, int id) {
  return spm->processor.IsControl(id) || spm->processor.IsUnknown(id) ? 1 : 0;
}
int bpt_spm_max_piece_bytes(const bpt_spm* spm) { return spm->max_piece_bytes; }
int bpt_spm_splits_before_spaces(const bpt_spm* spm) { return spm->splits_before_spaces ? 1 : 0; }

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
