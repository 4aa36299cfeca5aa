// bptserve-loadgen: concurrent clients against a running server; one JSON line of results.
//   bptserve-loadgen --server localhost:50051 --clients 32 --requests 20
//   bptserve-loadgen --protocol http --server localhost:8000 --clients 32 --requests 20
// Every request must end with exactly one terminal status (gRPC: an OK stream with exactly one
// Finished message; HTTP: a 200 stream with exactly one finish_reason and one [DONE]); the exit
// code is non-zero otherwise. Latencies are measured at the client, the same way for both.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "grpc_stream_client.h"
#include "http_stream_client.h"

namespace {

using bptserve::loadgen::Clock;
using bptserve::loadgen::StreamResult;

// Enough failures on stderr to say what went wrong, not one line per request of a broken run.
constexpr int kReportedProblems = 5;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

// The results of every client, gathered under one lock.
class LoadReport {
 public:
  void Add(const StreamResult& result) {
    std::lock_guard<std::mutex> lock(mu_);
    if (result.status) ++statuses_[*result.status];
    if (result.protocol_violation) ++protocol_violations_;
    if (!result.problem.empty() && reported_problems_ < kReportedProblems) {
      ++reported_problems_;
      std::cerr << "request " << result.status.value_or("without a status") << ": " << result.problem << "\n";
    }
    if (!result.succeeded) return;
    if (result.ttft_s) ttft_.push_back(*result.ttft_s);
    itl_.insert(itl_.end(), result.inter_token_s.begin(), result.inter_token_s.end());
    e2e_.push_back(result.e2e_s);
    tokens_ += result.tokens;
  }

  int terminal_statuses() const {
    int terminal = 0;
    for (const auto& [status, count] : statuses_) terminal += count;
    return terminal;
  }
  int protocol_violations() const { return protocol_violations_; }

  nlohmann::json ToJson(double wall_s) const {
    return {{"statuses", statuses_},
            {"protocol_violations", protocol_violations_},
            {"generated_tokens_per_s", static_cast<double>(tokens_) / wall_s},
            {"ttft_p50_s", Percentile(ttft_, 50)},
            {"ttft_p90_s", Percentile(ttft_, 90)},
            {"ttft_p99_s", Percentile(ttft_, 99)},
            {"itl_p50_s", Percentile(itl_, 50)},
            {"itl_p90_s", Percentile(itl_, 90)},
            {"itl_p99_s", Percentile(itl_, 99)},
            {"e2e_p50_s", Percentile(e2e_, 50)},
            {"wall_s", wall_s}};
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> statuses_;
  int protocol_violations_ = 0;
  int reported_problems_ = 0;
  std::vector<double> ttft_, itl_, e2e_;
  int64_t tokens_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bptserve load generator"};
  std::string protocol = "grpc", server = "localhost:50051", model, api_key;
  std::string prompt = "Long documents are the reason bptserve exists. ";
  int clients = 32, requests = 20, max_new_tokens = 32, prompt_repeats = 8;
  app.add_option("--protocol", protocol, "grpc: the Generate stream; http: POST /v1/completions, streamed")
      ->check(CLI::IsMember({"grpc", "http"}));
  app.add_option("--server", server, "host:port of the server's gRPC or HTTP port");
  app.add_option("--model", model, "HTTP: the model to ask for (default: the first GET /v1/models lists)");
  app.add_option("--api-key", api_key, "Sent as 'authorization: Bearer KEY'");
  app.add_option("--clients", clients, "Concurrent clients")->check(CLI::PositiveNumber);
  app.add_option("--requests", requests, "Requests per client")->check(CLI::PositiveNumber);
  app.add_option("--max-new-tokens", max_new_tokens)->check(CLI::PositiveNumber);
  app.add_option("--prompt", prompt, "Prompt text (repeated --prompt-repeats times)");
  app.add_option("--prompt-repeats", prompt_repeats);
  CLI11_PARSE(app, argc, argv);
  std::string text;
  for (int i = 0; i < prompt_repeats; ++i) text += prompt;

  std::shared_ptr<grpc::Channel> channel;
  if (protocol == "grpc") {
    channel = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  } else if (model.empty()) {
    try {
      model = bptserve::loadgen::FirstServedModelId(server, api_key);
    } catch (const std::runtime_error& e) {
      std::cerr << e.what() << "\n";
      return 1;
    }
  }
  auto new_client = [&]() -> std::unique_ptr<bptserve::loadgen::StreamClient> {
    if (channel) return std::make_unique<bptserve::loadgen::GrpcStreamClient>(channel, api_key);
    return std::make_unique<bptserve::loadgen::HttpStreamClient>(server, api_key, model);
  };

  LoadReport report;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c, client = new_client()] {
      for (int r = 0; r < requests; ++r) {
        report.Add(client->Stream({.prompt = text,
                                   .max_new_tokens = max_new_tokens,
                                   .seed = static_cast<uint64_t>(c) * 1000 + static_cast<uint64_t>(r)}));
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall_s = std::chrono::duration<double>(Clock::now() - start).count();

  nlohmann::json out = {{"protocol", protocol},
                        {"clients", clients},
                        {"requests", clients * requests},
                        {"terminal_statuses", report.terminal_statuses()}};
  out.update(report.ToJson(wall_s));
  std::cout << out.dump() << std::endl;
  return report.terminal_statuses() == clients * requests && report.protocol_violations() == 0 ? 0 : 1;
}
