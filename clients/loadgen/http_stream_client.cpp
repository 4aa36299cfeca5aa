#include "http_stream_client.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "sse_event_stream.h"
#include "token_timeline.h"

namespace bptserve::loadgen {
namespace {

// A long prompt's prefill queued behind 32 others on a shared CPU takes far longer than
// httplib's default 5 s between two reads; the gRPC mode has no deadline either.
constexpr time_t kReadTimeoutSeconds = 3600;
// The error body of a refused request is reported on stderr; a page of it says enough.
constexpr size_t kMaxErrorBodyBytes = 4096;

// Follows one /v1/completions stream as it arrives and judges it once it has ended.
class CompletionStreamCheck {
 public:
  explicit CompletionStreamCheck(Clock::time_point sent) : timeline_(sent) {}

  void OnHead(const httplib::Response& head) {
    status_ = head.status;
    if (head.status == 200 && head.get_header_value("Content-Type").rfind("text/event-stream", 0) != 0) {
      Violate("a 200 with Content-Type '" + head.get_header_value("Content-Type") + "', not text/event-stream");
    }
  }

  void OnBytes(Clock::time_point arrival, std::string_view bytes) {
    if (status_ != 200) {
      error_body_ += bytes.substr(0, kMaxErrorBodyBytes - std::min(kMaxErrorBodyBytes, error_body_.size()));
      return;
    }
    events_.Feed(bytes, [&](std::string_view data) { OnEvent(arrival, data); });
  }

  StreamResult Finish(httplib::Error transport_error) {
    StreamResult result;
    result.e2e_s = std::chrono::duration<double>(Clock::now() - timeline_.sent()).count();
    if (!status_) {
      result.problem = "no HTTP status: " + httplib::to_string(transport_error);
      return result;
    }
    result.status = std::to_string(*status_);
    if (*status_ != 200) {
      result.problem = error_body_;
      return result;
    }
    if (transport_error != httplib::Error::Success) {
      Violate("the stream broke: " + httplib::to_string(transport_error));
    } else if (events_.mid_event()) {
      Violate("the stream ended inside an event");
    }
    if (done_ != 1) Violate(std::to_string(done_) + " [DONE] events");
    if (error_type_) {
      result.status = "stream_error:" + *error_type_;
      if (finish_reasons_ != 0) Violate("an error event after a finish_reason");
    } else {
      if (finish_reasons_ != 1) Violate(std::to_string(finish_reasons_) + " finish_reason chunks");
      if (usage_chunks_ != 1) Violate(std::to_string(usage_chunks_) + " usage chunks");
    }
    result.succeeded = !error_type_ && !violated_;
    result.protocol_violation = violated_;
    result.problem = violated_ ? violation_ : error_message_;
    result.ttft_s = timeline_.ttft_s();
    result.tokens = completion_tokens_;
    result.inter_token_s = timeline_.take_inter_token_s();
    return result;
  }

 private:
  void OnEvent(Clock::time_point arrival, std::string_view data) {
    if (done_ > 0) return Violate("an event after [DONE]");
    if (data == "[DONE]") {
      ++done_;
      return;
    }
    try {
      const nlohmann::json chunk = nlohmann::json::parse(data);
      if (chunk.contains("error")) {
        if (error_type_) return Violate("a second error event");
        error_type_ = chunk.at("error").value("type", "untyped");
        error_message_ = chunk.at("error").value("message", "");
        return;
      }
      if (chunk.at("object") != "text_completion") return Violate("a chunk whose object is not text_completion");
      const auto& choices = chunk.at("choices");
      if (choices.empty()) {
        if (finish_reasons_ == 0) return Violate("a usage chunk before the finish_reason");
        ++usage_chunks_;
        completion_tokens_ = chunk.at("usage").at("completion_tokens").get<int64_t>();
        return;
      }
      for (const auto& choice : choices) {
        if (finish_reasons_ > 0) return Violate("a chunk after the finish_reason");
        // bptserve sends one event per token that has text.
        if (!choice.at("text").get<std::string>().empty()) timeline_.OnText(arrival, 1);
        const auto& reason = choice.at("finish_reason");
        if (reason.is_null()) continue;
        if (reason != "stop" && reason != "length") return Violate("finish_reason " + reason.dump());
        ++finish_reasons_;
      }
    } catch (const nlohmann::json::exception& e) {
      Violate("a malformed chunk (" + std::string(e.what()) + "): " + std::string(data.substr(0, 200)));
    }
  }

  void Violate(std::string problem) {
    if (!violated_) violation_ = std::move(problem);
    violated_ = true;
  }

  TokenTimeline timeline_;
  std::optional<int> status_;
  std::string error_body_;
  SseEventStream events_;
  int done_ = 0;
  int finish_reasons_ = 0;
  int usage_chunks_ = 0;
  int64_t completion_tokens_ = 0;
  std::optional<std::string> error_type_;
  std::string error_message_;
  bool violated_ = false;
  std::string violation_;  // the first one
};

}  // namespace

HttpStreamClient::HttpStreamClient(const std::string& server, const std::string& api_key, std::string model)
    : client_(server), model_(std::move(model)) {
  client_.set_keep_alive(true);
  // The body is written after the head: with Nagle's algorithm it would wait for the head's
  // ACK, a delayed ACK away. gRPC's client sets TCP_NODELAY too.
  client_.set_tcp_nodelay(true);
  client_.set_read_timeout(kReadTimeoutSeconds, 0);
  if (!api_key.empty()) client_.set_bearer_token_auth(api_key);
}

StreamResult HttpStreamClient::Stream(const LoadRequest& request) {
  const nlohmann::json body = {{"model", model_},
                               {"prompt", request.prompt},
                               {"max_tokens", request.max_new_tokens},
                               {"seed", request.seed},
                               {"ignore_eos", true},
                               {"stream", true},
                               {"stream_options", {{"include_usage", true}}}};
  httplib::Request http_request;
  http_request.method = "POST";
  http_request.path = "/v1/completions";
  http_request.body = body.dump();
  http_request.set_header("Content-Type", "application/json");
  CompletionStreamCheck check(Clock::now());
  http_request.response_handler = [&](const httplib::Response& head) {
    check.OnHead(head);
    return true;
  };
  http_request.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    check.OnBytes(Clock::now(), std::string_view(data, size));
    return true;
  };
  return check.Finish(client_.send(http_request).error());
}

std::string FirstServedModelId(const std::string& server, const std::string& api_key) {
  httplib::Client client(server);
  if (!api_key.empty()) client.set_bearer_token_auth(api_key);
  const httplib::Result result = client.Get("/v1/models");
  if (!result) throw std::runtime_error("GET /v1/models: " + httplib::to_string(result.error()));
  if (result->status != 200) {
    throw std::runtime_error("GET /v1/models: HTTP " + std::to_string(result->status) + ": " + result->body);
  }
  const nlohmann::json models = nlohmann::json::parse(result->body, nullptr, false);
  if (!models.is_object() || !models.contains("data") || !models["data"].is_array() || models["data"].empty() ||
      !models["data"][0].contains("id") || !models["data"][0]["id"].is_string()) {
    throw std::runtime_error("GET /v1/models: no model id in " + result->body.substr(0, 200));
  }
  return models["data"][0]["id"].get<std::string>();
}

}  // namespace bptserve::loadgen
