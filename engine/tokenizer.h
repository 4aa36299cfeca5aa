// A SentencePiece tokenizer, reached through the dlopen()ed shim (see engine/spm_shim.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"

struct bpt_spm;

namespace bpt {

class Tokenizer {
 public:
  static StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  int vocab_size() const { return vocab_size_; }
  int bos_id() const { return bos_id_; }
  int eos_id() const { return eos_id_; }

  // Encodes without BOS; the engine adds it as the model's config says.
  StatusOr<std::vector<int32_t>> Encode(std::string_view text) const;
  // InvalidArgument naming the id when one is outside the vocabulary.
  StatusOr<std::string> Decode(std::span<const int32_t> ids) const;

  struct Api;  // the shim's entry points, resolved once per process

 private:
  Tokenizer(const Api* api, bpt_spm* handle);

  const Api* api_;
  bpt_spm* handle_;
  int vocab_size_;
  int bos_id_;
  int eos_id_;
};

}  // namespace bpt
