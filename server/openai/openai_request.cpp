#include "openai_request.h"

#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "chat_messages.h"
#include "json_body.h"
#include "json_field.h"

namespace bpt::server::openai {
namespace {

using json = nlohmann::json;
using FieldError = std::optional<ApiError>;

bool AsksNothingIfOne(const json& v) { return v.is_number() && v == 1; }
bool AsksNothingIfFalse(const json& v) { return v.is_boolean() && !v.get<bool>(); }
bool AsksNothingIfEmpty(const json& v) { return (v.is_object() || v.is_array() || v.is_string()) && v.empty(); }
bool AsksNothingIfTextFormat(const json& v) {
  // find, not value(): value() throws when "type" holds something other than a string.
  const auto type = v.is_object() && v.size() == 1 ? v.find("type") : v.end();
  return v.is_object() && type != v.end() && type->is_string() && *type == "text";
}
bool AsksNothingIfTextModality(const json& v) { return v == json::array({"text"}); }
bool AsksSomethingAlways(const json&) { return false; }

// OpenAI's fields that bptserve does not implement. Each is refused unless null or the value that
// asks for nothing, which a client may send as its default.
struct UnsupportedField {
  std::string_view key;
  bool on_completions;
  bool on_chat;
  bool (*asks_nothing)(const json&);
  std::string_view why;
};

constexpr UnsupportedField kUnsupportedFields[] = {
    {"n", true, true, AsksNothingIfOne, "n must be 1: bptserve returns one choice per request"},
    {"best_of", true, false, AsksNothingIfOne, "best_of must be 1: bptserve generates one sequence per request"},
    {"echo", true, false, AsksNothingIfFalse, "echo is not supported: the prompt is not returned"},
    {"suffix", true, false, AsksNothingIfEmpty, "suffix is not supported: bptserve does not insert text"},
    {"logit_bias", true, true, AsksNothingIfEmpty, "logit_bias is not supported"},
    {"tools", false, true, AsksNothingIfEmpty, "tools are not supported"},
    {"tool_choice", false, true, AsksSomethingAlways, "tool_choice is not supported: bptserve has no tools"},
    {"parallel_tool_calls", false, true, AsksSomethingAlways, "parallel_tool_calls is not supported: bptserve has no tools"},
    {"functions", false, true, AsksNothingIfEmpty, "functions are not supported"},
    {"function_call", false, true, AsksSomethingAlways, "function_call is not supported: bptserve has no functions"},
    {"response_format", false, true, AsksNothingIfTextFormat, "response_format is not supported: the output is plain text"},
    {"audio", false, true, AsksSomethingAlways, "audio output is not supported"},
    {"modalities", false, true, AsksNothingIfTextModality, "modalities other than [\"text\"] are not supported"},
    {"prediction", false, true, AsksSomethingAlways, "prediction (predicted outputs) is not supported"},
    {"reasoning_effort", false, true, AsksSomethingAlways, "reasoning_effort is not supported"},
    {"verbosity", false, true, AsksSomethingAlways, "verbosity is not supported"},
    {"web_search_options", false, true, AsksSomethingAlways, "web search is not supported"},
    {"service_tier", false, true, AsksSomethingAlways, "service_tier is not supported: bptserve has one tier"},
    {"store", false, true, AsksNothingIfFalse, "store is not supported: bptserve keeps no completions"},
    {"metadata", false, true, AsksNothingIfEmpty, "metadata is not supported: bptserve keeps no completions"},
    {"moderation", false, true, AsksSomethingAlways, "moderation is not supported"},
    {"prompt_cache_key", false, true, AsksSomethingAlways,
     "prompt_cache_key is not supported: bptserve's prefix cache needs no key"},
    {"prompt_cache_options", false, true, AsksSomethingAlways, "prompt_cache_options is not supported"},
    {"prompt_cache_retention", false, true, AsksSomethingAlways, "prompt_cache_retention is not supported"},
    {"safety_identifier", false, true, AsksSomethingAlways, "safety_identifier is not supported; `user` is"},
};

const UnsupportedField* FindUnsupported(Route route, const std::string& key) {
  for (const UnsupportedField& f : kUnsupportedFields)
    if (f.key == key && (route == Route::kCompletions ? f.on_completions : f.on_chat)) return &f;
  return nullptr;
}

ApiError Unrecognized(const std::string& param) {
  return InvalidRequest(param, "Unrecognized request argument supplied: " + param);
}

// A float field's value, its range checked on the float the engine gets (1e-50 is 0 there,
// 1e300 infinite).
FieldError ReadFloat(const json& value, const std::string& param, bool (*in_range)(float), const char* range,
                     float* out) {
  double d = 0;
  if (auto error = ReadNumber(value, param, &d)) return error;
  const float f = static_cast<float>(d);
  if (!std::isfinite(f) || !in_range(f)) return MustBe(param, range, value);
  *out = f;
  return std::nullopt;
}

std::optional<int32_t> TokenId(const json& value, int vocab_size) {
  if (!value.is_number_integer()) return std::nullopt;  // integers only: a 1.0 is no token id
  if (value.is_number_unsigned() ? value.get<uint64_t>() >= static_cast<uint64_t>(vocab_size)
                                 : (value.get<int64_t>() < 0 || value.get<int64_t>() >= vocab_size))
    return std::nullopt;
  return static_cast<int32_t>(value.get<int64_t>());
}

FieldError ReadTokenIds(const json& value, const std::string& param, int vocab_size, std::vector<int32_t>* out) {
  if (!value.is_array()) return MustBe(param, "an array of token ids", value);
  out->reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const std::optional<int32_t> id = TokenId(value[i], vocab_size);
    if (!id) {
      const std::string element = param + "[" + std::to_string(i) + "]";
      return MustBe(element, "a token id, an integer in [0, " + std::to_string(vocab_size) + ")", value[i]);
    }
    out->push_back(*id);
  }
  return std::nullopt;
}

class RequestParser {
 public:
  RequestParser(Route route, const SamplingParams& defaults, const ParseLimits& limits) : limits_(limits) {
    out_.route = route;
    out_.request.sampling = defaults;
    out_.request.sampling.top_logprobs = 0;  // only what this request asks
  }

  FieldError Parse(json& body) {
    for (auto& [key, value] : body.items()) {
      if (auto error = Field(key, value)) return error;
    }
    return Finish();
  }

  ParsedRequest Take() { return std::move(out_); }

 private:
  using Handler = FieldError (RequestParser::*)(json& value);

  static const std::map<std::string_view, Handler>& Handlers(Route route) {
    // Both routes: OpenAI's shared fields and vLLM's sampling extras.
    static const std::map<std::string_view, Handler> kShared = {
        {"model", &RequestParser::Model},
        {"max_tokens", &RequestParser::MaxTokens},
        {"temperature", &RequestParser::Temperature},
        {"top_p", &RequestParser::TopP},
        {"top_k", &RequestParser::TopK},
        {"min_p", &RequestParser::MinP},
        {"presence_penalty", &RequestParser::PresencePenalty},
        {"frequency_penalty", &RequestParser::FrequencyPenalty},
        {"repetition_penalty", &RequestParser::RepetitionPenalty},
        {"seed", &RequestParser::Seed},
        {"stop", &RequestParser::Stop},
        {"stop_token_ids", &RequestParser::StopTokenIds},
        {"ignore_eos", &RequestParser::IgnoreEos},
        {"skip_special_tokens", &RequestParser::SkipSpecialTokens},
        {"stream", &RequestParser::Stream},
        {"stream_options", &RequestParser::StreamOptions},
        {"user", &RequestParser::User},
    };
    static const std::map<std::string_view, Handler> kCompletions = [] {
      auto handlers = kShared;
      handlers.emplace("prompt", &RequestParser::Prompt);
      handlers.emplace("logprobs", &RequestParser::CompletionLogprobs);
      return handlers;
    }();
    static const std::map<std::string_view, Handler> kChat = [] {
      auto handlers = kShared;
      handlers.emplace("messages", &RequestParser::Messages);
      handlers.emplace("max_completion_tokens", &RequestParser::MaxCompletionTokens);
      handlers.emplace("logprobs", &RequestParser::ChatLogprobs);
      handlers.emplace("top_logprobs", &RequestParser::TopLogprobs);
      return handlers;
    }();
    return route == Route::kCompletions ? kCompletions : kChat;
  }

  FieldError Field(const std::string& key, json& value) {
    const auto& handlers = Handlers(out_.route);
    if (auto it = handlers.find(key); it != handlers.end()) return value.is_null() ? std::nullopt : (this->*it->second)(value);
    const UnsupportedField* unsupported = FindUnsupported(out_.route, key);
    if (unsupported == nullptr) return Unrecognized(key);
    if (value.is_null() || unsupported->asks_nothing(value)) return std::nullopt;
    return InvalidRequest(key, std::string(unsupported->why));
  }

  FieldError Finish() {
    if (!has_prompt_)
      return out_.route == Route::kCompletions ? InvalidRequest("prompt", "prompt is required")
                                               : InvalidRequest("messages", "messages is required");
    if (stream_options_set_ && !out_.stream)
      return InvalidRequest("stream_options", "stream_options is only allowed when stream is true");
    StoppingParams& stopping = out_.request.stopping;
    if (out_.route == Route::kCompletions) {
      stopping.max_new_tokens = static_cast<int>(max_tokens_.value_or(kDefaultCompletionMaxTokens));
      return std::nullopt;
    }
    if (max_tokens_ && max_completion_tokens_ && *max_tokens_ != *max_completion_tokens_)
      return InvalidRequest("max_tokens", "max_tokens (" + std::to_string(*max_tokens_) +
                                              ") and max_completion_tokens (" + std::to_string(*max_completion_tokens_) +
                                              ") disagree; set max_completion_tokens alone");
    const std::optional<int64_t> max_tokens = max_completion_tokens_ ? max_completion_tokens_ : max_tokens_;
    out_.default_max_new_tokens = !max_tokens.has_value();
    stopping.max_new_tokens = static_cast<int>(max_tokens.value_or(kDefaultChatMaxTokens));
    // 0 asks for nothing, and OpenAI takes it without logprobs.
    if (top_logprobs_.value_or(0) > 0 && !out_.logprobs)
      return InvalidRequest("top_logprobs", "top_logprobs needs logprobs set to true");
    out_.request.sampling.top_logprobs = out_.logprobs ? static_cast<int>(top_logprobs_.value_or(0)) : 0;
    return std::nullopt;
  }

  FieldError Model(json& v) { return ReadString(v, "model", &out_.model); }
  FieldError User(json& v) { return ReadString(v, "user", &out_.user); }
  FieldError Stream(json& v) { return ReadBool(v, "stream", &out_.stream); }
  FieldError IgnoreEos(json& v) { return ReadBool(v, "ignore_eos", &out_.request.stopping.ignore_eos); }
  FieldError SkipSpecialTokens(json& v) { return ReadBool(v, "skip_special_tokens", &out_.request.skip_special_tokens); }

  FieldError Prompt(json& v) {
    has_prompt_ = true;
    if (v.is_string()) return PromptText(v, "prompt");
    if (!v.is_array()) return MustBe("prompt", "a string or an array of token ids", v);
    if (v.empty()) return InvalidRequest("prompt", "prompt is empty");
    // A batch ([string, ...] or [[ids], ...]) of one is its one prompt; more would need n > 1.
    if (v[0].is_string() || v[0].is_array()) {
      if (v.size() > 1)
        return InvalidRequest("prompt", "prompt holds " + std::to_string(v.size()) +
                                            " prompts; bptserve takes one prompt per request");
      return v[0].is_string() ? PromptText(v[0], "prompt[0]") : PromptIds(v[0], "prompt[0]");
    }
    return PromptIds(v, "prompt");
  }

  FieldError PromptText(json& v, const std::string& param) {
    if (v.get_ref<const std::string&>().empty()) return InvalidRequest(param, param + " is empty");
    out_.prompt_text = std::move(v.get_ref<std::string&>());
    return std::nullopt;
  }

  FieldError PromptIds(const json& v, const std::string& param) {
    if (auto error = ReadTokenIds(v, param, limits_.vocab_size, &out_.prompt_ids)) return error;
    if (out_.prompt_ids.empty()) return InvalidRequest(param, param + " is empty");
    return std::nullopt;
  }

  FieldError Messages(json& v) {
    has_prompt_ = true;
    return ParseChatMessages(v, &out_.messages);
  }

  FieldError ReadMaxTokens(const json& v, const std::string& param, std::optional<int64_t>* out) {
    int64_t n = 0;
    if (auto error = ReadIntegerIn(v, param, 1, limits_.max_new_tokens_limit, &n)) return error;
    *out = n;
    return std::nullopt;
  }
  FieldError MaxTokens(json& v) { return ReadMaxTokens(v, "max_tokens", &max_tokens_); }
  FieldError MaxCompletionTokens(json& v) { return ReadMaxTokens(v, "max_completion_tokens", &max_completion_tokens_); }

  FieldError Temperature(json& v) {
    return ReadFloat(v, "temperature", [](float f) { return f >= 0 && f <= 2; }, "in [0, 2] (0 is greedy)",
                     &out_.request.sampling.temperature);
  }
  FieldError TopP(json& v) {
    return ReadFloat(v, "top_p", [](float f) { return f > 0 && f <= 1; }, "in (0, 1]", &out_.request.sampling.top_p);
  }
  FieldError MinP(json& v) {
    return ReadFloat(v, "min_p", [](float f) { return f >= 0 && f <= 1; }, "in [0, 1]", &out_.request.sampling.min_p);
  }
  FieldError PresencePenalty(json& v) {
    return ReadFloat(v, "presence_penalty", [](float f) { return f >= -2 && f <= 2; }, "in [-2, 2]",
                     &out_.request.sampling.presence_penalty);
  }
  FieldError FrequencyPenalty(json& v) {
    return ReadFloat(v, "frequency_penalty", [](float f) { return f >= -2 && f <= 2; }, "in [-2, 2]",
                     &out_.request.sampling.frequency_penalty);
  }
  FieldError RepetitionPenalty(json& v) {
    return ReadFloat(v, "repetition_penalty", [](float f) { return f > 0; }, "a finite number > 0 (1 is off)",
                     &out_.request.sampling.repetition_penalty);
  }

  // vLLM's convention: -1 (or 0) considers every token.
  FieldError TopK(json& v) {
    int64_t k = 0;
    if (auto error = ReadInteger(v, "top_k", &k)) return error;
    if (k < -1 || k > std::numeric_limits<int32_t>::max())
      return MustBe("top_k", "-1 or 0 (every token) or a count in [1, 2147483647]", v);
    out_.request.sampling.top_k = k == -1 ? 0 : static_cast<int>(k);
    return std::nullopt;
  }

  FieldError Seed(json& v) {
    int64_t seed = 0;
    if (auto error = ReadInteger(v, "seed", &seed)) return error;
    out_.request.sampling.seed = static_cast<uint64_t>(seed);
    return std::nullopt;
  }

  FieldError Stop(json& v) {
    if (v.is_string()) return StopString(v, "stop");
    if (!v.is_array()) return MustBe("stop", "a string or an array of strings", v);
    if (v.size() > static_cast<size_t>(kMaxStopStrings))
      return InvalidRequest("stop", "stop has " + std::to_string(v.size()) + " strings; at most " +
                                        std::to_string(kMaxStopStrings) + " are allowed");
    out_.request.stopping.stop.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      if (auto error = StopString(v[i], "stop[" + std::to_string(i) + "]")) return error;
    return std::nullopt;
  }

  FieldError StopString(const json& v, const std::string& param) {
    std::string s;
    if (auto error = ReadString(v, param, &s)) return error;
    if (s.empty()) return InvalidRequest(param, param + " is empty");
    if (s.size() > kMaxStopStringBytes)
      return InvalidRequest(param, param + " is " + std::to_string(s.size()) + " bytes; at most " +
                                       std::to_string(kMaxStopStringBytes) + " are allowed");
    out_.request.stopping.stop.push_back(std::move(s));
    return std::nullopt;
  }

  FieldError StopTokenIds(json& v) {
    return ReadTokenIds(v, "stop_token_ids", limits_.vocab_size, &out_.request.stopping.stop_token_ids);
  }

  FieldError StreamOptions(json& v) {
    if (!v.is_object()) return MustBe("stream_options", "an object", v);
    stream_options_set_ = true;
    for (const auto& [key, value] : v.items()) {
      const std::string param = "stream_options." + key;
      bool flag = false;
      if (key != "include_usage" && key != "include_obfuscation" && key != "continuous_usage_stats")
        return Unrecognized(param);
      if (value.is_null()) continue;
      if (auto error = ReadBool(value, param, &flag)) return error;
      if (key == "include_usage") out_.include_usage = flag;
      else if (flag && key == "include_obfuscation")
        return InvalidRequest(param, "stream_options.include_obfuscation is not supported: bptserve does not pad its chunks");
      else if (flag)
        return InvalidRequest(param, "stream_options.continuous_usage_stats is not supported: the usage comes once, "
                                     "in the last chunk");
    }
    return std::nullopt;
  }

  FieldError CompletionLogprobs(json& v) {
    int64_t n = 0;
    if (auto error = ReadIntegerIn(v, "logprobs", 0, kMaxCompletionLogprobs, &n)) return error;
    out_.logprobs = true;
    out_.request.sampling.top_logprobs = static_cast<int>(n);
    return std::nullopt;
  }

  FieldError ChatLogprobs(json& v) { return ReadBool(v, "logprobs", &out_.logprobs); }

  FieldError TopLogprobs(json& v) {
    int64_t n = 0;
    if (auto error = ReadIntegerIn(v, "top_logprobs", 0, kMaxTopLogprobs, &n)) return error;
    top_logprobs_ = n;
    return std::nullopt;
  }

  const ParseLimits limits_;
  ParsedRequest out_;
  bool has_prompt_ = false;
  bool stream_options_set_ = false;
  std::optional<int64_t> max_tokens_;
  std::optional<int64_t> max_completion_tokens_;
  std::optional<int64_t> top_logprobs_;
};

}  // namespace

std::variant<ParsedRequest, ApiError> ParseRequest(Route route, std::string_view body, const SamplingParams& defaults,
                                                   const ParseLimits& limits) {
  std::variant<json, ApiError> parsed = ParseJsonBody(body);
  if (auto* error = std::get_if<ApiError>(&parsed)) return std::move(*error);
  RequestParser parser(route, defaults, limits);
  if (auto error = parser.Parse(std::get<json>(parsed))) return std::move(*error);
  return parser.Take();
}

}  // namespace bpt::server::openai
