// bptserve-cli: the command-line client.
//   bptserve-cli generate --prompt-file book.txt --max-new-tokens 64
//   bptserve-cli generate --token-ids 1,2,3 --output json
//   bptserve-cli chat [--message "..." --system "..." --document FILE]
//   bptserve-cli prefill --prompt-file book.txt [--retain-s 3600]
//   bptserve-cli tokenize --text "hello" | info | health
// On an error it prints the server's status code and message and exits with that code.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bptserve/v1/bptserve.grpc.pb.h"
#include "chat_command.h"
#include "cli_connection.h"
#include "generation_flags.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "reply_stream.h"

namespace {

const char* FinishName(bptserve::v1::FinishReason r) {
  switch (r) {
    case bptserve::v1::FINISH_REASON_EOS: return "eos";
    case bptserve::v1::FINISH_REASON_STOP: return "stop";
    case bptserve::v1::FINISH_REASON_LENGTH: return "length";
    case bptserve::v1::FINISH_REASON_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

// The prompt flags of generate and prefill: --prompt, --prompt-file, --token-ids, else stdin.
class PromptFlags {
 public:
  explicit PromptFlags(CLI::App* command) : command_(command) {
    command->add_option("--prompt", prompt_);
    command->add_option("--prompt-file", prompt_file_);
    command->add_option("--token-ids", token_ids_, "Prompt as token ids")->delimiter(',');
  }
  // Sets the request's prompt (GenerateRequest and PrefillRequest share its fields); false, said
  // on stderr, when the file cannot be read.
  template <typename Request>
  bool ApplyTo(Request* request) const {
    if (!token_ids_.empty()) {
      request->mutable_token_ids()->mutable_ids()->Assign(token_ids_.begin(), token_ids_.end());
    } else if (!prompt_file_.empty()) {
      std::ifstream in(prompt_file_, std::ios::binary);
      if (!in) {
        std::cerr << "error: cannot read '" << prompt_file_ << "'\n";
        return false;
      }
      request->set_text(bpt::cli::ReadAll(in));
    } else if (command_->count("--prompt") > 0) {
      request->set_text(prompt_);
    } else {
      request->set_text(bpt::cli::ReadAll(std::cin));
    }
    return true;
  }

 private:
  CLI::App* const command_;
  std::string prompt_, prompt_file_;
  std::vector<int32_t> token_ids_;
};

nlohmann::json CachedFromJson(const bptserve::v1::CachedTokenSources& c) {
  return {{"pool", c.pool()}, {"host", c.host()}, {"disk", c.disk()}, {"remote", c.remote()}};
}

nlohmann::json TimingsJson(const bptserve::v1::Timings& t) {
  return {{"queue_s", t.queue_s()}, {"prefill_s", t.prefill_s()}, {"time_to_first_token_s", t.time_to_first_token_s()},
          {"decode_s", t.decode_s()}, {"kv_load_s", t.kv_load_s()}};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace bpt::cli;
  CLI::App app{"bptserve command-line client"};
  app.require_subcommand(1);
  // The connection options may come before or after the subcommand (`generate --server ...`).
  app.fallthrough();
  Connection conn;
  app.add_option("--server", conn.server, "host:port of the server");
  app.add_option("--tls-ca", conn.tls_ca, "PEM CA certificate: connect with TLS");
  app.add_option("--api-key-file", conn.api_key_file, "File whose first line is the API key");
  app.add_option("--timeout", conn.timeout_s, "Deadline in seconds (0: none)");

  auto* gen = app.add_subcommand("generate", "Generate from a prompt (text from --prompt, --prompt-file or stdin)");
  std::string output = "text", request_id;
  PromptFlags gen_prompt(gen);
  GenerationFlags generation(gen);
  gen->add_option("--request-id", request_id);
  gen->add_option("--output", output, "text or json")->check(CLI::IsMember({"text", "json"}));

  auto* pre = app.add_subcommand("prefill",
                                 "Keep a document's KV in the server's KV tiers for later questions (Prefill): the "
                                 "prompt as generate takes it; nothing is generated");
  PromptFlags pre_prompt(pre);
  int64_t retain_s = 0;
  int priority = 0;
  std::string pre_output = "text";
  pre->add_option("--retain-s", retain_s, "Pin the document's chunks on the server's disk tier this many seconds");
  pre->add_option("--priority", priority, "Lower runs first");
  pre->add_option("--request-id", request_id);
  pre->add_option("--output", pre_output, "text or json")->check(CLI::IsMember({"text", "json"}));

  auto* tok = app.add_subcommand("tokenize", "Token ids of a text");
  std::string tok_text;
  bool add_bos = false;
  tok->add_option("--text", tok_text)->required();
  tok->add_flag("--add-bos", add_bos);
  auto* info = app.add_subcommand("info", "The served model");
  auto* health = app.add_subcommand("health", "Health of the server (readiness by default)");
  std::string health_service = "bptserve.v1.Inference";
  health->add_option("--service", health_service, "'' for liveness");
  ChatCommand chat(&app);
  CLI11_PARSE(app, argc, argv);
  if (chat.selected()) return chat.Run(conn);

  auto channel = MakeChannel(conn);
  auto stub = bptserve::v1::Inference::NewStub(channel);
  grpc::ClientContext context;
  Prepare(conn, &context);

  if (*health) {
    auto health_stub = grpc::health::v1::Health::NewStub(channel);
    grpc::health::v1::HealthCheckRequest hreq;
    hreq.set_service(health_service);
    grpc::health::v1::HealthCheckResponse hres;
    grpc::Status s = health_stub->Check(&context, hreq, &hres);
    if (!s.ok()) return Fail(s);
    std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(hres.status()) << "\n";
    return hres.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
  }
  if (*info) {
    bptserve::v1::ModelInfo mi;
    grpc::Status s = stub->GetModelInfo(&context, {}, &mi);
    if (!s.ok()) return Fail(s);
    nlohmann::json j = {{"architecture", mi.architecture()}, {"model_dir", mi.model_dir()},
                        {"context_limit_tokens", mi.context_limit_tokens()}, {"kv_capacity_tokens", mi.kv_capacity_tokens()},
                        {"dtype", mi.dtype()}, {"weight_dtype", mi.weight_dtype()}, {"kv_dtype", mi.kv_dtype()},
                        {"attention_kernels", mi.attention_kernels()}, {"device", mi.device()}, {"vocab_size", mi.vocab_size()},
                        {"token_ids_mode", mi.token_ids_mode()}, {"has_chat_template", mi.has_chat_template()},
                        {"prefill_block_tokens", mi.prefill_block_tokens()}, {"kv_tiers", mi.kv_tiers()},
                        {"kv_tier_chunk_tokens", mi.kv_tier_chunk_tokens()}};
    const auto& d = mi.default_sampling();
    j["default_sampling"] = {{"temperature", d.temperature()}, {"top_k", d.top_k()}, {"top_p", d.top_p()},
                             {"min_p", d.min_p()}, {"repetition_penalty", d.repetition_penalty()},
                             {"presence_penalty", d.presence_penalty()}, {"frequency_penalty", d.frequency_penalty()}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  if (*tok) {
    bptserve::v1::TokenizeRequest treq;
    treq.set_text(tok_text);
    treq.set_add_bos(add_bos);
    bptserve::v1::TokenizeResponse tres;
    grpc::Status s = stub->Tokenize(&context, treq, &tres);
    if (!s.ok()) return Fail(s);
    std::cout << nlohmann::json(std::vector<int32_t>(tres.token_ids().begin(), tres.token_ids().end())).dump() << "\n";
    return 0;
  }

  if (*pre) {
    bptserve::v1::PrefillRequest preq;
    preq.set_request_id(request_id);
    if (!pre_prompt.ApplyTo(&preq)) return 2;
    preq.set_retain_s(retain_s);
    preq.set_priority(priority);
    const bool bar = isatty(STDERR_FILENO) && pre_output == "text";
    auto reader = stub->Prefill(&context, preq);
    bptserve::v1::PrefillResponse pres;
    bptserve::v1::PrefillFinished finished;
    while (reader->Read(&pres)) {
      if (pres.has_prefill_progress() && bar) DrawPrefillProgress(pres.prefill_progress());
      if (pres.has_finished()) finished = pres.finished();
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return Fail(s);
    if (pre_output == "json") {
      nlohmann::json j = {{"prompt_tokens", finished.prompt_tokens()}, {"cached_tokens", finished.cached_tokens()},
                          {"cached_prompt_tokens", finished.cached_prompt_tokens()},
                          {"cached_from", CachedFromJson(finished.cached_from())},
                          {"timings", TimingsJson(finished.timings())}};
      std::cout << j.dump() << "\n";
    } else {
      std::cout << "prefilled " << finished.prompt_tokens() << " prompt tokens; " << finished.cached_tokens()
                << " cached for later requests\n";
    }
    return 0;
  }

  bptserve::v1::GenerateRequest req;
  req.set_request_id(request_id);
  if (!gen_prompt.ApplyTo(&req)) return 2;
  generation.ApplyTo(&req);
  const bool progress_bar = isatty(STDERR_FILENO) && output == "text";
  req.mutable_options()->set_prefill_progress(progress_bar);

  Reply reply;
  grpc::Status s = StreamReply(*stub, &context, req, /*print_text=*/output == "text", &reply);
  if (!s.ok()) {
    if (output == "text") std::cout << "\n";
    return Fail(s);
  }
  if (output == "json") {
    const auto& u = reply.finished.usage();
    nlohmann::json j = {{"token_ids", reply.token_ids}, {"text", reply.text}, {"finish_reason", FinishName(reply.finished.reason())},
                        {"usage", {{"prompt_tokens", u.prompt_tokens()}, {"completion_tokens", u.completion_tokens()},
                                   {"cached_prompt_tokens", u.cached_prompt_tokens()},
                                   {"cached_from", CachedFromJson(u.cached_from())}}},
                        {"timings", TimingsJson(reply.finished.timings())}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "\n";
  }
  return 0;
}
