#include "engine/engine.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "engine/cpu_backend.h"
#include "engine/incremental_detokenizer.h"
#include "engine/model_weights.h"
#include "engine/sampler.h"
#include "engine/stop_string_matcher.h"

namespace bpt {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

}  // namespace

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos: return "eos";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "?";
}

Engine::Engine(ModelConfig config, std::unique_ptr<Tokenizer> tokenizer, std::unique_ptr<ModelRunner> runner,
               int64_t num_kv_blocks, const EngineOptions& options)
    : config_(std::move(config)),
      tokenizer_(std::move(tokenizer)),
      runner_(std::move(runner)),
      kv_blocks_(num_kv_blocks, options.kv_block_size),
      options_(options),
      max_model_len_(options.max_model_len > 0 ? options.max_model_len : config_.max_position_embeddings) {
  if (options.shuffle_kv_blocks) kv_blocks_.ShuffleFreeBlocks(0x5eed);
}

StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  if (options.prefill_block < 1) return InvalidArgument("prefill_block must be >= 1");
  if (options.kv_block_size < 1) return InvalidArgument("kv_block_size must be >= 1");
  if (options.attention_tiling.query_tile < 1 || options.attention_tiling.kv_tile < 1)
    return InvalidArgument("attention tiles must be >= 1");
  struct stat st {};
  if (stat(options.model_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return NotFound("model directory '" + options.model_dir + "' does not exist");
  BPT_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(options.model_dir));

  std::unique_ptr<Tokenizer> tokenizer;
  const std::string tokenizer_path = options.model_dir + "/tokenizer.model";
  if (FileExists(tokenizer_path)) {
    BPT_ASSIGN_OR_RETURN(tokenizer, Tokenizer::Load(tokenizer_path));
    if (tokenizer->vocab_size() > config.vocab_size)
      return InvalidArgument("tokenizer.model has " + std::to_string(tokenizer->vocab_size()) +
                             " pieces, more than the model's vocab_size " + std::to_string(config.vocab_size));
  }
  BPT_ASSIGN_OR_RETURN(HostModelWeights weights, LoadModelWeights(options.model_dir, config));

  CpuBackendOptions cpu_options;
  cpu_options.num_threads = options.num_threads;
  cpu_options.attention_tiling = options.attention_tiling;
  auto backend = std::make_unique<CpuBackend>(config, cpu_options);

  const int64_t max_len = options.max_model_len > 0 ? options.max_model_len : config.max_position_embeddings;
  int64_t capacity = options.kv_capacity_tokens;
  if (capacity <= 0) {
    // The context limit, unless half of the memory left after the weights holds less: the pool
    // is reserved lazily, so an unbounded default would fail late, in the middle of a prompt.
    const int64_t available = static_cast<int64_t>(sysconf(_SC_AVPHYS_PAGES)) * sysconf(_SC_PAGESIZE);
    const int64_t affordable = (available - weights.TotalBytes()) / 2 /
                               backend->KvBytesPerToken(config.num_layers, config.kv_dim());
    capacity = std::max<int64_t>(options.kv_block_size, std::min(max_len, affordable));
  }
  const int64_t num_blocks = (capacity + options.kv_block_size - 1) / options.kv_block_size;
  BPT_RETURN_IF_ERROR(backend->AllocateKvPool(config.num_layers, num_blocks, options.kv_block_size, config.kv_dim()));

  RunnerOptions runner_options;
  runner_options.max_step_tokens = options.prefill_block;
  runner_options.ffn_sub_block = std::min(options.ffn_sub_block, options.prefill_block);
  runner_options.max_logit_rows = 1;
  BPT_ASSIGN_OR_RETURN(auto runner, ModelRunner::Create(config, std::move(weights), std::move(backend), runner_options));
  return std::unique_ptr<Engine>(new Engine(std::move(config), std::move(tokenizer), std::move(runner), num_blocks, options));
}

MemoryPlan Engine::memory_plan() const {
  return {runner_->weight_bytes(), runner_->backend().WorkspaceBytes(),
          runner_->backend().KvBytesPerToken(config_.num_layers, config_.kv_dim()), kv_capacity_tokens()};
}

StatusOr<std::vector<int32_t>> Engine::EncodePrompt(const std::string& text) const {
  if (tokenizer_ == nullptr)
    return FailedPrecondition("this model is served in token-ids mode (no tokenizer.model): send token ids, not text");
  BPT_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer_->Encode(text));
  const int bos = !config_.bos_token_ids.empty() ? config_.bos_token_ids[0] : tokenizer_->bos_id();
  if (bos >= 0) ids.insert(ids.begin(), bos);
  return ids;
}

bool Engine::IsEos(int32_t id) const {
  if (!config_.eos_token_ids.empty())
    return std::find(config_.eos_token_ids.begin(), config_.eos_token_ids.end(), id) != config_.eos_token_ids.end();
  return tokenizer_ != nullptr && id == tokenizer_->eos_id();
}

Status Engine::ValidateRequest(const GenerationRequest& r) const {
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
    return FailedPrecondition("stop strings need a tokenizer; this model is served in token-ids mode");
  if (prompt_len + r.stopping.max_new_tokens > max_model_len_)
    return InvalidArgument("prompt (" + std::to_string(prompt_len) + " tokens) + max_new_tokens (" +
                           std::to_string(r.stopping.max_new_tokens) + ") exceeds the context limit of " +
                           std::to_string(max_model_len_) + " tokens");
  if (prompt_len + r.stopping.max_new_tokens > kv_capacity_tokens())
    return ResourceExhausted("prompt (" + std::to_string(prompt_len) + " tokens) + max_new_tokens (" +
                             std::to_string(r.stopping.max_new_tokens) + ") exceeds the KV cache capacity of " +
                             std::to_string(kv_capacity_tokens()) + " tokens");
  return OkStatus();
}

Status Engine::Step(const int32_t* tokens, int32_t count, int64_t start, const BlockTable* table,
                    bool needs_logits, std::vector<float>* logits) {
  step_.token_ids.assign(tokens, tokens + count);
  step_.sequences.assign(1, SequenceSlice{start, count, table, needs_logits});
  return runner_->Forward(step_, logits);
}

Status Engine::Prefill(const std::vector<int32_t>& tokens, int64_t start, BlockTable* table,
                       GenerationObserver* observer, bool* cancelled, int64_t* computed,
                       std::vector<float>* logits) {
  const int64_t total = static_cast<int64_t>(tokens.size());
  *cancelled = false;
  *computed = start;
  for (int64_t pos = start; pos < total; pos += options_.prefill_block) {
    const int32_t n = static_cast<int32_t>(std::min<int64_t>(options_.prefill_block, total - pos));
    BPT_RETURN_IF_ERROR(kv_blocks_.Reserve(table, pos + n));
    BPT_RETURN_IF_ERROR(Step(tokens.data() + pos, n, pos, table, pos + n == total, logits));
    *computed = pos + n;
    if (observer != nullptr && !observer->OnPrefillProgress(pos + n, total)) {
      *cancelled = true;
      return OkStatus();
    }
  }
  return OkStatus();
}

StatusOr<std::vector<float>> Engine::PromptLogits(const std::vector<int32_t>& prompt) {
  GenerationRequest probe;
  probe.prompt = prompt;
  probe.stopping.max_new_tokens = 1;
  BPT_RETURN_IF_ERROR(ValidateRequest(probe));
  BlockTable table;
  bool cancelled = false;
  int64_t computed = 0;
  std::vector<float> logits;
  Status status = Prefill(prompt, 0, &table, nullptr, &cancelled, &computed, &logits);
  kv_blocks_.Release(&table);
  if (!status.ok()) return status;
  return logits;
}

StatusOr<GenerationResult> Engine::Generate(const GenerationRequest& request, GenerationObserver* observer) {
  BPT_RETURN_IF_ERROR(ValidateRequest(request));
  const auto t0 = std::chrono::steady_clock::now();
  GenerationResult result;
  result.prompt_tokens = static_cast<int64_t>(request.prompt.size());

  // The sequence's tokens: the prompt, then each generated token. On every exit, the full
  // blocks whose KV was computed join the prefix cache, and the table's blocks are released.
  std::vector<int32_t> sequence = request.prompt;
  int64_t computed = 0;
  BlockTable table;
  struct ReleaseOnExit {
    KvBlockManager& blocks;
    BlockTable& table;
    const std::vector<int32_t>& sequence;
    const int64_t& computed;
    bool publish;
    ~ReleaseOnExit() {
      if (publish) blocks.CachePrefix(sequence, computed, table);
      blocks.Release(&table);
    }
  } release{kv_blocks_, table, sequence, computed, request.use_prefix_cache};

  if (request.use_prefix_cache) result.cached_prompt_tokens = kv_blocks_.MatchPrefix(request.prompt, &table);
  std::vector<float> logits;
  bool cancelled = false;
  BPT_RETURN_IF_ERROR(Prefill(request.prompt, result.cached_prompt_tokens, &table, observer, &cancelled,
                              &computed, &logits));
  result.timings.prefill_s = SecondsSince(t0);
  if (cancelled) {
    result.finish_reason = FinishReason::kCancelled;
    return result;
  }

  Sampler sampler(request.sampling, request.prompt);
  std::unique_ptr<IncrementalDetokenizer> detokenizer;
  if (tokenizer_ != nullptr) {
    const size_t context = std::min<size_t>(request.prompt.size(), 6);
    detokenizer = std::make_unique<IncrementalDetokenizer>(
        *tokenizer_, std::vector<int32_t>(request.prompt.end() - context, request.prompt.end()));
  }
  StopStringMatcher stop_matcher(request.stopping.stop);
  const auto& stop_ids = request.stopping.stop_token_ids;
  const auto decode_start = std::chrono::steady_clock::now();

  for (;;) {
    const SampledToken sampled = sampler.Sample(logits.data(), config_.vocab_size);
    const int32_t id = sampled.token_id;
    sampler.Accept(id);
    result.token_ids.push_back(id);
    sequence.push_back(id);
    const bool eos = !request.stopping.ignore_eos && IsEos(id);
    const bool stop_token = std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end();
    const bool length = static_cast<int64_t>(result.token_ids.size()) >= request.stopping.max_new_tokens;

    TokenOutput out{id, "", sampled.logprob, sampled.top_logprobs};
    bool stopped_by_string = false;
    if (detokenizer != nullptr) {
      std::string delta;
      // Ids past the tokenizer's pieces (padded embedding rows) have no text.
      if (!eos && !stop_token && id < tokenizer_->vocab_size()) {
        BPT_ASSIGN_OR_RETURN(delta, detokenizer->Push(id));
      }
      if (eos || stop_token || length) {  // bytes held back for an unfinished character
        BPT_ASSIGN_OR_RETURN(std::string rest, detokenizer->Flush());
        delta += rest;
      }
      out.text = stop_matcher.Push(delta, &stopped_by_string);
    }
    const bool finished = eos || stop_token || stopped_by_string || length;
    if (finished && !stopped_by_string) out.text += stop_matcher.Flush();
    result.text += out.text;
    if (result.token_ids.size() == 1) result.timings.time_to_first_token_s = SecondsSince(t0);
    if (observer != nullptr && !observer->OnToken(out)) {
      result.finish_reason = FinishReason::kCancelled;
      break;
    }
    if (finished) {
      result.finish_reason = (eos) ? FinishReason::kEos
                             : (stop_token || stopped_by_string) ? FinishReason::kStop
                                                                 : FinishReason::kLength;
      break;
    }
    const int64_t pos = result.prompt_tokens + static_cast<int64_t>(result.token_ids.size()) - 1;
    BPT_RETURN_IF_ERROR(kv_blocks_.Reserve(&table, pos + 1));
    BPT_RETURN_IF_ERROR(Step(&id, 1, pos, &table, true, &logits));
    computed = pos + 1;
  }
  result.timings.decode_s = SecondsSince(decode_start);
  return result;
}

}  // namespace bpt
