// bptserve-cli: the command-line client.
//   bptserve-cli generate --prompt-file book.txt --max-new-tokens 64
//   bptserve-cli generate --token-ids 1,2,3 --output json
//   bptserve-cli tokenize --text "hello" | info | health
// On an error it prints the server's status code and message and exits with that code.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bptserve/v1/bptserve.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace {

struct Connection {
  std::string server = "localhost:50051";
  std::string tls_ca;
  std::string api_key_file;
  double timeout_s = 0;  // 0: none
};

std::string ReadAll(std::istream& in) {
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::shared_ptr<grpc::Channel> MakeChannel(const Connection& c) {
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!c.tls_ca.empty()) {
    std::ifstream in(c.tls_ca);
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadAll(in);
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // Long prefills send nothing for minutes; keepalive pings keep the connection known alive.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  return grpc::CreateCustomChannel(c.server, creds, args);
}

void Prepare(const Connection& c, grpc::ClientContext* context) {
  if (!c.api_key_file.empty()) {
    std::ifstream in(c.api_key_file);
    std::string key;
    std::getline(in, key);
    context->AddMetadata("authorization", "Bearer " + key);
  }
  if (c.timeout_s > 0)
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(c.timeout_s * 1000)));
}

int Fail(const grpc::Status& s) {
  static const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                "UNAUTHENTICATED"};
  const int code = static_cast<int>(s.error_code());
  std::cerr << "error: " << (code >= 0 && code <= 16 ? names[code] : "UNKNOWN") << ": " << s.error_message() << "\n";
  return code;
}

const char* FinishName(bptserve::v1::FinishReason r) {
  switch (r) {
    case bptserve::v1::FINISH_REASON_EOS: return "eos";
    case bptserve::v1::FINISH_REASON_STOP: return "stop";
    case bptserve::v1::FINISH_REASON_LENGTH: return "length";
    case bptserve::v1::FINISH_REASON_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

}  // namespace

int main(int argc, char** argv) {
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
  std::string prompt, prompt_file, output = "text", request_id;
  std::vector<int32_t> token_ids, stop_token_ids;
  std::vector<std::string> stop;
  bptserve::v1::GenerateRequest req;
  float temperature = 1, top_p = 1, min_p = 0, repetition = 1, presence = 0, frequency = 0;
  int top_k = 0, max_new_tokens = 256, top_logprobs = 0;
  uint64_t seed = 0;
  bool ignore_eos = false;
  gen->add_option("--prompt", prompt);
  gen->add_option("--prompt-file", prompt_file);
  gen->add_option("--token-ids", token_ids, "Prompt as token ids")->delimiter(',');
  auto* o_temperature = gen->add_option("--temperature", temperature);
  auto* o_top_k = gen->add_option("--top-k", top_k);
  auto* o_top_p = gen->add_option("--top-p", top_p);
  auto* o_min_p = gen->add_option("--min-p", min_p);
  auto* o_rep = gen->add_option("--repetition-penalty", repetition);
  auto* o_pres = gen->add_option("--presence-penalty", presence);
  auto* o_freq = gen->add_option("--frequency-penalty", frequency);
  auto* o_seed = gen->add_option("--seed", seed);
  auto* o_max = gen->add_option("--max-new-tokens", max_new_tokens);
  gen->add_option("--stop", stop, "Stop string (repeatable)");
  gen->add_option("--stop-token-ids", stop_token_ids)->delimiter(',');
  gen->add_flag("--ignore-eos", ignore_eos);
  gen->add_option("--top-logprobs", top_logprobs);
  gen->add_option("--request-id", request_id);
  gen->add_option("--output", output, "text or json")->check(CLI::IsMember({"text", "json"}));

  auto* tok = app.add_subcommand("tokenize", "Token ids of a text");
  std::string tok_text;
  bool add_bos = false;
  tok->add_option("--text", tok_text)->required();
  tok->add_flag("--add-bos", add_bos);
  auto* info = app.add_subcommand("info", "The served model");
  auto* health = app.add_subcommand("health", "Health of the server (readiness by default)");
  std::string health_service = "bptserve.v1.Inference";
  health->add_option("--service", health_service, "'' for liveness");
  CLI11_PARSE(app, argc, argv);

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
                        {"dtype", mi.dtype()}, {"device", mi.device()}, {"vocab_size", mi.vocab_size()},
                        {"token_ids_mode", mi.token_ids_mode()}, {"prefill_block_tokens", mi.prefill_block_tokens()}};
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

  req.set_request_id(request_id);
  if (!token_ids.empty()) {
    req.mutable_token_ids()->mutable_ids()->Assign(token_ids.begin(), token_ids.end());
  } else if (!prompt_file.empty()) {
    std::ifstream in(prompt_file, std::ios::binary);
    if (!in) {
      std::cerr << "error: cannot read '" << prompt_file << "'\n";
      return 2;
    }
    req.set_text(ReadAll(in));
  } else if (gen->count("--prompt") > 0) {
    req.set_text(prompt);
  } else {
    req.set_text(ReadAll(std::cin));
  }
  auto* sp = req.mutable_sampling();
  if (o_temperature->count()) sp->set_temperature(temperature);
  if (o_top_k->count()) sp->set_top_k(top_k);
  if (o_top_p->count()) sp->set_top_p(top_p);
  if (o_min_p->count()) sp->set_min_p(min_p);
  if (o_rep->count()) sp->set_repetition_penalty(repetition);
  if (o_pres->count()) sp->set_presence_penalty(presence);
  if (o_freq->count()) sp->set_frequency_penalty(frequency);
  if (o_seed->count()) sp->set_seed(seed);
  auto* st = req.mutable_stopping();
  if (o_max->count()) st->set_max_new_tokens(max_new_tokens);
  for (const auto& s : stop) st->add_stop(s);
  st->mutable_stop_token_ids()->Assign(stop_token_ids.begin(), stop_token_ids.end());
  st->set_ignore_eos(ignore_eos);
  const bool progress_bar = isatty(STDERR_FILENO) && output == "text";
  req.mutable_options()->set_prefill_progress(progress_bar);
  req.mutable_options()->set_top_logprobs(top_logprobs);

  auto reader = stub->Generate(&context, req);
  bptserve::v1::GenerateResponse res;
  std::vector<int32_t> ids;
  std::string text;
  bptserve::v1::Finished finished;
  while (reader->Read(&res)) {
    if (res.has_prefill_progress()) {
      const auto& p = res.prefill_progress();
      const int width = 40, filled = static_cast<int>(width * p.processed_tokens() / std::max<int64_t>(1, p.total_tokens()));
      std::cerr << "\rprefill [" << std::string(filled, '#') << std::string(width - filled, ' ') << "] "
                << p.processed_tokens() << "/" << p.total_tokens() << (p.processed_tokens() == p.total_tokens() ? "\n" : "")
                << std::flush;
    } else if (res.has_tokens()) {
      ids.insert(ids.end(), res.tokens().token_ids().begin(), res.tokens().token_ids().end());
      text += res.tokens().text();
      if (output == "text") std::cout << res.tokens().text() << std::flush;
    } else if (res.has_finished()) {
      finished = res.finished();
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    if (output == "text") std::cout << "\n";
    return Fail(s);
  }
  if (output == "json") {
    const auto& u = finished.usage();
    const auto& t = finished.timings();
    nlohmann::json j = {{"token_ids", ids}, {"text", text}, {"finish_reason", FinishName(finished.reason())},
                        {"usage", {{"prompt_tokens", u.prompt_tokens()}, {"completion_tokens", u.completion_tokens()},
                                   {"cached_prompt_tokens", u.cached_prompt_tokens()}}},
                        {"timings", {{"queue_s", t.queue_s()}, {"prefill_s", t.prefill_s()},
                                     {"time_to_first_token_s", t.time_to_first_token_s()}, {"decode_s", t.decode_s()}}}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "\n";
  }
  return 0;
}
