#include "engine/tokenizer.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>

#include "engine/shared_library.h"
#include "engine/spm_shim.h"

namespace bpt {

struct Tokenizer::Api {
  decltype(&bpt_spm_load) load;
  decltype(&bpt_spm_free) free;
  decltype(&bpt_spm_vocab_size) vocab_size;
  decltype(&bpt_spm_bos_id) bos_id;
  decltype(&bpt_spm_eos_id) eos_id;
  decltype(&bpt_spm_encode) encode;
  decltype(&bpt_spm_decode) decode;
};

namespace {

constexpr const char* kShimName = "libbptserve_spm.so";

StatusOr<const Tokenizer::Api*> LoadApi() {
  static std::once_flag once;
  static Tokenizer::Api api;
  static Status status;
  std::call_once(once, [] {
    StatusOr<void*> handle = OpenSharedLibrary(kShimName, "BPTSERVE_SPM_SHIM", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
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
    api.encode = reinterpret_cast<decltype(api.encode)>(sym("bpt_spm_encode"));
    api.decode = reinterpret_cast<decltype(api.decode)>(sym("bpt_spm_decode"));
    if (!api.load || !api.free || !api.vocab_size || !api.bos_id || !api.eos_id || !api.encode || !api.decode)
      status = FailedPrecondition(std::string(kShimName) + " lacks a bpt_spm_* symbol");
  });
  if (!status.ok()) return status;
  return &api;
}

}  // namespace

Tokenizer::Tokenizer(const Api* api, bpt_spm* handle)
    : api_(api),
      handle_(handle),
      vocab_size_(api->vocab_size(handle)),
      bos_id_(api->bos_id(handle)),
      eos_id_(api->eos_id(handle)) {}

Tokenizer::~Tokenizer() { api_->free(handle_); }

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& model_path) {
  BPT_ASSIGN_OR_RETURN(const Api* api, LoadApi());
  if (access(model_path.c_str(), R_OK) != 0) return NotFound("no readable tokenizer at '" + model_path + "'");
  struct stat st {};
  if (stat(model_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return InvalidArgument("tokenizer '" + model_path + "' is not a regular file");
  char err[512] = {0};
  bpt_spm* handle = api->load(model_path.c_str(), err, sizeof(err));
  if (handle == nullptr) return InvalidArgument("cannot load tokenizer '" + model_path + "': " + err);
  return std::unique_ptr<Tokenizer>(new Tokenizer(api, handle));
}

StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text) const {
  std::vector<int> ids(text.size() + 8);  // SentencePiece emits at most one id per byte
  long n = api_->encode(handle_, text.data(), text.size(), ids.data(), ids.size());
  if (n < 0) return InvalidArgument("the tokenizer could not encode the text");
  if (static_cast<size_t>(n) > ids.size()) {
    ids.resize(n);
    n = api_->encode(handle_, text.data(), text.size(), ids.data(), ids.size());
  }
  return std::vector<int32_t>(ids.begin(), ids.begin() + n);
}

StatusOr<std::string> Tokenizer::Decode(std::span<const int32_t> ids) const {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab_size_)
      return InvalidArgument("token id " + std::to_string(ids[i]) + " at index " + std::to_string(i) +
                             " is outside the tokenizer's vocabulary [0, " + std::to_string(vocab_size_) + ")");
  std::vector<int> as_int(ids.begin(), ids.end());
  std::string text(ids.size() * 8 + 16, '\0');
  long n = api_->decode(handle_, as_int.data(), as_int.size(), text.data(), text.size());
  if (n < 0) return Internal("the tokenizer could not decode the ids");
  if (static_cast<size_t>(n) > text.size()) {
    text.resize(n);
    n = api_->decode(handle_, as_int.data(), as_int.size(), text.data(), text.size());
  }
  text.resize(n);
  return text;
}

}  // namespace bpt
