// Prometheus metrics, named bptserve_* with vLLM's meanings and buckets so dashboards and
// autoscalers written for vLLM map one to one. Every handle is created here, once; labels
// take a fixed set of values.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <grpcpp/support/status.h>

#include "engine.h"
#include "status.h"
#include "metrics_endpoint.h"

namespace bpt::server {

inline constexpr std::string_view kHttpRouteLabels[] = {"/v1/completions", "/v1/chat/completions", "/v1/models",
                                                        "/health", "/ready", "other"};

class Metrics {
 public:
  // kv_tiers: the tiers the server was started with; the tier-labelled series exist for those
  // (host with host_gib off the CPU device, disk with a disk_dir, remote with a remote), the
  // dropped and skipped counters once any does.
  explicit Metrics(int64_t max_model_len, const KvTierOptions& kv_tiers = {}, const std::string& device = "cpu");
  ~Metrics();

  // Serves /metrics on host:port (0: any free port); port() then tells which.
  Status StartEndpoint(const std::string& host, int port);
  int port() const { return endpoint_ ? endpoint_->port() : -1; }

  // A generation that ended OK (from gRPC or HTTP): the success counter of its finish reason,
  // token counters and the request histograms. e2e_s is measured by the API that served it.
  void RecordFinished(const GenerationResult& result, bool prefix_cache_queried, double e2e_s);
  // A Prefill that ended OK: the prompt counters and the queue and prefill histograms (it
  // generates nothing and has no finish reason, so neither the success counter nor the
  // generation series count it).
  void RecordPrefill(const GenerationResult& result, double e2e_s);
  void RecordError(grpc::StatusCode code);
  // What the KV tiers did since the last look (Engine::TakeKvTierStats), into the
  // bptserve_kv_tier_* series; a tier that has none (not configured) is left out.
  void RecordKvTiers(const KvTierStats& stats);
  // bptserve_http_requests_total{route,code}: route is one of kHttpRouteLabels ("other" for any
  // path the API does not serve), code the HTTP status sent (499: the client left first).
  void CountHttpRequest(std::string_view route, int status);
  void ObserveInterTokenLatency(double seconds) { inter_token_latency_->Observe(seconds); }
  void SetRunning(int n) { running_->Set(n); }
  void SetWaiting(int n) { waiting_->Set(n); }
  void SetKvCache(int64_t used_tokens, int64_t capacity_tokens);
  // bptserve_cache_config_info{block_size,cache_dtype,num_gpu_blocks} 1, as vLLM's
  // vllm:cache_config_info: the endpoint picker of the Gateway API Inference Extension hashes
  // prompt prefixes in blocks of block_size and sizes its index of each pod by num_gpu_blocks;
  // cache_dtype (fp32 or bf16, --kv-dtype resolved) says what a block holds. Set once, when the
  // model has loaded (the values are then fixed, so the labels stay bounded).
  void SetCacheConfig(int64_t block_size, int64_t num_blocks, const std::string& cache_dtype);
  void ObserveIterationTokens(int64_t tokens) { iteration_tokens_->Observe(static_cast<double>(tokens)); }
  void ObserveIterationSequences(int64_t n) { iteration_sequences_->Observe(static_cast<double>(n)); }
  void AddPreemptions(int64_t n) {
    if (n > 0) preemptions_->Increment(static_cast<double>(n));
  }

 private:
  // The series of one tier.
  struct KvTierSeries {
    prometheus::Counter* hit_tokens;
    prometheus::Counter* miss_tokens;
    prometheus::Counter* load_errors;
    prometheus::Counter* store_errors;
    prometheus::Gauge* bytes_used;
    prometheus::Gauge* budget_bytes;
    prometheus::Histogram* load_seconds;
    prometheus::Histogram* store_seconds;
  };
  void UpdateProcessMemory();
  // The prompt's share of a finished request (generation or prefill).
  void RecordPrompt(const GenerationResult& result, bool prefix_cache_queried);
  void AddKvTierFamilies(const KvTierOptions& kv_tiers, const std::string& device);

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<MetricsEndpoint> endpoint_;

  prometheus::Histogram* time_to_first_token_;
  prometheus::Histogram* inter_token_latency_;
  prometheus::Histogram* e2e_latency_;
  prometheus::Histogram* queue_time_;
  prometheus::Histogram* prefill_time_;
  prometheus::Histogram* decode_time_;
  prometheus::Histogram* prompt_tokens_hist_;
  prometheus::Histogram* generation_tokens_hist_;
  prometheus::Histogram* iteration_tokens_;
  prometheus::Histogram* iteration_sequences_;
  prometheus::Counter* preemptions_;
  prometheus::Counter* prompt_tokens_total_;
  prometheus::Counter* generation_tokens_total_;
  prometheus::Counter* prefix_cache_queries_;
  prometheus::Counter* prefix_cache_hits_;
  std::map<FinishReason, prometheus::Counter*> success_;
  std::map<grpc::StatusCode, prometheus::Counter*> errors_;
  // [route][status] for the statuses the HTTP API sends; "other" for the rest.
  std::map<std::string_view, std::map<int, prometheus::Counter*>> http_requests_;
  prometheus::Gauge* running_;
  prometheus::Gauge* waiting_;
  prometheus::Gauge* kv_usage_;
  prometheus::Gauge* kv_capacity_;
  prometheus::Family<prometheus::Gauge>* cache_config_;
  prometheus::Gauge* prefill_tokens_per_second_;
  prometheus::Gauge* resident_memory_;
  std::map<std::string, KvTierSeries, std::less<>> kv_tiers_;  // by tier label, the configured ones
  std::vector<prometheus::Counter*> kv_dropped_;  // by kKvChunkDropReasons; empty without tiers
  prometheus::Counter* kv_store_skipped_ = nullptr;

  std::atomic<bool> stop_{false};
  std::thread memory_updater_;
};

}  // namespace bpt::server
