#include "hf_bpe.h"

#include <algorithm>
#include <queue>

#include "json_fields.h"
#include "hf_byte_level.h"
#include "hf_unicode.h"

namespace bpt::hf {
namespace {

using nlohmann::json;

// Ids index a table; real vocabularies stay far below this (Gemma's: 262144).
constexpr int64_t kMaxTokenId = (1 << 22) - 1;

std::string Quote(std::string_view token) {
  std::string q = "'";
  q.append(token.substr(0, 60));
  if (token.size() > 60) q += "...";
  return q + "'";
}

// One symbol of a word being merged: a token and its neighbours in the linked list (-1: none).
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool removed;
};

struct QueuedMerge {
  uint32_t rank;
  int32_t pos;
  int32_t new_id;
  // std::priority_queue pops the largest: the lowest rank, then the leftmost, is the largest.
  bool operator<(const QueuedMerge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

StatusOr<std::unique_ptr<Bpe>> Bpe::Parse(const json& spec, const std::string& where) {
  auto bpe = std::unique_ptr<Bpe>(new Bpe());
  BPT_ASSIGN_OR_RETURN(JsonFields f, JsonFields::Of(spec, where));
  const auto dropout = spec.find("dropout");
  if (dropout != spec.end() && !dropout->is_null() && !(dropout->is_number() && dropout->get<double>() == 0.0))
    return InvalidArgument(where + ".dropout: only null is supported (dropout makes encoding random)");
  BPT_ASSIGN_OR_RETURN(bpe->unk_token_, f.OptionalString("unk_token", Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(std::optional<std::string> prefix, f.OptionalString("continuing_subword_prefix", Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(std::optional<std::string> suffix, f.OptionalString("end_of_word_suffix", Null::kAbsent));
  bpe->continuing_subword_prefix_ = prefix.value_or("");
  bpe->end_of_word_suffix_ = suffix.value_or("");
  BPT_ASSIGN_OR_RETURN(bpe->fuse_unk_, f.BoolOr("fuse_unk", false, Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(bpe->byte_fallback_, f.BoolOr("byte_fallback", false, Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(bpe->ignore_merges_, f.BoolOr("ignore_merges", false, Null::kAbsent));

  const auto vocab = spec.find("vocab");
  if (vocab == spec.end() || !vocab->is_object()) return InvalidArgument(where + ".vocab: must be an object {token: id}");
  bpe->vocab_.reserve(vocab->size());
  int64_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const json& id = it.value();
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId)
      return InvalidArgument(where + ".vocab[" + Quote(it.key()) + "]: the id must be an integer in [0, " +
                             std::to_string(kMaxTokenId) + "]");
    bpe->vocab_.emplace(it.key(), static_cast<int32_t>(id.get<int64_t>()));
    max_id = std::max(max_id, id.get<int64_t>());
  }
  bpe->tokens_.assign(static_cast<size_t>(max_id + 1), nullptr);
  for (const auto& [token, id] : bpe->vocab_) {
    if (bpe->tokens_[id] != nullptr)
      return InvalidArgument(where + ".vocab: id " + std::to_string(id) + " is given to both " +
                             Quote(*bpe->tokens_[id]) + " and " + Quote(token));
    bpe->tokens_[id] = &token;
  }

  const auto merges = spec.find("merges");
  if (merges != spec.end() && !merges->is_null()) {
    if (!merges->is_array()) return InvalidArgument(where + ".merges: must be a list");
    const size_t prefix_len = bpe->continuing_subword_prefix_.size();
    bpe->merges_.reserve(merges->size());
    for (size_t rank = 0; rank < merges->size(); ++rank) {
      const json& m = (*merges)[rank];
      const std::string at = where + ".merges[" + std::to_string(rank) + "]";
      std::string a, b;
      if (m.is_string()) {
        const std::string& line = m.get_ref<const std::string&>();
        const size_t space = line.find(' ');
        if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
          return InvalidArgument(at + ": " + Quote(line) + " is not two tokens separated by one space");
        a = line.substr(0, space);
        b = line.substr(space + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        return InvalidArgument(at + ": must be \"a b\" or [\"a\", \"b\"]");
      }
      const auto a_id = bpe->vocab_.find(a);
      if (a_id == bpe->vocab_.end()) return InvalidArgument(at + ": " + Quote(a) + " is not in the vocabulary");
      const auto b_id = bpe->vocab_.find(b);
      if (b_id == bpe->vocab_.end()) return InvalidArgument(at + ": " + Quote(b) + " is not in the vocabulary");
      // The merged token drops b's continuing_subword_prefix, as the tokenizers crate does (whether
      // or not b carries it).
      if (b.size() < prefix_len)
        return InvalidArgument(at + ": " + Quote(b) + " is shorter than the continuing_subword_prefix");
      if (prefix_len < b.size() && (static_cast<unsigned char>(b[prefix_len]) & 0xC0) == 0x80)
        return InvalidArgument(at + ": dropping the first " + std::to_string(prefix_len) + " bytes of " + Quote(b) +
                               " (the continuing_subword_prefix's length) cuts a character in two");
      const std::string merged = a + b.substr(prefix_len);
      const auto new_id = bpe->vocab_.find(merged);
      if (new_id == bpe->vocab_.end())
        return InvalidArgument(at + ": the merged token " + Quote(merged) + " is not in the vocabulary");
      // A repeated pair takes its last rank, as the crate's map does.
      bpe->merges_[PairKey(a_id->second, b_id->second)] = Merge{static_cast<uint32_t>(rank), new_id->second};
    }
  }

  std::fill(std::begin(bpe->byte_ids_), std::end(bpe->byte_ids_), -1);
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int byte = 0; byte < 256; ++byte) {
    const std::string token = std::string("<0x") + kHex[byte >> 4] + kHex[byte & 15] + ">";
    if (const auto it = bpe->vocab_.find(token); it != bpe->vocab_.end()) bpe->byte_ids_[byte] = it->second;
  }
  return bpe;
}

std::optional<int32_t> Bpe::TokenToId(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* Bpe::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) return nullptr;
  return tokens_[id];
}

int Bpe::max_token_bytes() const {
  size_t longest = 0;
  for (const auto& [token, id] : vocab_) longest = std::max(longest, token.size());
  // An unknown character is one id of up to 4 bytes.
  if (unk_token_) longest = std::max<size_t>(longest, 4);
  return static_cast<int>(longest);
}

bool Bpe::covers_any_text() const {
  if (unk_token_ && TokenToId(*unk_token_)) return true;
  return byte_fallback_ && std::all_of(std::begin(byte_ids_), std::end(byte_ids_), [](int32_t id) { return id >= 0; });
}

bool Bpe::has_byte_level_alphabet() const {
  if (!continuing_subword_prefix_.empty() || !end_of_word_suffix_.empty()) return false;
  for (int byte = 0; byte < 256; ++byte)
    if (!vocab_.contains(BytesToByteLevelChars(std::string(1, static_cast<char>(byte))))) return false;
  return true;
}

Status Bpe::Tokenize(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.empty()) return OkStatus();
  if (ignore_merges_) {
    if (const auto whole = vocab_.find(piece); whole != vocab_.end()) {
      ids.push_back(whole->second);
      return OkStatus();
    }
  }
  // The piece's characters as initial symbols, as the crate's merge_word builds them.
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  const auto add = [&](int32_t id) {
    const int32_t pos = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, pos - 1, pos + 1, false});
  };
  std::optional<int32_t> unk_id;
  if (unk_token_) unk_id = TokenToId(*unk_token_);
  bool pending_unk = false;
  std::string text;
  for (size_t i = 0; i < piece.size();) {
    size_t after = i;
    NextCodePoint(piece, after);
    const size_t len = after - i;
    const bool is_first = i == 0;
    const bool is_last = i + len == piece.size();
    text.clear();
    if (!is_first) text += continuing_subword_prefix_;
    text.append(piece.substr(i, len));
    if (is_last) text += end_of_word_suffix_;
    i += len;
    if (const auto it = vocab_.find(text); it != vocab_.end()) {
      if (pending_unk) add(*unk_id);
      pending_unk = false;
      add(it->second);
      continue;
    }
    if (byte_fallback_ && std::all_of(text.begin(), text.end(),
                                      [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; })) {
      // The crate adds these ahead of a pending unknown; so does this.
      for (char c : text) add(byte_ids_[static_cast<unsigned char>(c)]);
      continue;
    }
    if (!unk_token_) continue;
    if (!unk_id) return InvalidArgument("the unk_token " + Quote(*unk_token_) + " is not in the vocabulary");
    if (pending_unk && !fuse_unk_) add(*unk_id);
    pending_unk = true;
  }
  if (pending_unk) add(*unk_id);
  if (symbols.empty()) return OkStatus();
  symbols.back().next = -1;

  std::priority_queue<QueuedMerge> queue;
  const auto find_merge = [&](int32_t a, int32_t b) -> const Merge* {
    const auto it = merges_.find(PairKey(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t pos = 0; pos + 1 < symbols.size(); ++pos)
    if (const Merge* m = find_merge(symbols[pos].id, symbols[pos + 1].id))
      queue.push({m->rank, static_cast<int32_t>(pos), m->new_id});
  while (!queue.empty()) {
    const QueuedMerge top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.removed || left.next < 0) continue;
    const Symbol right = symbols[left.next];
    // A stale entry: the pair at pos changed since it was queued.
    const Merge* current = find_merge(left.id, right.id);
    if (current == nullptr || current->new_id != top.new_id) continue;
    left.id = top.new_id;
    symbols[left.next].removed = true;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0)
      if (const Merge* m = find_merge(symbols[left.prev].id, left.id)) queue.push({m->rank, left.prev, m->new_id});
    if (left.next >= 0)
      if (const Merge* m = find_merge(left.id, symbols[left.next].id)) queue.push({m->rank, top.pos, m->new_id});
  }
  for (const Symbol& s : symbols)
    if (!s.removed) ids.push_back(s.id);
  return OkStatus();
}

}  // namespace bpt::hf
