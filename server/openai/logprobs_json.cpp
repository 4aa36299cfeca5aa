#include "logprobs_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>
#include <utility>

namespace bpt::server::openai {
namespace {

using ojson = nlohmann::ordered_json;

// `bytes` with each maximal ill-formed subsequence replaced by U+FFFD, as Python's
// decode(errors="replace") does: a token that is a fragment of a character still has a string.
std::string ValidUtf8(std::string_view bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const unsigned char lead = static_cast<unsigned char>(bytes[i]);
    if (lead < 0x80) {
      out.push_back(static_cast<char>(lead));
      ++i;
      continue;
    }
    size_t continuation = 0;
    unsigned char low = 0x80, high = 0xBF;  // the second byte's range (no overlongs, surrogates, > U+10FFFF)
    if (lead >= 0xC2 && lead <= 0xDF) {
      continuation = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      continuation = 2;
      if (lead == 0xE0) low = 0xA0;
      if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      continuation = 3;
      if (lead == 0xF0) low = 0x90;
      if (lead == 0xF4) high = 0x8F;
    }
    size_t length = 1;
    while (continuation > 0 && length <= continuation && i + length < bytes.size()) {
      const unsigned char c = static_cast<unsigned char>(bytes[i + length]);
      if (c < (length == 1 ? low : 0x80) || c > (length == 1 ? high : 0xBF)) break;
      ++length;
    }
    if (continuation > 0 && length == continuation + 1) out.append(bytes.substr(i, length));
    else out.append(kReplacement);
    i += length;
  }
  return out;
}

ojson Bytes(const std::string& text) {
  ojson bytes = ojson::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return bytes;
}

}  // namespace

double LogprobValue(float logprob) {
  if (!std::isfinite(logprob)) return -9999.0;
  char buffer[32];
  const auto printed = std::to_chars(buffer, buffer + sizeof(buffer), logprob);
  double value = logprob;
  std::from_chars(buffer, printed.ptr, value);
  return value;
}

LogprobsJson::LogprobsJson(bool chat, int top_logprobs, std::function<std::string(int32_t)> token_text)
    : chat_(chat), top_logprobs_(static_cast<size_t>(std::max(top_logprobs, 0))), token_text_(std::move(token_text)) {
  Take();
}

ojson LogprobsJson::Alternative(int32_t token_id, float logprob) const {
  const std::string text = token_text_(token_id);
  return {{"token", ValidUtf8(text)}, {"logprob", LogprobValue(logprob)}, {"bytes", Bytes(text)}};
}

void LogprobsJson::Add(const TokenOutput& token, int64_t text_offset) {
  ++count_;
  const size_t alternatives = std::min(top_logprobs_, token.top_logprobs.size());
  const std::string text = token_text_(token.token_id);
  if (chat_) {
    ojson top = ojson::array();
    for (size_t i = 0; i < alternatives; ++i)
      top.push_back(Alternative(token.top_logprobs[i].first, token.top_logprobs[i].second));
    content_.push_back({{"token", ValidUtf8(text)},
                        {"logprob", LogprobValue(token.logprob)},
                        {"bytes", Bytes(text)},
                        {"top_logprobs", std::move(top)}});
    return;
  }
  tokens_.push_back(ValidUtf8(text));
  token_logprobs_.push_back(LogprobValue(token.logprob));
  text_offset_.push_back(text_offset);
  ojson top = ojson::object();
  for (size_t i = 0; i < alternatives; ++i) {
    // Two ids with one text (or two fragments that both become U+FFFD) share a key: the first,
    // the likelier, keeps it.
    const std::string key = ValidUtf8(token_text_(token.top_logprobs[i].first));
    if (!top.contains(key)) top[key] = LogprobValue(token.top_logprobs[i].second);
  }
  top_logprobs_list_.push_back(std::move(top));
}

ojson LogprobsJson::Take() {
  ojson taken;
  if (chat_) {
    taken = {{"content", std::move(content_)}, {"refusal", nullptr}};
    content_ = ojson::array();
  } else {
    taken = {{"tokens", std::move(tokens_)},
             {"token_logprobs", std::move(token_logprobs_)},
             {"top_logprobs", std::move(top_logprobs_list_)},
             {"text_offset", std::move(text_offset_)}};
    tokens_ = token_logprobs_ = top_logprobs_list_ = text_offset_ = ojson::array();
  }
  count_ = 0;
  return taken;
}

}  // namespace bpt::server::openai
