#include "engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <map>

#include "backend_factory.h"
#include "chat_template.h"
#include "check.h"
#include "generation_config.h"
#include "incremental_detokenizer.h"
#include "disk_kv_tier.h"
#include "host_kv_tier.h"
#include "kv_block_manager.h"
#include "kv_tier_store.h"
#include "model_config.h"
#include "model_fingerprint.h"
#include "model_runner.h"
#include "redis_kv_tier.h"
#include "sampler.h"
#include "scheduler.h"
#include "stop_string_matcher.h"
#include "tokenizer.h"
#include "tokenizer_config.h"

namespace bpt {
namespace {

// The one message for text asked of a model without a tokenizer.
constexpr char kTokenIdsMode[] =
    "this model is served in token-ids mode (no tokenizer.json or tokenizer.model): send token ids, not text";

bool FileExists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// The template apply_chat_template would pick without tools, parsed; FailedPrecondition, the
// answer to every chat, when there is none or it does not parse: the model still serves text.
StatusOr<ChatTemplate> LoadChatTemplate(const TokenizerConfig& config) {
  const std::string* source = config.ChatTemplateFor(/*with_tools=*/false);
  if (source == nullptr)
    return FailedPrecondition(
        "this model has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja): "
        "send text or token ids");
  StatusOr<ChatTemplate> parsed =
      ChatTemplate::Parse(*source, config.special_tokens);
  if (!parsed.ok()) return FailedPrecondition("this model's chat template does not parse: " + parsed.status().message());
  return parsed;
}

StatusOr<std::string> ReadSecretFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(std::string(flag) + " '" + path + "' cannot be read");
  std::stringstream bytes;
  bytes << in.rdbuf();
  std::string secret = bytes.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  return secret;
}

// The tiers below the pool that the options name, opened, fastest first.
StatusOr<std::vector<std::unique_ptr<KvTier>>> OpenKvTiers(const KvTierOptions& options, const std::string& key_namespace) {
  std::vector<std::unique_ptr<KvTier>> tiers;
  if (!options.disk_dir.empty()) {
    // 2^30 GiB (an exbibyte) keeps the byte count well inside int64.
    if (!(options.disk_gib > 0 && options.disk_gib <= (1LL << 30)))
      return InvalidArgument("kv_disk_gib must be in (0, 2^30] with kv_disk_dir");
    DiskKvTierOptions disk;
    disk.dir = options.disk_dir;
    disk.budget_bytes = static_cast<int64_t>(options.disk_gib * (1LL << 30));
    BPT_ASSIGN_OR_RETURN(auto tier, DiskKvTier::Open(std::move(disk)));
    tiers.push_back(std::move(tier));
  } else if (options.disk_gib > 0) {
    return InvalidArgument("kv_disk_gib is set without kv_disk_dir");
  }
  if (!options.remote.empty()) {
    if (options.key_file.empty())
      return FailedPrecondition("kv_remote needs kv_tier_key_file: chunks in a shared Redis must carry an HMAC, "
                                "or a writable Redis could feed KV to every replica");
    RedisKvTierOptions remote;
    remote.url = options.remote;
    remote.timeout_ms = options.remote_timeout_ms;
    remote.tls_ca_file = options.remote_tls_ca_file;
    remote.tls_cert_file = options.remote_tls_cert_file;
    remote.tls_key_file = options.remote_tls_key_file;
    remote.tls_server_name = options.remote_tls_server_name;
    remote.key_namespace = key_namespace;
    if (!options.remote_password_file.empty()) {
      BPT_ASSIGN_OR_RETURN(remote.password, ReadSecretFile(options.remote_password_file, "kv_remote_password_file"));
    }
    BPT_ASSIGN_OR_RETURN(auto tier, RedisKvTier::Open(remote));
    tiers.push_back(std::move(tier));
  }
  return tiers;
}

}  // namespace

// Everything behind the facade: the model, its tokenizer and runner, the KV blocks and the
// scheduler, and the requests in flight.
class Engine::Impl {
 public:
  struct Request;
  Impl(ModelConfig config, std::unique_ptr<Tokenizer> tokenizer, std::vector<int32_t> prompt_prefix,
       std::unique_ptr<ModelRunner> runner, int64_t num_kv_blocks, const EngineOptions& options);
  ~Impl();

  StatusOr<std::vector<int32_t>> EncodePrompt(std::string_view text, int64_t max_tokens, bool add_special_tokens) const;
  StatusOr<std::string> Decode(std::span<const int32_t> ids, bool skip_special_tokens) const;
  StatusOr<std::string> RenderChat(std::span<const ChatMessage> messages, bool continue_final_message) const;
  Status ValidateRequest(const GenerationRequest& request) const;
  Status Submit(GenerationRequest request, GenerationObserver* observer);
  void Step();
  StatusOr<std::vector<float>> PromptLogits(const std::vector<int32_t>& prompt);
  MemoryPlan memory_plan() const;
  int64_t kv_capacity_tokens() const { return kv_blocks_.capacity_tokens(); }

  // Opens the tiers below the pool that the options name and links them to the scheduler.
  Status StartKvTiers(const std::string& kv_layout);
  // Results of the tiers' threads: loads to their requests, finished writes to Prefill requests.
  void PollKvTiers();
  // Streams the request's next token and checks its stop conditions; true when finished.
  StatusOr<bool> ProcessToken(int64_t id, Request& r, const SampledToken& sampled);
  void FinishRequest(int64_t id, const StatusOr<GenerationResult>& result);
  // A prefill_only request whose prompt is computed: ends now, or once the tiers hold it.
  void FinishPrefill(int64_t id);
  // The request a scheduled chunk names: one in flight, or a bug.
  Request& RequestAt(int64_t id);
  bool IsEos(int32_t id) const;

  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int32_t> prompt_prefix_;  // what add_special_tokens puts before a prompt
  std::unique_ptr<ModelRunner> runner_;
  KvBlockManager kv_blocks_;
  EngineOptions options_;
  int64_t max_model_len_;
  Scheduler scheduler_;
  ModelInfo info_;
  StatusOr<ChatTemplate> chat_template_ = FailedPrecondition("no chat template loaded");
  std::map<int64_t, std::unique_ptr<Request>> requests_;
  int64_t next_request_id_ = 1;
  int64_t last_step_tokens_ = 0;
  int64_t last_step_sequences_ = 0;
  StepLayout step_;                 // reused by every step
  std::vector<float> step_logits_;  // [sequences needing logits, vocab], when sampled here
  std::vector<SamplingRow> step_sampling_;    // when the backend samples: one per logits row
  std::vector<SampledToken> step_sampled_;
  // Bytes that requests with retain_s will pin once their chunks are written, by request: counted
  // against the pinning tiers' budgets from admission on, so two retains admitted together cannot
  // both pass a check that only the pins already made would see.
  std::map<int64_t, int64_t> pin_reservations_;
  int64_t pin_reserved_bytes_ = 0;
  void ReleasePinReservation(int64_t id) {
    const auto it = pin_reservations_.find(id);
    if (it == pin_reservations_.end()) return;
    pin_reserved_bytes_ -= it->second;
    pin_reservations_.erase(it);
  }
  // Last, so it stops its threads (which copy into the pool) before anything else goes.
  std::unique_ptr<KvTierStore> tier_store_;
};

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos: return "eos";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "?";
}

Engine::Impl::Impl(ModelConfig config, std::unique_ptr<Tokenizer> tokenizer, std::vector<int32_t> prompt_prefix,
                   std::unique_ptr<ModelRunner> runner, int64_t num_kv_blocks, const EngineOptions& options)
    : config_(std::move(config)),
      tokenizer_(std::move(tokenizer)),
      prompt_prefix_(std::move(prompt_prefix)),
      runner_(std::move(runner)),
      kv_blocks_(num_kv_blocks, options.kv_cache.block_size),
      options_(options),
      max_model_len_(options.max_model_len > 0 ? options.max_model_len : config_.max_position_embeddings),
      scheduler_(options.scheduler, kv_blocks_) {
  if (options.kv_cache.shuffle_blocks) kv_blocks_.ShuffleFreeBlocks(0x5eed);
  info_.architecture = config_.architecture;
  info_.vocab_size = config_.vocab_size;
  info_.max_model_len = max_model_len_;
  info_.token_ids_mode = tokenizer_ == nullptr;
  info_.device = runner_->backend().name();
  info_.dtype = runner_->backend().dtype();
  info_.weight_dtype = runner_->backend().weight_dtype();
  info_.kv_dtype = runner_->backend().kv_dtype();
  info_.attention_kernels = runner_->backend().attention_kernels();
}

Status Engine::CheckDevice(const std::string& device) {
  if (device == "cpu" || device == "auto") return OkStatus();
  if (device == "cuda") return CheckCudaDevice();
  return InvalidArgument("device '" + device + "' is not one of cpu, cuda, auto");
}

StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  const SchedulerOptions& sched = options.scheduler;
  if (sched.prefill_block < 1) return InvalidArgument("prefill_block must be >= 1");
  if (sched.max_running < 1) return InvalidArgument("max_running must be >= 1");
  if (sched.max_queue < 0) return InvalidArgument("max_queue must be >= 0");
  if (options.ffn_sub_block < 1) return InvalidArgument("ffn_sub_block must be >= 1");
  if (options.generation_config != "auto" && options.generation_config != "none")
    return InvalidArgument("generation_config '" + options.generation_config + "' is not one of auto, none");
  if (options.kv_cache.block_size < 1) return InvalidArgument("kv_cache.block_size must be >= 1");
  if (!(options.kv_cache.memory_fraction > 0 && options.kv_cache.memory_fraction <= 1))
    return InvalidArgument("kv_cache.memory_fraction must be in (0, 1]");
  if (options.cpu.attention_tiling.query_tile < 1 || options.cpu.attention_tiling.kv_tile < 1)
    return InvalidArgument("attention tiles must be >= 1");
  struct stat st {};
  if (stat(options.model_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return NotFound("model directory '" + options.model_dir + "' does not exist");
  BPT_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(options.model_dir));
  BPT_ASSIGN_OR_RETURN(GenerationConfig generation, LoadGenerationConfig(options.model_dir, config.vocab_size));
  for (int id : generation.eos_token_ids)
    if (std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), id) == config.eos_token_ids.end())
      config.eos_token_ids.push_back(id);

  BPT_ASSIGN_OR_RETURN(TokenizerConfig tokenizer_config, LoadTokenizerConfig(options.model_dir));
  BPT_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Load(options.model_dir, tokenizer_config));
  std::vector<int32_t> prompt_prefix;
  if (tokenizer != nullptr) {
    if (tokenizer->vocab_size() > config.vocab_size)
      return InvalidArgument("the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                             " ids, more than the model's vocab_size " + std::to_string(config.vocab_size));
    const std::span<const int32_t> prefix = tokenizer->prefix_ids();
    prompt_prefix.assign(prefix.begin(), prefix.end());
    // A SentencePiece model's BOS is config.json's when it names one, as before tokenizer.json.
    if (!FileExists(options.model_dir + "/tokenizer.json") && !config.bos_token_ids.empty())
      prompt_prefix = {config.bos_token_ids[0]};
  }
  // Before the backend exists: it allocates from the config's sizes, which the files must back.
  BPT_ASSIGN_OR_RETURN(auto weights, ModelWeights::Open(options.model_dir, config));
  BPT_ASSIGN_OR_RETURN(auto backend, CreateBackend(config, options));
  const bool on_cpu = backend->name() == "cpu";
  const int64_t kv_bytes_per_token = backend->KvBytesPerToken(config.num_layers, config.kv_dim());

  // Weights and workspace first: the KV pool takes its share of what they leave.
  BPT_ASSIGN_OR_RETURN(auto runner, ModelRunner::Create(config, *weights, std::move(backend), options));
  weights.reset();  // unmaps the files

  const int block_size = options.kv_cache.block_size;
  const int64_t max_len = options.max_model_len > 0 ? options.max_model_len : config.max_position_embeddings;
  int64_t capacity = options.kv_cache.capacity_tokens;
  if (capacity <= 0) {
    const int64_t affordable = static_cast<int64_t>(static_cast<double>(runner->backend().FreeMemoryBytes()) *
                                                    options.kv_cache.memory_fraction / kv_bytes_per_token);
    // A device's memory is the pool's to take; host memory is shared with the rest of the
    // machine and the CPU pool is reserved lazily, so there it never exceeds one context.
    capacity = on_cpu ? std::min(max_len, affordable) : affordable;
    if (capacity < block_size)
      return ResourceExhausted("no memory is left for the KV cache after the weights and workspace (" +
                               std::to_string(runner->backend().FreeMemoryBytes()) + " bytes free)");
  }
  const int64_t num_blocks = (capacity + block_size - 1) / block_size;
  BPT_RETURN_IF_ERROR(runner->backend().AllocateKvPool(config.num_layers, num_blocks, block_size, config.kv_dim()));
  auto impl = std::make_unique<Impl>(std::move(config), std::move(tokenizer), std::move(prompt_prefix),
                                     std::move(runner), num_blocks, options);
  if (options.generation_config == "auto") impl->info_.default_sampling = generation.sampling;
  if (options.kv_tiers.enabled()) {
    const ModelInfo& info = impl->info_;
    const std::string kv_layout =
        "bptserve-kv-v1 device=" + info.device + " kernels=" + info.attention_kernels +
        " weights=" + ElementTypeName(info.weight_dtype) + " kv=" + ElementTypeName(info.kv_dtype) +
        " block=" + std::to_string(block_size) + " chunk=" + std::to_string(options.kv_tiers.chunk_tokens) +
        " rope_gap=" + std::to_string(options.rope_position_gap.start) + "," + std::to_string(options.rope_position_gap.length);
    BPT_RETURN_IF_ERROR(impl->StartKvTiers(kv_layout));
  }
  impl->chat_template_ = LoadChatTemplate(tokenizer_config);
  impl->info_.has_chat_template = impl->chat_template_.ok() && !impl->info_.token_ids_mode;
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

MemoryPlan Engine::Impl::memory_plan() const {
  return {runner_->backend().WeightBytes(), runner_->backend().WorkspaceBytes(),
          runner_->backend().KvBytesPerToken(config_.num_layers, config_.kv_dim()), kv_capacity_tokens()};
}

StatusOr<std::vector<int32_t>> Engine::Impl::EncodePrompt(std::string_view text, int64_t max_tokens,
                                                         bool add_special_tokens) const {
  if (tokenizer_ == nullptr)
    return FailedPrecondition(kTokenIdsMode);
  const std::span<const int32_t> prefix = add_special_tokens ? std::span<const int32_t>(prompt_prefix_) : std::span<const int32_t>();
  const std::span<const int32_t> suffix = add_special_tokens ? tokenizer_->suffix_ids() : std::span<const int32_t>();
  const int64_t max_text_ids = max_tokens - static_cast<int64_t>(prefix.size() + suffix.size());
  const auto too_many = [&] { return OutOfRange("the prompt has more than " + std::to_string(max_tokens) + " tokens"); };
  if (max_text_ids < 0) return too_many();
  StatusOr<std::vector<int32_t>> text_ids = tokenizer_->Encode(text, static_cast<size_t>(max_text_ids));
  if (!text_ids.ok()) {
    if (text_ids.status().code() == StatusCode::kOutOfRange) return too_many();
    return text_ids.status();
  }
  std::vector<int32_t> ids(prefix.begin(), prefix.end());
  ids.insert(ids.end(), text_ids->begin(), text_ids->end());
  ids.insert(ids.end(), suffix.begin(), suffix.end());
  return ids;
}

bool Engine::Impl::IsEos(int32_t id) const {
  if (!config_.eos_token_ids.empty())
    return std::find(config_.eos_token_ids.begin(), config_.eos_token_ids.end(), id) != config_.eos_token_ids.end();
  return tokenizer_ != nullptr && tokenizer_->eos_id() == id;
}

Status Engine::Impl::ValidateRequest(const GenerationRequest& r) const {
  if (r.prompt.empty()) return InvalidArgument("prompt is empty");
  for (size_t i = 0; i < r.prompt.size(); ++i)
    if (r.prompt[i] < 0 || r.prompt[i] >= config_.vocab_size)
      return InvalidArgument("prompt token_ids[" + std::to_string(i) + "] = " + std::to_string(r.prompt[i]) +
                             " is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
  const int64_t prompt_len = static_cast<int64_t>(r.prompt.size());
  if (prompt_len >= max_model_len_)
    return InvalidArgument("prompt has " + std::to_string(prompt_len) + " tokens; the model's context limit is " +
                           std::to_string(max_model_len_) + " tokens including at least one generated");
  BPT_RETURN_IF_ERROR(ValidateSamplingParams(r.sampling));
  BPT_RETURN_IF_ERROR(ValidateStoppingParams(r.stopping, config_.vocab_size,
                                             static_cast<int>(std::min<int64_t>(max_model_len_, INT32_MAX))));
  if (!r.stopping.stop.empty() && tokenizer_ == nullptr)
    return FailedPrecondition(std::string("stop strings need a tokenizer: ") + kTokenIdsMode);
  // A year: past it a pin is a leak of the disk budget, and now + retain_s could overflow.
  constexpr int64_t kMaxRetainS = 365LL * 24 * 3600;
  if (r.retain_s < 0 || r.retain_s > kMaxRetainS)
    return InvalidArgument("retain_s must be in [0, " + std::to_string(kMaxRetainS) + "] (a year), not " +
                           std::to_string(r.retain_s));
  if (r.prefill_only && !r.use_prefix_cache)
    return InvalidArgument("use_prefix_cache must be true for a prefill: its KV is what it keeps");
  if (r.retain_s > 0) {
    const KvTier* tier = tier_store_ == nullptr ? nullptr : tier_store_->pinning_tier();
    if (tier == nullptr)
      return FailedPrecondition("retain_s needs a tier that can pin: start the server with --kv-disk-dir (or, on a GPU, "
                                "--kv-host-gib)");
    const int64_t chunks = prompt_len / options_.kv_tiers.chunk_tokens;  // what Store pins
    const int64_t needed = chunks * tier_store_->chunk_bytes();
    const int64_t pinned = tier->pinned_bytes() + pin_reserved_bytes_;
    const std::string name = tier->name();
    if (needed + pinned > tier->budget_bytes())
      return ResourceExhausted("retain_s: the prompt's " + std::to_string(needed) + " bytes of KV chunks and the " +
                               std::to_string(pinned) + " bytes pinned already (or by requests in flight) exceed the " +
                               name + " tier's " + std::to_string(tier->budget_bytes()) + " bytes (--kv-" + name + "-gib)");
  }
  if (prompt_len + r.stopping.max_new_tokens > max_model_len_)
    return InvalidArgument("prompt (" + std::to_string(prompt_len) + " tokens) + max_new_tokens (" +
                           std::to_string(r.stopping.max_new_tokens) + ") exceeds the context limit of " +
                           std::to_string(max_model_len_) + " tokens");
  return OkStatus();
}

StatusOr<std::vector<float>> Engine::Impl::PromptLogits(const std::vector<int32_t>& prompt) {
  GenerationRequest probe;
  probe.prompt = prompt;
  probe.stopping.max_new_tokens = 1;
  BPT_RETURN_IF_ERROR(ValidateRequest(probe));
  BlockTable table;
  std::vector<float> logits;
  Status status;
  const int64_t total = static_cast<int64_t>(prompt.size());
  for (int64_t pos = 0; pos < total && status.ok(); pos += options_.scheduler.prefill_block) {
    const int32_t n = static_cast<int32_t>(std::min<int64_t>(options_.scheduler.prefill_block, total - pos));
    status = kv_blocks_.Reserve(&table, pos + n);
    if (!status.ok()) break;
    step_.token_ids.assign(prompt.begin() + pos, prompt.begin() + pos + n);
    step_.sequences.assign(1, SequenceSlice{pos, n, &table, pos + n == total});
    status = runner_->Forward(step_, &logits);
  }
  kv_blocks_.Release(&table);
  if (!status.ok()) return status;
  return logits;
}

// A request's state on the engine's side; its prompt is the scheduler's (Scheduler::Add).
struct Engine::Impl::Request {
  Request(const GenerationRequest& request, GenerationObserver* o, const Tokenizer* tokenizer)
      : stopping(request.stopping), observer(o), sampler(request.sampling, request.prompt), stop_matcher(request.stopping.stop) {
    if (tokenizer != nullptr) {
      const size_t context = std::min<size_t>(request.prompt.size(), 6);
      detokenizer = std::make_unique<IncrementalDetokenizer>(
          *tokenizer, std::vector<int32_t>(request.prompt.end() - context, request.prompt.end()),
          request.skip_special_tokens);
    }
    result.prompt_tokens = static_cast<int64_t>(request.prompt.size());
  }
  StoppingParams stopping;
  GenerationObserver* observer;
  Sampler sampler;
  std::unique_ptr<IncrementalDetokenizer> detokenizer;
  StopStringMatcher stop_matcher;
  GenerationResult result;
  std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point first_token;
  int64_t reported_progress = 0;
  bool cancel = false;
  bool prefill_only = false;
  bool awaiting_store = false;  // prefill_only: computed; ends when its chunks are written
};

Engine::Impl::~Impl() = default;

Status Engine::Impl::Submit(GenerationRequest request, GenerationObserver* observer) {
  BPT_RETURN_IF_ERROR(ValidateRequest(request));
  const int64_t id = next_request_id_++;
  auto state = std::make_unique<Request>(request, observer, tokenizer_.get());
  state->prefill_only = request.prefill_only;
  const int64_t pin_bytes = request.retain_s > 0 ? static_cast<int64_t>(request.prompt.size()) /
                                                       options_.kv_tiers.chunk_tokens * tier_store_->chunk_bytes()
                                                 : 0;
  BPT_RETURN_IF_ERROR(scheduler_.Add(id, std::move(request)));
  requests_.emplace(id, std::move(state));
  if (pin_bytes > 0) {
    pin_reservations_[id] = pin_bytes;
    pin_reserved_bytes_ += pin_bytes;
  }
  return OkStatus();
}

Engine::Impl::Request& Engine::Impl::RequestAt(int64_t id) {
  auto it = requests_.find(id);
  BPT_CHECK(it != requests_.end(), "request " + std::to_string(id) + " is scheduled but not in flight");
  return *it->second;
}

void Engine::Impl::FinishRequest(int64_t id, const StatusOr<GenerationResult>& result) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  std::unique_ptr<Request> r = std::move(it->second);
  requests_.erase(it);
  if (scheduler_.Contains(id)) scheduler_.Finish(id);
  // Its pins are made when its writes end (PollKvTiers); with none queued, there are none to come.
  if (tier_store_ == nullptr || !tier_store_->StorePending(id)) ReleasePinReservation(id);
  if (r->observer != nullptr) r->observer->OnFinished(result);
}

StatusOr<bool> Engine::Impl::ProcessToken(int64_t id, Request& r, const SampledToken& sampled) {
  GenerationResult& result = r.result;
  const int32_t token = sampled.token_id;
  r.sampler.Accept(token);
  result.token_ids.push_back(token);
  scheduler_.AppendToken(id, token);
  const auto& stop_ids = r.stopping.stop_token_ids;
  const bool eos = !r.stopping.ignore_eos && IsEos(token);
  const bool stop_token = std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end();
  const bool length = static_cast<int64_t>(result.token_ids.size()) >= r.stopping.max_new_tokens;

  TokenOutput out{token, "", sampled.logprob, sampled.top_logprobs};
  bool stopped_by_string = false;
  if (r.detokenizer != nullptr) {
    std::string delta;
    // Ids past the tokenizer's pieces (padded embedding rows) have no text.
    if (!eos && !stop_token && token < tokenizer_->vocab_size()) {
      BPT_ASSIGN_OR_RETURN(delta, r.detokenizer->Push(token));
    }
    if (eos || stop_token || length) {  // bytes held back for an unfinished character
      BPT_ASSIGN_OR_RETURN(std::string rest, r.detokenizer->Flush());
      delta += rest;
    }
    out.text = r.stop_matcher.Push(delta, &stopped_by_string);
  }
  const bool finished = eos || stop_token || stopped_by_string || length;
  if (finished && !stopped_by_string) out.text += r.stop_matcher.Flush();
  result.text += out.text;
  const auto now = std::chrono::steady_clock::now();
  if (result.token_ids.size() == 1) {
    r.first_token = now;
    result.timings.time_to_first_token_s = std::chrono::duration<double>(now - r.submitted).count();
  }
  if (r.observer != nullptr && !r.observer->OnToken(out)) r.cancel = true;
  if (finished) {
    result.finish_reason = eos ? FinishReason::kEos : (stop_token || stopped_by_string) ? FinishReason::kStop
                                                                                          : FinishReason::kLength;
    result.timings.decode_s = std::chrono::duration<double>(now - r.first_token).count();
  }
  return finished;
}

Status Engine::Impl::StartKvTiers(const std::string& kv_layout) {
  const KvTierOptions& options = options_.kv_tiers;
  if (options.chunk_tokens < 1 || options.chunk_tokens % options_.kv_cache.block_size != 0)
    return InvalidArgument("kv_tier_chunk_tokens (" + std::to_string(options.chunk_tokens) +
                           ") must be a positive multiple of the KV block size (" +
                           std::to_string(options_.kv_cache.block_size) + ")");
  Backend& backend = runner_->backend();
  // On the CPU the pool is host memory already: a host tier would be a second copy of it.
  const bool host_tier = options.host_gib > 0 && info_.device != "cpu";
  if (options.disk_dir.empty() && options.remote.empty() && !host_tier) return OkStatus();
  if (backend.KvBlockBytes() == 0)
    return FailedPrecondition("KV tiers (kv_host_gib, kv_disk_dir, kv_remote) are not available on the " +
                              info_.device + " device: its backend cannot copy KV blocks to host memory");
  if (options.host_gib < 0 || options.host_gib > (1LL << 30))
    return InvalidArgument("kv_host_gib must be in [0, 2^30]");
  KvTierStoreOptions store;
  store.chunk_tokens = options.chunk_tokens;
  store.block_size = options_.kv_cache.block_size;
  store.block_payload_bytes = backend.KvBlockBytes();
  BPT_ASSIGN_OR_RETURN(store.model_fingerprint, ModelFingerprint(options_.model_dir, kv_layout));
  if (!options.key_file.empty()) {
    BPT_ASSIGN_OR_RETURN(store.hmac_key, ReadSecretFile(options.key_file, "kv_tier_key_file"));
    if (store.hmac_key.size() < 16)
      return InvalidArgument("kv_tier_key_file holds " + std::to_string(store.hmac_key.size()) +
                             " bytes; an HMAC key needs at least 16");
  }
  BPT_ASSIGN_OR_RETURN(auto tiers, OpenKvTiers(options, KvChunkCodec(store.hmac_key).key_id()));
  if (host_tier) {
    HostKvTierOptions host;
    host.budget_bytes = static_cast<int64_t>(options.host_gib * (1LL << 30));
    host.slot_bytes = static_cast<int64_t>(KvChunkCodec("").EncodedBytes(
        static_cast<size_t>(options.chunk_tokens),
        static_cast<size_t>(options.chunk_tokens / options_.kv_cache.block_size * store.block_payload_bytes)));
    host.memory = {[&backend](size_t bytes) { return backend.AllocatePinnedHostMemory(bytes); },
                   [&backend](void* p) { backend.FreePinnedHostMemory(p); }};
    BPT_ASSIGN_OR_RETURN(auto tier, HostKvTier::Open(std::move(host)));
    tiers.insert(tiers.begin(), std::move(tier));  // the fastest, read first
  }
  // A chunk's blocks are held only while it is written, so writes may hold up to the whole pool
  // (a document as long as the pool is written whole); only blocks held twice, by two sequences
  // finishing with the same document at once, can reach the bound, and then a chunk is skipped.
  store.max_held_blocks = kv_blocks_.num_blocks();
  KvBlockCopier copier{
      [&backend](std::span<const int32_t> blocks, uint8_t* host) { return backend.ReadKvBlocks(blocks, host); },
      [&backend](std::span<const int32_t> blocks, const uint8_t* host) { return backend.WriteKvBlocks(blocks, host); },
      [&backend] { return backend.WaitForSteps(); }};
  tier_store_ = std::make_unique<KvTierStore>(std::move(store), std::move(tiers), kv_blocks_, std::move(copier));
  scheduler_.SetTierLink(tier_store_.get());
  for (const char* name : {"host", "disk", "remote"})
    if (tier_store_->tier(name) != nullptr) info_.kv_tiers += std::string(info_.kv_tiers.empty() ? "" : ",") + name;
  return OkStatus();
}

void Engine::Impl::PollKvTiers() {
  if (tier_store_ == nullptr) return;
  tier_store_->Poll(
      scheduler_,
      [&](int64_t id, const KvLoadOutcome& outcome) {
        const auto it = requests_.find(id);
        if (it == requests_.end()) return;
        GenerationResult& result = it->second->result;
        result.cached_from.host += outcome.host_tokens;
        result.cached_from.disk += outcome.disk_tokens;
        result.cached_from.remote += outcome.remote_tokens;
        result.timings.kv_load_s += outcome.seconds;
      },
      [&](int64_t id, int64_t stored_tokens) {
        ReleasePinReservation(id);  // its chunks are written, and pinned in the tiers themselves
        const auto it = requests_.find(id);
        if (it == requests_.end() || !it->second->awaiting_store) return;
        it->second->result.stored_prompt_tokens = std::max(it->second->result.stored_prompt_tokens, stored_tokens);
        if (!tier_store_->StorePending(id)) FinishRequest(id, it->second->result);
      });
}

void Engine::Impl::Step() {
  PollKvTiers();
  const auto now = std::chrono::steady_clock::now();
  // Cancelled requests end before the step, queued or running.
  std::vector<int64_t> cancelled;
  for (const auto& [id, r] : requests_)
    if (r->cancel || (r->observer != nullptr && r->observer->Cancelled())) cancelled.push_back(id);
  for (int64_t id : cancelled) {
    GenerationResult result = std::move(RequestAt(id).result);
    result.finish_reason = FinishReason::kCancelled;
    FinishRequest(id, result);
  }

  const StepPlan plan = scheduler_.Schedule(now);
  for (int64_t id : plan.expired)
    FinishRequest(id, Status(StatusCode::kDeadlineExceeded, "the request's deadline passed"));
  last_step_tokens_ = plan.num_tokens;
  last_step_sequences_ = static_cast<int64_t>(plan.chunks.size());
  if (plan.chunks.empty()) {
    // Nothing to compute until a tier answers: wait for it here rather than spin. Bounded, so
    // cancellations are still seen within a few milliseconds.
    if (tier_store_ != nullptr && tier_store_->busy()) tier_store_->WaitForResult(std::chrono::milliseconds(10));
    return;
  }

  step_.token_ids.clear();
  step_.sequences.clear();
  for (const ScheduledChunk& c : plan.chunks) {
    const auto& tokens = scheduler_.tokens(c.seq_id);
    step_.token_ids.insert(step_.token_ids.end(), tokens.begin() + c.start, tokens.begin() + c.start + c.num_tokens);
    step_.sequences.push_back({c.start, c.num_tokens, c.block_table, c.needs_logits});
    Request& r = RequestAt(c.seq_id);
    if (r.result.timings.queue_s == 0 && scheduler_.first_scheduled(c.seq_id))
      r.result.timings.queue_s = std::chrono::duration<double>(*scheduler_.first_scheduled(c.seq_id) - r.submitted).count();
  }
  // Sampling where the logits are: on the device when the backend can, else here.
  const bool device_sampling = runner_->backend().SamplesOnDevice();
  Status forward;
  if (device_sampling) {
    step_sampling_.clear();
    for (const ScheduledChunk& c : plan.chunks)
      if (c.needs_logits) step_sampling_.push_back(RequestAt(c.seq_id).sampler.NextRow());
    forward = runner_->ForwardAndSample(step_, step_sampling_, &step_sampled_);
  } else {
    forward = runner_->Forward(step_, &step_logits_);
  }
  if (!forward.ok()) {  // a backend failure fails this step's requests, not the engine
    for (const ScheduledChunk& c : plan.chunks) FinishRequest(c.seq_id, forward);
    return;
  }

  size_t row = 0;
  std::vector<std::pair<int64_t, StatusOr<GenerationResult>>> ended;
  std::vector<int64_t> ended_prefills;
  for (const ScheduledChunk& c : plan.chunks) {
    scheduler_.OnChunkComputed(c);
    Request& r = RequestAt(c.seq_id);
    const int64_t prompt_length = r.result.prompt_tokens;
    const int64_t progress = std::min(c.start + c.num_tokens, prompt_length);
    if (progress > r.reported_progress) {  // recomputation after a preemption reports nothing again
      r.reported_progress = progress;
      if (r.result.cached_prompt_tokens == 0) {
        r.result.cached_prompt_tokens = scheduler_.cached_prompt_tokens(c.seq_id);
        r.result.cached_from.pool = std::min(scheduler_.pool_cached_tokens(c.seq_id), r.result.cached_prompt_tokens);
      }
      if (progress == prompt_length)
        r.result.timings.prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.submitted).count() -
                                     r.result.timings.queue_s;
      if (r.observer != nullptr && !r.observer->OnPrefillProgress(progress, prompt_length)) r.cancel = true;
    }
    if (!c.needs_logits) continue;
    const size_t logits_row = row++;
    if (r.cancel) continue;
    if (r.prefill_only) {
      ended_prefills.push_back(c.seq_id);
      continue;
    }
    const SampledToken sampled =
        device_sampling ? step_sampled_[logits_row]
                        : r.sampler.Sample(step_logits_.data() + logits_row * config_.vocab_size, config_.vocab_size);
    StatusOr<bool> finished = ProcessToken(c.seq_id, r, sampled);
    if (!finished.ok()) {
      ended.emplace_back(c.seq_id, finished.status());
    } else if (*finished) {
      ended.emplace_back(c.seq_id, r.result);
    }
  }
  for (auto& [id, result] : ended) FinishRequest(id, result);
  for (int64_t id : ended_prefills) FinishPrefill(id);
}

void Engine::Impl::FinishPrefill(int64_t id) {
  Request& r = RequestAt(id);
  const int64_t prompt_length = r.result.prompt_tokens;
  scheduler_.Finish(id);  // publishes the blocks, and hands the full chunks to the tiers
  if (tier_store_ != nullptr && tier_store_->StorePending(id)) {
    r.awaiting_store = true;  // ends when the write is done (PollKvTiers)
    return;
  }
  // No write to wait for: with tiers, the prompt is shorter than a chunk; without, the pool
  // keeps its full blocks.
  const int64_t block = options_.kv_cache.block_size;
  r.result.stored_prompt_tokens = tier_store_ != nullptr ? 0 : prompt_length / block * block;
  FinishRequest(id, r.result);
}

StatusOr<std::string> Engine::Impl::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  if (tokenizer_ == nullptr) return FailedPrecondition(kTokenIdsMode);
  return tokenizer_->Decode(ids, skip_special_tokens);
}

StatusOr<std::string> Engine::Impl::RenderChat(std::span<const ChatMessage> messages, bool continue_final_message) const {
  if (tokenizer_ == nullptr) return FailedPrecondition(std::string("chat needs a tokenizer: ") + kTokenIdsMode);
  if (!chat_template_.ok()) return chat_template_.status();
  ChatRenderOptions render;
  render.add_generation_prompt = !continue_final_message;
  render.continue_final_message = continue_final_message;
  return chat_template_->Render(messages, render);
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

const ModelInfo& Engine::model_info() const { return impl_->info_; }
const EngineOptions& Engine::options() const { return impl_->options_; }
int64_t Engine::kv_capacity_tokens() const { return impl_->kv_capacity_tokens(); }
int64_t Engine::kv_free_tokens() const {
  return impl_->kv_blocks_.num_free_blocks() * impl_->kv_blocks_.block_size();
}
MemoryPlan Engine::memory_plan() const { return impl_->memory_plan(); }
int Engine::max_piece_bytes() const {
  return impl_->tokenizer_ == nullptr ? 0 : impl_->tokenizer_->max_piece_bytes();
}
StatusOr<std::vector<int32_t>> Engine::EncodePrompt(std::string_view text, int64_t max_tokens,
                                                   bool add_special_tokens) const {
  return impl_->EncodePrompt(text, max_tokens, add_special_tokens);
}
StatusOr<std::string> Engine::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return impl_->Decode(ids, skip_special_tokens);
}
StatusOr<std::string> Engine::RenderChat(std::span<const ChatMessage> messages, bool continue_final_message) const {
  return impl_->RenderChat(messages, continue_final_message);
}
Status Engine::ValidateRequest(const GenerationRequest& request) const { return impl_->ValidateRequest(request); }
Status Engine::Submit(GenerationRequest request, GenerationObserver* observer) {
  return impl_->Submit(std::move(request), observer);
}
void Engine::Step() { impl_->Step(); }
bool Engine::HasWork() const {
  return !impl_->requests_.empty() || (impl_->tier_store_ != nullptr && impl_->tier_store_->busy());
}
void Engine::ResetPrefixCache() { impl_->kv_blocks_.ResetPrefixCache(); }
KvTierStats Engine::TakeKvTierStats() {
  return impl_->tier_store_ == nullptr ? KvTierStats{} : impl_->tier_store_->TakeStats();
}
bool Engine::FlushKvTiers(std::chrono::steady_clock::time_point deadline) {
  if (impl_->tier_store_ == nullptr) return true;
  bool flushed = impl_->tier_store_->FlushStores(deadline);
  impl_->PollKvTiers();
  // Then what a tier that was down missed, once, while the pool still holds it.
  if (flushed && impl_->tier_store_->RetryIncompleteStores() > 0) {
    flushed = impl_->tier_store_->FlushStores(deadline);
    impl_->PollKvTiers();
  }
  return flushed;
}
size_t Engine::num_running() const { return impl_->scheduler_.num_running(); }
size_t Engine::num_waiting() const { return impl_->scheduler_.num_waiting(); }
int64_t Engine::num_preemptions() const { return impl_->scheduler_.num_preemptions(); }
int64_t Engine::last_step_tokens() const { return impl_->last_step_tokens_; }
int64_t Engine::last_step_sequences() const { return impl_->last_step_sequences_; }
StatusOr<std::vector<float>> Engine::PromptLogits(const std::vector<int32_t>& prompt) {
  return impl_->PromptLogits(prompt);
}

StatusOr<GenerationResult> Engine::Generate(const GenerationRequest& request, GenerationObserver* observer) {
  // Forwards to the caller's observer and keeps the result.
  struct Capture : GenerationObserver {
    GenerationObserver* inner;
    std::optional<StatusOr<GenerationResult>> result;
    bool Cancelled() const override { return inner != nullptr && inner->Cancelled(); }
    bool OnPrefillProgress(int64_t done, int64_t total) override {
      return inner == nullptr || inner->OnPrefillProgress(done, total);
    }
    bool OnToken(const TokenOutput& t) override { return inner == nullptr || inner->OnToken(t); }
    void OnFinished(const StatusOr<GenerationResult>& r) override {
      result = r;
      if (inner != nullptr) inner->OnFinished(r);
    }
  } capture;
  capture.inner = observer;
  BPT_RETURN_IF_ERROR(Submit(request, &capture));
  while (!capture.result) Step();
  return *std::move(capture.result);
}

}  // namespace bpt
