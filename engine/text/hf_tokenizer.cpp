#include "hf_tokenizer.h"

#include <algorithm>

#include "bounded_file.h"
#include "hf_post_processor.h"
#include "hf_tokenizer_class.h"
#include "hf_spec_fields.h"
#include "json_fields.h"

namespace bpt {
namespace {

using nlohmann::json;

// Llama 3's tokenizer.json is 9 MB and Gemma's 34 MB; past this no real one goes.
constexpr size_t kMaxTokenizerJsonBytes = 512u << 20;
// Sequences nest at most hf::kMaxSequenceDepth deep, two JSON levels each; past this a file is
// hostile.
constexpr size_t kMaxTokenizerJsonDepth = 256;
// Pieces remembered per Encode call: a document's vocabulary of words, not its every word.
constexpr size_t kMaxCachedWords = 1 << 16;
// Longer pieces are rare and are merged each time (the crate draws the same line).
constexpr size_t kMaxCachedWordBytes = 256;

// IsByteLevel, NeverShrinks and KeepsEveryByte look only at components the parsers accepted, so
// their recursion through Sequences is bounded by hf::kMaxSequenceDepth.

// Whether the pre-tokenizer writes pieces in the byte-level alphabet.
bool IsByteLevel(const json& pre_tokenizer) {
  if (!pre_tokenizer.is_object() || !pre_tokenizer.contains("type") || !pre_tokenizer["type"].is_string()) return false;
  const std::string& type = pre_tokenizer["type"].get_ref<const std::string&>();
  if (type == "ByteLevel") return true;
  return type == "Sequence" && pre_tokenizer.contains("pretokenizers") && pre_tokenizer["pretokenizers"].is_array() &&
         std::any_of(pre_tokenizer["pretokenizers"].begin(), pre_tokenizer["pretokenizers"].end(), IsByteLevel);
}

// Whether a normalizer's output always has at least the bytes of its input, so that the longest
// token bounds the bytes of text per id.
bool NeverShrinks(const json& normalizer) {
  if (normalizer.is_null()) return true;
  if (!normalizer.is_object() || !normalizer.contains("type") || !normalizer["type"].is_string()) return false;
  const std::string& type = normalizer["type"].get_ref<const std::string&>();
  if (type == "Prepend") return true;
  if (type == "Replace") {
    const json* pattern = normalizer.contains("pattern") ? &normalizer["pattern"] : nullptr;
    const json* content = normalizer.contains("content") ? &normalizer["content"] : nullptr;
    return pattern != nullptr && pattern->is_object() && pattern->contains("String") && (*pattern)["String"].is_string() &&
           content != nullptr && content->is_string() &&
           content->get_ref<const std::string&>().size() >= (*pattern)["String"].get_ref<const std::string&>().size();
  }
  if (type == "Sequence" && normalizer.contains("normalizers") && normalizer["normalizers"].is_array())
    return std::all_of(normalizer["normalizers"].begin(), normalizer["normalizers"].end(), NeverShrinks);
  return false;
}

// Whether a pre-tokenizer keeps every byte of its input in some piece (none drops whitespace or
// delimiters).
bool KeepsEveryByte(const json& pre_tokenizer) {
  if (pre_tokenizer.is_null()) return true;
  if (!pre_tokenizer.is_object() || !pre_tokenizer.contains("type") || !pre_tokenizer["type"].is_string()) return false;
  const std::string& type = pre_tokenizer["type"].get_ref<const std::string&>();
  if (type == "ByteLevel" || type == "Metaspace" || type == "Digits") return true;
  if (type == "Split" || type == "Punctuation") {
    const auto behavior = pre_tokenizer.find("behavior");
    return behavior == pre_tokenizer.end() || (behavior->is_string() && behavior->get_ref<const std::string&>() != "Removed");
  }
  if (type == "Sequence" && pre_tokenizer.contains("pretokenizers") && pre_tokenizer["pretokenizers"].is_array())
    return std::all_of(pre_tokenizer["pretokenizers"].begin(), pre_tokenizer["pretokenizers"].end(), KeepsEveryByte);
  return false;
}

StatusOr<std::vector<hf::AddedToken>> ParseAddedTokens(const json& root) {
  std::vector<hf::AddedToken> tokens;
  const auto list = root.find("added_tokens");
  if (list == root.end() || list->is_null()) return tokens;
  if (!list->is_array()) return InvalidArgument("added_tokens: expected a list");
  for (size_t i = 0; i < list->size(); ++i) {
    const json& t = (*list)[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object()) return InvalidArgument(where + ": expected an object");
    hf::AddedToken token;
    BPT_ASSIGN_OR_RETURN(token.content, hf::StringField(t, "content", where));
    BPT_ASSIGN_OR_RETURN(const json* id, hf::RequiredField(t, "id", where));
    if (!id->is_number_unsigned()) return InvalidArgument(hf::FieldPath(where, "id") + ": expected an integer >= 0");
    BPT_ASSIGN_OR_RETURN(token.special, hf::BoolField(t, "special", where, false));
    BPT_ASSIGN_OR_RETURN(token.single_word, hf::BoolField(t, "single_word", where, false));
    BPT_ASSIGN_OR_RETURN(token.lstrip, hf::BoolField(t, "lstrip", where, false));
    BPT_ASSIGN_OR_RETURN(token.rstrip, hf::BoolField(t, "rstrip", where, false));
    BPT_ASSIGN_OR_RETURN(token.normalized, hf::BoolField(t, "normalized", where, !token.special));
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// What the file's component at `key` becomes; null stays null.
const json& Component(const json& root, std::string_view key) {
  static const json kNull;
  const auto it = root.find(key);
  return it == root.end() ? kNull : *it;
}

}  // namespace

// The ids of pieces already merged in this Encode call.
class HfTokenizer::WordCache {
 public:
  bool Append(std::string_view piece, std::vector<int32_t>& ids) const {
    const auto it = words_.find(piece);
    if (it == words_.end()) return false;
    ids.insert(ids.end(), pool_.begin() + it->second.first, pool_.begin() + it->second.first + it->second.second);
    return true;
  }
  void Remember(std::string_view piece, std::span<const int32_t> piece_ids) {
    if (words_.size() >= kMaxCachedWords || piece.size() > kMaxCachedWordBytes) return;
    words_.emplace(std::string(piece), std::pair<uint32_t, uint32_t>(static_cast<uint32_t>(pool_.size()),
                                                                      static_cast<uint32_t>(piece_ids.size())));
    pool_.insert(pool_.end(), piece_ids.begin(), piece_ids.end());
  }

 private:
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, hf::StringHash, std::equal_to<>> words_;
  std::vector<int32_t> pool_;
};

StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::Load(const std::string& path, const TokenizerConfig& config) {
  BPT_ASSIGN_OR_RETURN(std::string text, ReadBoundedFile(path, kMaxTokenizerJsonBytes));
  return Parse(text, path, config);
}

StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::Parse(std::string_view json_text, const std::string& source,
                                                           const TokenizerConfig& config) {
  BPT_RETURN_IF_ERROR(CheckJsonDepth(json_text, kMaxTokenizerJsonDepth, source));
  BPT_ASSIGN_OR_RETURN(json root, ParseJsonObject(json_text, source));
  hf::ApplyTokenizerClass(config, root);
  auto in_file = [&](const Status& s) { return Status(s.code(), source + ": " + s.message()); };
  auto t = std::unique_ptr<HfTokenizer>(new HfTokenizer());

  const json& model = Component(root, "model");
  if (!model.is_object()) return in_file(InvalidArgument("model: expected an object"));
  const auto type = model.find("type");
  // Files from before the "type" tag hold a BPE model when they have merges.
  const bool is_bpe = type == model.end() ? model.contains("merges")
                                          : type->is_string() && type->get_ref<const std::string&>() == "BPE";
  if (!is_bpe) {
    const std::string name = type != model.end() && type->is_string() ? type->get<std::string>() : "(none)";
    return in_file(InvalidArgument("model.type: '" + name + "' is not supported (only BPE is)"));
  }
  StatusOr<std::unique_ptr<hf::Bpe>> bpe = hf::Bpe::Parse(model, "model");
  if (!bpe.ok()) return in_file(bpe.status());
  t->model_ = std::move(bpe).value();

  StatusOr<std::unique_ptr<hf::Normalizer>> normalizer = hf::ParseNormalizer(Component(root, "normalizer"), "normalizer");
  if (!normalizer.ok()) return in_file(normalizer.status());
  t->normalizer_ = std::move(normalizer).value();
  StatusOr<std::unique_ptr<hf::PreTokenizer>> pre_tokenizer =
      hf::ParsePreTokenizer(Component(root, "pre_tokenizer"), "pre_tokenizer");
  if (!pre_tokenizer.ok()) return in_file(pre_tokenizer.status());
  t->pre_tokenizer_ = std::move(pre_tokenizer).value();
  if (const json& decoder = Component(root, "decoder"); !decoder.is_null()) {
    StatusOr<std::unique_ptr<hf::Decoder>> parsed = hf::ParseDecoder(decoder, "decoder");
    if (!parsed.ok()) return in_file(parsed.status());
    t->decoder_ = std::move(parsed).value();
  }

  StatusOr<std::vector<hf::AddedToken>> listed = ParseAddedTokens(root);
  if (!listed.ok()) return in_file(listed.status());
  // The crate gives added tokens their ids anew (the file's "id" only draws a warning there): the
  // model's id for a token it has, else the next free one. A repeated content keeps its first id
  // and takes the later flags. transformers then adds tokenizer_config's bos and eos tokens as
  // special ones when the file lacks them.
  std::vector<hf::AddedToken> added;
  std::unordered_map<std::string, size_t> added_index;
  int32_t max_added = -1;
  const int32_t model_count = static_cast<int32_t>(t->model_->num_tokens());
  const auto add = [&](hf::AddedToken token) {
    if (token.content.empty()) return;
    if (const auto it = added_index.find(token.content); it != added_index.end()) {
      token.id = added[it->second].id;
      added[it->second] = std::move(token);
      return;
    }
    if (const std::optional<int32_t> id = t->model_->TokenToId(token.content)) token.id = *id;
    else token.id = max_added < 0 ? model_count : max_added >= model_count || model_count == 0 ? max_added + 1 : model_count;
    max_added = std::max(max_added, token.id);
    added_index.emplace(token.content, added.size());
    added.push_back(std::move(token));
  };
  for (hf::AddedToken& token : *listed) add(std::move(token));
  for (const std::optional<std::string>& special : {config.bos_token, config.eos_token})
    if (special && !added_index.contains(*special)) add(hf::AddedToken{*special, -1, true, false, false, false, false});
  StatusOr<hf::AddedVocabulary> vocabulary = hf::AddedVocabulary::Create(std::move(added), t->normalizer_.get());
  if (!vocabulary.ok()) return in_file(vocabulary.status());
  t->added_ = std::move(vocabulary).value();

  t->vocab_size_ = t->model_->max_id() + 1;
  for (const hf::AddedToken& a : t->added_.tokens()) t->vocab_size_ = std::max(t->vocab_size_, a.id + 1);
  t->added_by_id_.assign(t->vocab_size_, -1);
  t->special_.assign(t->vocab_size_, false);
  const auto& tokens = t->added_.tokens();
  for (size_t i = 0; i < tokens.size(); ++i) {
    // The first entry of an id is the one decoding gives, as in the crate's id -> token map.
    if (t->added_by_id_[tokens[i].id] < 0) t->added_by_id_[tokens[i].id] = static_cast<int32_t>(i);
    if (tokens[i].special) t->special_[tokens[i].id] = true;
  }

  // transformers 5 leaves the file's post-processor in place: tokenizer_config.json's
  // add_bos_token/add_eos_token do not reach the backend it builds (so they are not read), and a
  // null post-processor becomes a template of $A alone.
  if (const json& post_processor = Component(root, "post_processor"); !post_processor.is_null()) {
    StatusOr<hf::SequenceAffixes> affixes = hf::ParsePostProcessor(post_processor, "post_processor");
    if (!affixes.ok()) return in_file(affixes.status());
    t->prefix_ = std::move(affixes->prefix);
    t->suffix_ = std::move(affixes->suffix);
  }
  for (const std::vector<int32_t>* side : {&t->prefix_, &t->suffix_})
    for (int32_t id : *side)
      if (id >= t->vocab_size_)
        return in_file(InvalidArgument("post_processor: special token id " + std::to_string(id) +
                                       " is outside the vocabulary [0, " + std::to_string(t->vocab_size_) + ")"));
  if (config.eos_token) t->eos_id_ = t->TokenToId(*config.eos_token);

  // A bound on bytes per id holds when no stage can drop or shrink text (nor the model, for want
  // of a token) and no id stands for an unbounded run (fused unknowns, added tokens that swallow
  // spaces).
  const json& pre_tokenizer_spec = Component(root, "pre_tokenizer");
  const bool text_kept = NeverShrinks(Component(root, "normalizer")) && KeepsEveryByte(pre_tokenizer_spec) &&
                         (t->model_->covers_any_text() ||
                          (IsByteLevel(pre_tokenizer_spec) && t->model_->has_byte_level_alphabet()));
  const bool any_strip = std::any_of(tokens.begin(), tokens.end(), [](const hf::AddedToken& a) { return a.lstrip || a.rstrip; });
  if (text_kept && !any_strip && !t->model_->fuses_unknown()) {
    const size_t longest = std::max(static_cast<size_t>(t->model_->max_token_bytes()), t->added_.longest_match());
    t->max_piece_bytes_ = static_cast<int>(std::min<size_t>(longest, INT32_MAX));
  }
  return t;
}

std::optional<int32_t> HfTokenizer::TokenToId(std::string_view token) const {
  if (const hf::AddedToken* a = added_.Find(token)) return a->id;
  return model_->TokenToId(token);
}

Status HfTokenizer::EncodeStretch(std::string_view text, bool at_text_start, WordCache& cache,
                                  std::vector<int32_t>& ids, size_t max_ids) const {
  std::vector<std::string> pieces;
  if (pre_tokenizer_ != nullptr) pre_tokenizer_->Split(text, at_text_start, pieces);
  else pieces.emplace_back(text);
  for (const std::string& piece : pieces) {
    if (!cache.Append(piece, ids)) {
      const size_t before = ids.size();
      BPT_RETURN_IF_ERROR(model_->Tokenize(piece, ids));
      cache.Remember(piece, std::span<const int32_t>(ids).subspan(before));
    }
    if (ids.size() > max_ids) return TooManyIds(max_ids);
  }
  return OkStatus();
}

StatusOr<std::vector<int32_t>> HfTokenizer::Encode(std::string_view text, size_t max_ids, size_t* bytes_encoded) const {
  size_t encoded = 0;
  if (bytes_encoded == nullptr) bytes_encoded = &encoded;
  *bytes_encoded = 0;
  if (const size_t bad = hf::Utf8ValidPrefix(text); bad != text.size())
    return InvalidArgument("the text is not valid UTF-8 (at byte " + std::to_string(bad) + ")");
  // Fewer bytes than ids is impossible: refuse before any work.
  if (max_ids != kNoLimit && max_piece_bytes_ > 0 && text.size() / max_piece_bytes_ > max_ids)
    return TooManyIds(max_ids);

  std::vector<int32_t> ids;
  WordCache cache;
  std::vector<hf::TextSegment> raw, normalized_segments;
  added_.Split(text, /*normalized=*/false, raw);
  for (const hf::TextSegment& segment : raw) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
    } else {
      const std::string_view stretch = text.substr(segment.begin, segment.end - segment.begin);
      const std::string normalized = normalizer_ != nullptr ? normalizer_->Normalize(stretch) : std::string(stretch);
      normalized_segments.clear();
      added_.Split(normalized, /*normalized=*/true, normalized_segments);
      for (const hf::TextSegment& part : normalized_segments) {
        if (part.id >= 0) {
          ids.push_back(part.id);
          continue;
        }
        const Status status =
            EncodeStretch(std::string_view(normalized).substr(part.begin, part.end - part.begin),
                          segment.begin == 0 && part.begin == 0, cache, ids, max_ids);
        if (!status.ok()) {
          *bytes_encoded = segment.end;
          return status;
        }
      }
    }
    *bytes_encoded = segment.end;
    if (ids.size() > max_ids) return TooManyIds(max_ids);
  }
  return ids;
}

StatusOr<std::string> HfTokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_size_)
      return InvalidArgument("token id " + std::to_string(id) + " at index " + std::to_string(i) +
                             " is not in the tokenizer's vocabulary [0, " + std::to_string(vocab_size_) + ")");
    const std::string* token = added_by_id_[id] >= 0 ? &added_.DecodedForm(added_by_id_[id]) : model_->IdToToken(id);
    // An id in a gap of the vocabulary has no token: the crate's decode skips it (filter_map).
    if (token == nullptr || (skip_special_tokens && special_[id])) continue;
    tokens.push_back(*token);
  }
  std::string text;
  if (decoder_ != nullptr) {
    decoder_->DecodeChain(tokens);
    for (const std::string& t : tokens) text += t;
    return text;
  }
  for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  return text;
}

}  // namespace bpt
