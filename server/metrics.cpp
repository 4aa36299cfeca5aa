#include "metrics.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "check.h"

namespace bpt::server {
namespace {

using prometheus::Histogram;

// vLLM's buckets; TTFT reaches 2560 s for million-token prompts.
const Histogram::BucketBoundaries kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                                  1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
const Histogram::BucketBoundaries kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                                                 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
const Histogram::BucketBoundaries kRequestBuckets = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
                                                     30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

// One chunk (a few MB) read or written: from a page-cache hit to a slow disk or a distant Redis.
const Histogram::BucketBoundaries kKvChunkBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

// 1, 2, 5, 10, 20, 50, ... up to the model's context limit (vLLM's build_1_2_5_buckets).
Histogram::BucketBoundaries TokenBuckets(int64_t max_value) {
  Histogram::BucketBoundaries b;
  for (double e = 1;; e *= 10)
    for (double m : {1.0, 2.0, 5.0}) {
      if (m * e > static_cast<double>(max_value)) return b;
      b.push_back(m * e);
    }
}

prometheus::Histogram* MakeHistogram(prometheus::Registry& r, const std::string& name, const std::string& help,
                                     const Histogram::BucketBoundaries& buckets) {
  return &prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({}, buckets);
}
prometheus::Counter* MakeCounter(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}
prometheus::Gauge* MakeGauge(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

const char* CodeLabel(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return nullptr;
  }
}

// The statuses the HTTP API sends; any other is counted as "other".
constexpr int kHttpStatusLabels[] = {200, 400, 401, 404, 405, 408, 413, 429, 431, 499, 500, 503, 504};

}  // namespace

Metrics::Metrics(int64_t max_model_len, const KvTierOptions& kv_tiers, const std::string& device) : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  time_to_first_token_ = MakeHistogram(r, "bptserve_time_to_first_token_seconds", "Time to first token in seconds.", kTtftBuckets);
  inter_token_latency_ = MakeHistogram(r, "bptserve_inter_token_latency_seconds", "Time between consecutive output tokens in seconds.", kItlBuckets);
  e2e_latency_ = MakeHistogram(r, "bptserve_e2e_request_latency_seconds", "End-to-end request latency in seconds.", kRequestBuckets);
  queue_time_ = MakeHistogram(r, "bptserve_request_queue_time_seconds", "Time requests spent waiting in seconds.", kRequestBuckets);
  prefill_time_ = MakeHistogram(r, "bptserve_request_prefill_time_seconds", "Time requests spent in prefill in seconds.", kRequestBuckets);
  decode_time_ = MakeHistogram(r, "bptserve_request_decode_time_seconds", "Time requests spent in decode in seconds.", kRequestBuckets);
  prompt_tokens_hist_ = MakeHistogram(r, "bptserve_request_prompt_tokens", "Prompt tokens per request.", TokenBuckets(max_model_len));
  generation_tokens_hist_ = MakeHistogram(r, "bptserve_request_generation_tokens", "Generated tokens per request.", TokenBuckets(max_model_len));
  iteration_tokens_ = MakeHistogram(r, "bptserve_iteration_tokens", "Tokens per engine step (decodes and prefill chunks).",
                                    {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384});
  // The batch size: a step counted above le="1" ran more than one request.
  iteration_sequences_ = MakeHistogram(r, "bptserve_iteration_sequences", "Requests in one engine step (decodes and prefill chunks).",
                                       {1, 2, 4, 8, 16, 32, 64, 128, 256});
  preemptions_ = MakeCounter(r, "bptserve_num_preemptions_total", "Sequences preempted (KV freed, recomputed later).");
  prompt_tokens_total_ = MakeCounter(r, "bptserve_prompt_tokens_total", "Prompt tokens processed.");
  generation_tokens_total_ = MakeCounter(r, "bptserve_generation_tokens_total", "Tokens generated.");
  // In tokens, as vLLM v1 counts them: the hit rate is hits / queries.
  prefix_cache_queries_ = MakeCounter(r, "bptserve_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.");
  prefix_cache_hits_ = MakeCounter(r, "bptserve_prefix_cache_hits_total", "Prompt tokens found in the prefix cache (the KV pool).");
  auto& success = prometheus::BuildCounter()
                      .Name("bptserve_request_success_total")
                      .Help("Requests that finished with OK, by finish reason (cancelled ones count as errors).")
                      .Register(r);
  for (FinishReason f : {FinishReason::kEos, FinishReason::kStop, FinishReason::kLength})
    success_[f] = &success.Add({{"finished_reason", FinishReasonName(f)}});
  auto& errors = prometheus::BuildCounter()
                     .Name("bptserve_request_errors_total")
                     .Help("Requests that ended with an error status, by gRPC code.")
                     .Register(r);
  for (int c = 1; c <= 16; ++c)
    if (const char* label = CodeLabel(static_cast<grpc::StatusCode>(c)))
      errors_[static_cast<grpc::StatusCode>(c)] = &errors.Add({{"code", label}});
  auto& http = prometheus::BuildCounter()
                   .Name("bptserve_http_requests_total")
                   .Help("HTTP API requests by route and the status code sent (499: the client left first).")
                   .Register(r);
  for (std::string_view route : kHttpRouteLabels) {
    for (int status : kHttpStatusLabels)
      http_requests_[route][status] = &http.Add({{"route", std::string(route)}, {"code", std::to_string(status)}});
    http_requests_[route][0] = &http.Add({{"route", std::string(route)}, {"code", "other"}});
  }
  running_ = MakeGauge(r, "bptserve_num_requests_running", "Requests the engine is working on.");
  waiting_ = MakeGauge(r, "bptserve_num_requests_waiting", "Requests waiting for the engine.");
  kv_usage_ = MakeGauge(r, "bptserve_kv_cache_usage_perc", "Fraction of the KV cache in use (1 means full).");
  kv_capacity_ = MakeGauge(r, "bptserve_kv_cache_capacity_tokens", "KV cache capacity in tokens.");
  cache_config_ = &prometheus::BuildGauge()
                       .Name("bptserve_cache_config_info")
                       .Help("KV cache layout in its labels (tokens per block, blocks in the pool, element type: "
                             "fp32 or bf16); the value is 1.")
                       .Register(r);
  prefill_tokens_per_second_ = MakeGauge(r, "bptserve_prefill_tokens_per_second", "Prefill throughput of the last prompt.");
  resident_memory_ = MakeGauge(r, "bptserve_process_resident_memory_bytes", "Resident memory of the server process.");
  AddKvTierFamilies(kv_tiers, device);
  UpdateProcessMemory();
  memory_updater_ = std::thread([this] {
    while (!stop_.load()) {
      for (int i = 0; i < 10 && !stop_.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      UpdateProcessMemory();
    }
  });
}

void Metrics::AddKvTierFamilies(const KvTierOptions& options, const std::string& device) {
  std::vector<std::string> tiers;
  // The engine skips the host tier on the CPU device (its pool is host memory already); under
  // auto the device is not known yet, and a GPU may take it.
  if (options.host_gib > 0 && device != "cpu") tiers.emplace_back("host");
  if (!options.disk_dir.empty()) tiers.emplace_back("disk");
  if (!options.remote.empty()) tiers.emplace_back("remote");
  if (tiers.empty()) return;
  auto& r = *registry_;
  auto counter = [&r](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(r);
  };
  auto gauge = [&r](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(r);
  };
  auto histogram = [&r](const char* name, const char* help) {
    return &prometheus::BuildHistogram().Name(name).Help(help).Register(r);
  };
  auto& hits = *counter("bptserve_kv_tier_hit_tokens_total", "Prompt tokens whose KV a tier below the pool supplied.");
  auto& misses = *counter("bptserve_kv_tier_miss_tokens_total",
                          "Prompt tokens looked up in a tier below the pool and not found there.");
  auto& load_errors = *counter("bptserve_kv_tier_load_errors_total",
                               "Reads a tier failed (down, timeout, I/O error); the request recomputes.");
  auto& store_errors = *counter("bptserve_kv_tier_store_errors_total",
                                "Writes a tier failed (disk full, budget, Redis down or slow).");
  auto& bytes_used = *gauge("bptserve_kv_tier_bytes_used", "Bytes a tier holds (-1: it does not say, as Redis).");
  auto& budget = *gauge("bptserve_kv_tier_budget_bytes", "A tier's byte budget (-1: it does not say, as Redis).");
  auto& load_seconds = *histogram("bptserve_kv_tier_load_seconds", "Time to read one KV chunk from a tier, in seconds.");
  auto& store_seconds = *histogram("bptserve_kv_tier_store_seconds", "Time to write one KV chunk to a tier, in seconds.");
  for (const std::string& tier : tiers) {
    const prometheus::Labels labels{{"tier", tier}};
    kv_tiers_[tier] = {&hits.Add(labels),         &misses.Add(labels),       &load_errors.Add(labels),
                       &store_errors.Add(labels), &bytes_used.Add(labels),   &budget.Add(labels),
                       &load_seconds.Add(labels, kKvChunkBuckets), &store_seconds.Add(labels, kKvChunkBuckets)};
  }
  auto& dropped = *counter("bptserve_kv_tier_dropped_chunks_total",
                           "KV chunks dropped on load and recomputed, by reason (truncated, corrupt, foreign: "
                           "another model's or layout's, hmac: a wrong signature).");
  for (const char* reason : kKvChunkDropReasons) kv_dropped_.push_back(&dropped.Add({{"reason", reason}}));
  kv_store_skipped_ = &counter("bptserve_kv_tier_store_skipped_total",
                               "KV chunks not written because the blocks held for writes reached their cap.")
                           ->Add({});
}

Metrics::~Metrics() {
  stop_ = true;
  memory_updater_.join();
}

Status Metrics::StartEndpoint(const std::string& host, int port) {
  BPT_ASSIGN_OR_RETURN(endpoint_, MetricsEndpoint::Start(host, port, registry_));
  return OkStatus();
}

void Metrics::RecordPrompt(const GenerationResult& g, bool prefix_cache_queried) {
  prompt_tokens_total_->Increment(static_cast<double>(g.prompt_tokens));
  if (prefix_cache_queried) {
    prefix_cache_queries_->Increment(static_cast<double>(g.prompt_tokens));
    // The pool's own hits, as vLLM's: tokens from the tiers below count in bptserve_kv_tier_hit_tokens_total.
    prefix_cache_hits_->Increment(static_cast<double>(g.cached_from.pool));
  }
  prompt_tokens_hist_->Observe(static_cast<double>(g.prompt_tokens));
  queue_time_->Observe(g.timings.queue_s);
  prefill_time_->Observe(g.timings.prefill_s);
  if (g.timings.prefill_s > 0)
    prefill_tokens_per_second_->Set(static_cast<double>(g.prompt_tokens - g.cached_prompt_tokens) / g.timings.prefill_s);
}

void Metrics::RecordFinished(const GenerationResult& g, bool prefix_cache_queried, double e2e_s) {
  const auto counter = success_.find(g.finish_reason);
  BPT_CHECK(counter != success_.end(),
            std::string("a request finished with OK and reason ") + FinishReasonName(g.finish_reason) +
                ", which has no success counter");
  counter->second->Increment();
  RecordPrompt(g, prefix_cache_queried);
  const auto completion_tokens = static_cast<double>(g.token_ids.size());
  generation_tokens_total_->Increment(completion_tokens);
  generation_tokens_hist_->Observe(completion_tokens);
  decode_time_->Observe(g.timings.decode_s);
  e2e_latency_->Observe(e2e_s);
  if (completion_tokens > 0) time_to_first_token_->Observe(g.timings.time_to_first_token_s);
}

void Metrics::RecordPrefill(const GenerationResult& g, double e2e_s) {
  RecordPrompt(g, /*prefix_cache_queried=*/true);
  e2e_latency_->Observe(e2e_s);
}

void Metrics::RecordKvTiers(const KvTierStats& stats) {
  for (const KvTierStats::Tier& tier : stats.tiers) {
    const auto it = kv_tiers_.find(tier.name);
    if (it == kv_tiers_.end()) continue;
    const KvTierSeries& m = it->second;
    if (tier.hit_tokens > 0) m.hit_tokens->Increment(static_cast<double>(tier.hit_tokens));
    if (tier.miss_tokens > 0) m.miss_tokens->Increment(static_cast<double>(tier.miss_tokens));
    if (tier.load_errors > 0) m.load_errors->Increment(static_cast<double>(tier.load_errors));
    if (tier.store_errors > 0) m.store_errors->Increment(static_cast<double>(tier.store_errors));
    m.bytes_used->Set(static_cast<double>(tier.bytes_used));
    m.budget_bytes->Set(static_cast<double>(tier.budget_bytes));
    for (double s : tier.load_seconds) m.load_seconds->Observe(s);
    for (double s : tier.store_seconds) m.store_seconds->Observe(s);
  }
  for (size_t i = 0; i < kv_dropped_.size(); ++i)
    if (stats.dropped[i] > 0) kv_dropped_[i]->Increment(static_cast<double>(stats.dropped[i]));
  if (kv_store_skipped_ != nullptr && stats.store_skipped > 0)
    kv_store_skipped_->Increment(static_cast<double>(stats.store_skipped));
}

void Metrics::RecordError(grpc::StatusCode code) {
  auto it = errors_.find(code);
  if (it != errors_.end()) it->second->Increment();
}

void Metrics::CountHttpRequest(std::string_view route, int status) {
  auto by_status = http_requests_.find(route);
  if (by_status == http_requests_.end()) by_status = http_requests_.find("other");
  auto counter = by_status->second.find(status);
  if (counter == by_status->second.end()) counter = by_status->second.find(0);
  counter->second->Increment();
}

void Metrics::SetKvCache(int64_t used_tokens, int64_t capacity_tokens) {
  kv_capacity_->Set(static_cast<double>(capacity_tokens));
  kv_usage_->Set(capacity_tokens > 0 ? static_cast<double>(used_tokens) / capacity_tokens : 0.0);
}

void Metrics::SetCacheConfig(int64_t block_size, int64_t num_blocks, const std::string& cache_dtype) {
  cache_config_->Add({{"block_size", std::to_string(block_size)}, {"num_gpu_blocks", std::to_string(num_blocks)},
                      {"cache_dtype", cache_dtype}})
      .Set(1);
}

void Metrics::UpdateProcessMemory() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  if (statm >> size >> resident) resident_memory_->Set(static_cast<double>(resident) * sysconf(_SC_PAGESIZE));
}

}  // namespace bpt::server
