// A model's tokenizer: text to ids and back, as Hugging Face's AutoTokenizer does it for the
// model directory. tokenizer.json (HfTokenizer) is preferred, as HF's fast tokenizers prefer it;
// a directory with only tokenizer.model gets SentencePieceTokenizer. Every method is const and
// safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"
#include "tokenizer_config.h"

namespace bpt {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  static constexpr size_t kNoLimit = SIZE_MAX;

  // model_dir/tokenizer.json when present, else model_dir/tokenizer.model; OK with nullptr when
  // neither exists.
  static StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& model_dir, const TokenizerConfig& config);

  virtual int vocab_size() const = 0;                 // 1 + the largest id (added tokens included)
  virtual std::optional<int32_t> eos_id() const = 0;  // from tokenizer_config's eos_token, else the model's own
  // What add_special_tokens=True puts around one sequence (tokenizer.json's post-processor, which
  // transformers 5 keeps whatever tokenizer_config's add_bos_token/add_eos_token say; SentencePiece: BOS).
  virtual std::span<const int32_t> prefix_ids() const = 0;
  virtual std::span<const int32_t> suffix_ids() const = 0;
  // The ids of text without prefix/suffix (HF add_special_tokens=False). Added tokens in the text,
  // special ones included, are matched as HF matches them. Stops with InvalidArgument as soon as
  // the text is known to need more than max_ids ids (without encoding the rest of the text);
  // bytes_encoded, when given, tells how far it got.
  virtual StatusOr<std::vector<int32_t>> Encode(std::string_view text, size_t max_ids = kNoLimit,
                                                size_t* bytes_encoded = nullptr) const = 0;
  // HF decode(ids, skip_special_tokens=...) (transformers 5 does not apply
  // clean_up_tokenization_spaces to the BPE models served here). An id in [0, vocab_size()) without
  // a token (a gap in the vocabulary) is skipped, as HF skips it; an id outside that range is
  // InvalidArgument naming it. Invalid UTF-8 from byte-level pieces decodes as U+FFFD (as HF's
  // ByteLevel decoder does), which the streaming detokenizer relies on.
  virtual StatusOr<std::string> Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const = 0;
  virtual bool IsSpecial(int32_t id) const = 0;
  // A text of n bytes needs at least n / max_piece_bytes() ids; 0 when there is no such bound.
  virtual int max_piece_bytes() const = 0;
};

// The refusal past max_ids: OutOfRange, the one code Encode gives for it.
Status TooManyIds(size_t max_ids);

}  // namespace bpt
