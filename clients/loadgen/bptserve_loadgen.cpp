// bptserve-loadgen: concurrent clients against a running server; one JSON line of results.
//   bptserve-loadgen --server localhost:50051 --clients 32 --requests 20
// Every request must end with exactly one terminal status (and an OK stream with exactly one
// Finished message); the exit code is non-zero otherwise. Latencies are measured at the client.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "bptserve/v1/bptserve.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bptserve load generator"};
  std::string server = "localhost:50051", prompt = "Long documents are the reason bptserve exists. ";
  int clients = 32, requests = 20, max_new_tokens = 32, prompt_repeats = 8;
  app.add_option("--server", server);
  app.add_option("--clients", clients, "Concurrent clients")->check(CLI::PositiveNumber);
  app.add_option("--requests", requests, "Requests per client")->check(CLI::PositiveNumber);
  app.add_option("--max-new-tokens", max_new_tokens);
  app.add_option("--prompt", prompt, "Prompt text (repeated --prompt-repeats times)");
  app.add_option("--prompt-repeats", prompt_repeats);
  CLI11_PARSE(app, argc, argv);
  std::string text;
  for (int i = 0; i < prompt_repeats; ++i) text += prompt;

  auto channel = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  std::mutex mu;
  std::vector<double> ttft, itl, e2e;
  std::map<std::string, int> statuses;
  int64_t tokens = 0;
  int protocol_violations = 0;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto stub = bptserve::v1::Inference::NewStub(channel);
      for (int r = 0; r < requests; ++r) {
        bptserve::v1::GenerateRequest req;
        req.set_text(text);
        req.mutable_sampling()->set_seed(static_cast<uint64_t>(c) * 1000 + r);
        req.mutable_stopping()->set_max_new_tokens(max_new_tokens);
        req.mutable_stopping()->set_ignore_eos(true);
        grpc::ClientContext context;
        const auto sent = Clock::now();
        auto reader = stub->Generate(&context, req);
        bptserve::v1::GenerateResponse res;
        std::vector<double> gaps;
        double first = -1;
        Clock::time_point last;
        int finished = 0;
        int64_t n = 0;
        while (reader->Read(&res)) {
          const auto now = Clock::now();
          if (res.has_tokens()) {
            // Tokens that were coalesced into one message share its arrival: each gets an equal share.
            const int k = res.tokens().token_ids_size();
            if (first < 0) {
              first = std::chrono::duration<double>(now - sent).count();
            } else {
              for (int i = 0; i < k; ++i) gaps.push_back(std::chrono::duration<double>(now - last).count() / k);
            }
            last = now;
            n += k;
          }
          if (res.has_finished()) ++finished;
        }
        const grpc::Status status = reader->Finish();
        const double total = std::chrono::duration<double>(Clock::now() - sent).count();
        std::lock_guard<std::mutex> lock(mu);
        ++statuses[status.ok() ? "OK" : std::to_string(status.error_code())];
        if (status.ok() != (finished == 1) || finished > 1) ++protocol_violations;
        if (status.ok()) {
          ttft.push_back(first);
          itl.insert(itl.end(), gaps.begin(), gaps.end());
          e2e.push_back(total);
          tokens += n;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  int terminal = 0;
  for (const auto& [code, count] : statuses) terminal += count;
  nlohmann::json out = {{"clients", clients},
                        {"requests", clients * requests},
                        {"terminal_statuses", terminal},
                        {"statuses", statuses},
                        {"protocol_violations", protocol_violations},
                        {"generated_tokens_per_s", tokens / wall},
                        {"ttft_p50_s", Percentile(ttft, 50)},
                        {"ttft_p99_s", Percentile(ttft, 99)},
                        {"itl_p50_s", Percentile(itl, 50)},
                        {"itl_p99_s", Percentile(itl, 99)},
                        {"e2e_p50_s", Percentile(e2e, 50)},
                        {"wall_s", wall}};
  std::cout << out.dump() << std::endl;
  return terminal == clients * requests && protocol_violations == 0 ? 0 : 1;
}
