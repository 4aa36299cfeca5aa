#include "sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "shared_library.h"
#include "spm_shim.h"

namespace bpt {

struct SentencePieceTokenizer::Api {
  decltype(&bpt_spm_load) load;
  decltype(&bpt_spm_free) free;
  decltype(&bpt_spm_vocab_size) vocab_size;
  decltype(&bpt_spm_bos_id) bos_id;
  decltype(&bpt_spm_eos_id) eos_id;
  decltype(&bpt_spm_piece_id) piece_id;
  decltype(&bpt_spm_is_special) is_special;
  decltype(&bpt_spm_max_piece_bytes) max_piece_bytes;
  decltype(&bpt_spm_splits_before_spaces) splits_before_spaces;
  decltype(&bpt_spm_encode) encode;
  decltype(&bpt_spm_decode) decode;
};

namespace {

constexpr const char* kShimName = "libbptserve_spm.so";

// AddressSanitizer refuses RTLD_DEEPBIND; there the shim (built without instrumentation) gets a
// link-map namespace of its own, which keeps its protobuf away from gRPC's just as well.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kShimInOwnNamespace = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kShimInOwnNamespace = true;
#else
constexpr bool kShimInOwnNamespace = false;
#endif
#else
constexpr bool kShimInOwnNamespace = false;
#endif
constexpr int kShimFlags = kShimInOwnNamespace ? RTLD_NOW | RTLD_LOCAL : RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
// Put before a chunk that starts with a space, it makes the chunk encode as the middle of a
// text (no dummy prefix of its own); its own ids are then dropped.
constexpr std::string_view kContinuationPrefix = "a";

// Where a chunk that starts near `from` may begin: just before a ' ' that follows another
// character; text.size() when there is none.
size_t NextCut(std::string_view text, size_t from) {
  for (size_t i = std::max<size_t>(from, 1); i < text.size(); ++i)
    if (text[i] == ' ' && text[i - 1] != ' ') return i;
  return text.size();
}

StatusOr<const SentencePieceTokenizer::Api*> LoadApi() {
  static std::once_flag once;
  static SentencePieceTokenizer::Api api;
  static Status status;
  std::call_once(once, [] {
    StatusOr<void*> handle = OpenSharedLibrary(kShimName, "BPTSERVE_SPM_SHIM", kShimFlags, kShimInOwnNamespace);
    if (!handle.ok()) {
      status = handle.status();
      return;
    }
    void* h = *handle;
    auto sym = [&](const char* name) { return dlsym(h, name); };
    api.load = reinterpret_cast<decltype(api.load)>(sym("bpt_spm_load"));
    api.free = reinterpret_cast<decltype(api.free)>(sym("bpt_spm_free"));
    api.vocab_size = reinterpret_cast<decltype(api.vocab_size)>(sym("bpt_spm_vocab_size"));
    api.bos_id = reinterpret_cast<decltype(api.bos_id)>(sym("bpt_spm_bos_id"));
    api.eos_id = reinterpret_cast<decltype(api.eos_id)>(sym("bpt_spm_eos_id"));
    api.piece_id = reinterpret_cast<decltype(api.piece_id)>(sym("bpt_spm_piece_id"));
    api.is_special = reinterpret_cast<decltype(api.is_special)>(sym("bpt_spm_is_special"));
    api.max_piece_bytes = reinterpret_cast<decltype(api.max_piece_bytes)>(sym("bpt_spm_max_piece_bytes"));
    api.splits_before_spaces =
        reinterpret_cast<decltype(api.splits_before_spaces)>(sym("bpt_spm_splits_before_spaces"));
    api.encode = reinterpret_cast<decltype(api.encode)>(sym("bpt_spm_encode"));
    api.decode = reinterpret_cast<decltype(api.decode)>(sym("bpt_spm_decode"));
    if (!api.load || !api.free || !api.vocab_size || !api.bos_id || !api.eos_id || !api.piece_id || !api.is_special ||
        !api.max_piece_bytes ||
        !api.splits_before_spaces || !api.encode || !api.decode)
      status = FailedPrecondition(std::string(kShimName) + " lacks a bpt_spm_* symbol");
  });
  if (!status.ok()) return status;
  return &api;
}

std::optional<int32_t> IdOrNone(int id) { return id >= 0 ? std::optional<int32_t>(id) : std::nullopt; }

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const Api* api, bpt_spm* handle, const TokenizerConfig& config)
    : api_(api),
      handle_(handle),
      vocab_size_(api->vocab_size(handle)),
      bos_id_(IdOrNone(api->bos_id(handle))),
      eos_id_(IdOrNone(api->eos_id(handle))),
      max_piece_bytes_(api->max_piece_bytes(handle)),
      splits_before_spaces_(api->splits_before_spaces(handle) != 0) {
  if (config.eos_token) {
    const int configured = api->piece_id(handle, config.eos_token->data(), config.eos_token->size());
    if (configured >= 0) eos_id_ = configured;
  }
  if (bos_id_) prefix_.push_back(*bos_id_);
  if (splits_before_spaces_) {
    StatusOr<std::vector<int32_t>> prefix = EncodeWhole(kContinuationPrefix);
    if (prefix.ok() && !prefix->empty()) continuation_prefix_ = std::move(prefix).value();
    else splits_before_spaces_ = false;
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() { api_->free(handle_); }

StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Load(const std::string& model_path,
                                                                                const TokenizerConfig& config) {
  BPT_ASSIGN_OR_RETURN(const Api* api, LoadApi());
  if (access(model_path.c_str(), R_OK) != 0) return NotFound("no readable tokenizer at '" + model_path + "'");
  struct stat st {};
  if (stat(model_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return InvalidArgument("tokenizer '" + model_path + "' is not a regular file");
  char err[512] = {0};
  bpt_spm* handle = api->load(model_path.c_str(), err, sizeof(err));
  if (handle == nullptr) return InvalidArgument("cannot load tokenizer '" + model_path + "': " + err);
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(api, handle, config));
}

StatusOr<std::vector<int32_t>> SentencePieceTokenizer::EncodeInChunks(std::string_view text, size_t max_ids,
                                                                       size_t chunk_bytes, size_t* bytes_encoded) const {
  size_t encoded = 0;
  if (bytes_encoded == nullptr) bytes_encoded = &encoded;
  *bytes_encoded = 0;
  const auto too_many = [&] { return TooManyIds(max_ids); };
  // Fewer bytes than ids is impossible: refuse before any work.
  if (max_ids != kNoLimit && max_piece_bytes_ > 0 && text.size() / max_piece_bytes_ > max_ids) return too_many();
  if (!splits_before_spaces_ || text.size() <= chunk_bytes) {
    BPT_ASSIGN_OR_RETURN(std::vector<int32_t> ids, EncodeWhole(text));
    *bytes_encoded = text.size();
    if (ids.size() > max_ids) return too_many();
    return ids;
  }
  std::vector<int32_t> ids;
  std::string continuation;
  for (size_t begin = 0; begin < text.size();) {
    const size_t end = NextCut(text, begin + chunk_bytes);
    const std::string_view chunk = text.substr(begin, end - begin);
    if (begin == 0) {
      BPT_ASSIGN_OR_RETURN(ids, EncodeWhole(chunk));
    } else {
      continuation.resize(kContinuationPrefix.size() + chunk.size());
      std::copy(kContinuationPrefix.begin(), kContinuationPrefix.end(), continuation.begin());
      std::copy(chunk.begin(), chunk.end(), continuation.begin() + kContinuationPrefix.size());
      BPT_ASSIGN_OR_RETURN(std::vector<int32_t> part, EncodeWhole(continuation));
      if (part.size() < continuation_prefix_.size() ||
          !std::equal(continuation_prefix_.begin(), continuation_prefix_.end(), part.begin()))
        return Internal("the tokenizer did not keep a chunk's continuation prefix apart");
      ids.insert(ids.end(), part.begin() + continuation_prefix_.size(), part.end());
    }
    *bytes_encoded = end;
    if (ids.size() > max_ids) return too_many();
    begin = end;
  }
  return ids;
}

StatusOr<std::vector<int32_t>> SentencePieceTokenizer::EncodeWhole(std::string_view text) const {
  std::vector<int> ids(text.size() + 8);  // SentencePiece emits at most one id per byte
  long n = api_->encode(handle_, text.data(), text.size(), ids.data(), ids.size());
  if (n < 0) return Internal("the tokenizer could not encode the text");
  if (static_cast<size_t>(n) > ids.size()) {
    ids.resize(n);
    n = api_->encode(handle_, text.data(), text.size(), ids.data(), ids.size());
    if (n < 0 || static_cast<size_t>(n) > ids.size()) return Internal("the tokenizer could not encode the text");
  }
  return std::vector<int32_t>(ids.begin(), ids.begin() + n);
}

bool SentencePieceTokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < vocab_size_ && api_->is_special(handle_, id) != 0;
}

StatusOr<std::string> SentencePieceTokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab_size_)
      return InvalidArgument("token id " + std::to_string(ids[i]) + " at index " + std::to_string(i) +
                             " is outside the tokenizer's vocabulary [0, " + std::to_string(vocab_size_) + ")");
  std::vector<int> as_int;
  as_int.reserve(ids.size());
  for (int32_t id : ids)
    if (!skip_special_tokens || !IsSpecial(id)) as_int.push_back(id);
  std::string text(ids.size() * 8 + 16, '\0');
  long n = api_->decode(handle_, as_int.data(), as_int.size(), text.data(), text.size());
  if (n < 0) return Internal("the tokenizer could not decode the ids");
  if (static_cast<size_t>(n) > text.size()) {
    text.resize(n);
    n = api_->decode(handle_, as_int.data(), as_int.size(), text.data(), text.size());
    if (n < 0 || static_cast<size_t>(n) > text.size()) return Internal("the tokenizer could not decode the ids");
  }
  text.resize(n);
  return text;
}

}  // namespace bpt
