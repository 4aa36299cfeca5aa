// tokenizer.json tokenizers against Hugging Face: tests/tokenizers/make_tokenizer_fixtures.py
// writes each fixture directory with what transformers' AutoTokenizer encodes and decodes there
// (expected.json), and every id and every decoded byte must be the same here.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "incremental_detokenizer.h"
#include "test_models.h"
#include "tokenizer.h"
#include "tokenizer_config.h"

namespace bpt {
namespace {

using nlohmann::json;
using testing::TempDir;

// Each mismatch kind reports this many cases in full, then only counts.
constexpr int kReportedMismatches = 3;

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

// The text as a C string literal would show it, cut at max_bytes.
std::string Escaped(std::string_view text, size_t max_bytes = 120) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < max_bytes; ++i) {
    const unsigned char c = text[i];
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max_bytes) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

std::string IdsAround(const std::vector<int32_t>& ids, size_t at) {
  std::string out = "[";
  const size_t begin = at < 6 ? 0 : at - 6;
  const size_t end = std::min(ids.size(), at + 6);
  if (begin > 0) out += "... ";
  for (size_t i = begin; i < end; ++i) out += (i == at ? "*" : "") + std::to_string(ids[i]) + (i + 1 < end ? " " : "");
  if (end < ids.size()) out += " ...";
  return out + "] (" + std::to_string(ids.size()) + " ids)";
}

std::string IdsMismatch(const std::vector<int32_t>& got, const std::vector<int32_t>& want) {
  const size_t at = std::mismatch(got.begin(), got.end(), want.begin(), want.end()).first - got.begin();
  return "first difference at id " + std::to_string(at) + ":\n  bptserve " + IdsAround(got, at) +
         "\n  HF       " + IdsAround(want, at);
}

std::string TextMismatch(const std::string& got, const std::string& want) {
  const size_t at = std::mismatch(got.begin(), got.end(), want.begin(), want.end()).first - got.begin();
  const size_t from = at < 20 ? 0 : at - 20;
  return "first difference at byte " + std::to_string(at) + ":\n  bptserve \"" +
         Escaped(std::string_view(got).substr(std::min(from, got.size())), 60) + "\"\n  HF       \"" +
         Escaped(std::string_view(want).substr(std::min(from, want.size())), 60) + "\"";
}

std::vector<int32_t> Concat(std::span<const int32_t> a, std::span<const int32_t> b, std::span<const int32_t> c) {
  std::vector<int32_t> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  out.insert(out.end(), c.begin(), c.end());
  return out;
}

// Counts agreements of one kind and reports the first few disagreements in full.
class Tally {
 public:
  explicit Tally(std::string what) : what_(std::move(what)) {}
  void Agree() { ++agreed_, ++total_; }
  void Disagree(const std::string& fixture, const std::string& detail) {
    ++total_;
    if (total_ - agreed_ <= kReportedMismatches) ADD_FAILURE() << fixture << ": " << what_ << " " << detail;
  }
  std::string Summary() const { return std::to_string(agreed_) + "/" + std::to_string(total_) + " " + what_; }

 private:
  std::string what_;
  int agreed_ = 0;
  int total_ = 0;
};

class HfTokenizerAgreementTest : public ::testing::TestWithParam<const char*> {
 protected:
  // The fixture directory with its expected.json, or empty after GTEST_SKIP/failure.
  void SetUp() override {
    // One fixture per test process: ctest runs each test alone, and the script builds only it.
    const std::string command = std::string(BPTSERVE_PYTHON) + " " + BPTSERVE_TOKENIZER_FIXTURES_SCRIPT + " " +
                                dir_.path() + " --llama2-model " + BPTSERVE_LLAMA2_TOKENIZER + " --only " +
                                GetParam();
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    const json index = ReadJson(dir_ / "index.json");
    if (index["skipped"].contains(GetParam())) GTEST_SKIP() << index["skipped"][GetParam()].get<std::string>();
    ASSERT_NE(std::find(index["fixtures"].begin(), index["fixtures"].end(), GetParam()), index["fixtures"].end())
        << GetParam() << " is neither made nor skipped by " << BPTSERVE_TOKENIZER_FIXTURES_SCRIPT;
    model_dir_ = dir_ / GetParam();
    expected_ = ReadJson(model_dir_ + "/expected.json");
    auto config = LoadTokenizerConfig(model_dir_);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    auto tokenizer = Tokenizer::Load(model_dir_, *config);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
    ASSERT_NE(*tokenizer, nullptr) << model_dir_ << " has no tokenizer";
    tokenizer_ = std::move(tokenizer).value();
  }

  TempDir dir_;
  std::string model_dir_;
  json expected_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_P(HfTokenizerAgreementTest, EncodesAndDecodesAsAutoTokenizer) {
  const Tokenizer& tok = *tokenizer_;
  Tally encodings("encodings"), decodes("decodes");
  for (const json& entry : expected_["entries"]) {
    const std::string text = entry["text"];
    const std::string where = "\"" + entry["name"].get<std::string>() + "\" (\"" + Escaped(text) + "\")";
    auto ids = tok.Encode(text);
    if (!ids.ok()) {
      encodings.Disagree(GetParam(), where + ": " + ids.status().ToString());
      encodings.Disagree(GetParam(), where + " with special tokens: " + ids.status().ToString());
      continue;
    }
    const auto want = entry["ids"].get<std::vector<int32_t>>();
    if (*ids == want) {
      encodings.Agree();
    } else {
      encodings.Disagree(GetParam(), where + ", add_special_tokens=False: " + IdsMismatch(*ids, want));
    }
    const auto with_special = Concat(tok.prefix_ids(), *ids, tok.suffix_ids());
    const auto want_special = entry["ids_with_special"].get<std::vector<int32_t>>();
    if (with_special == want_special) {
      encodings.Agree();
    } else {
      encodings.Disagree(GetParam(), where + ", add_special_tokens=True: " + IdsMismatch(with_special, want_special));
    }
  }
  for (const json& d : expected_["decodes"]) {
    const auto ids = d["ids"].get<std::vector<int32_t>>();
    const bool skip = d["skip_special_tokens"];
    const std::string want = d["text"];
    const std::string where = "\"" + d["name"].get<std::string>() + "\" (skip_special_tokens=" +
                              (skip ? "True" : "False") + ")";
    auto text = tok.Decode(ids, skip);
    if (!text.ok()) {
      decodes.Disagree(GetParam(), where + ": " + text.status().ToString());
    } else if (*text == want) {
      decodes.Agree();
    } else {
      decodes.Disagree(GetParam(), where + ": " + TextMismatch(*text, want));
    }
  }
  std::cout << GetParam() << ": " << encodings.Summary() << ", " << decodes.Summary() << " agree\n";
}

// Generated text streams out exactly: for byte-level BPE every token's bytes are text, and the
// pieces must join to the whole decode (a character split over tokens held back until complete).
TEST_P(HfTokenizerAgreementTest, StreamingJoinsToWholeDecode) {
  if (!expected_["byte_level"].get<bool>()) GTEST_SKIP() << "exact streaming is promised for byte-level BPE";
  Tally streams("streams");
  for (const json& entry : expected_["entries"]) {
    const auto ids = entry["ids_with_special"].get<std::vector<int32_t>>();
    for (const bool skip : {false, true}) {
      const std::string where = "\"" + entry["name"].get<std::string>() + "\" (skip_special_tokens=" +
                                (skip ? "True" : "False") + ")";
      auto whole = tokenizer_->Decode(ids, skip);
      ASSERT_TRUE(whole.ok()) << where << ": " << whole.status().ToString();
      IncrementalDetokenizer detok(*tokenizer_, {}, skip);
      std::string joined;
      Status status;
      for (const int32_t id : ids) {
        auto piece = detok.Push(id);
        if (!piece.ok()) {
          status = piece.status();
          break;
        }
        joined += *piece;
      }
      if (status.ok()) {
        auto rest = detok.Flush();
        if (rest.ok()) {
          joined += *rest;
        } else {
          status = rest.status();
        }
      }
      if (!status.ok()) {
        streams.Disagree(GetParam(), where + ": " + status.ToString());
      } else if (joined == *whole) {
        streams.Agree();
      } else {
        streams.Disagree(GetParam(), where + ": " + TextMismatch(joined, *whole));
      }
    }
  }
  std::cout << GetParam() << ": " << streams.Summary() << " join to the whole decode\n";
}

// The prompt limit: a text that needs n ids encodes with max_ids = n and is refused with n - 1.
TEST_P(HfTokenizerAgreementTest, MaxIdsRefusesOnlyBeyondTheCount) {
  for (const json& entry : expected_["entries"]) {
    const std::string text = entry["text"];
    const auto want = entry["ids"].get<std::vector<int32_t>>();
    if (want.empty()) continue;
    const std::string where = "\"" + entry["name"].get<std::string>() + "\"";
    auto exact = tokenizer_->Encode(text, want.size());
    ASSERT_TRUE(exact.ok()) << where << " with max_ids " << want.size() << ": " << exact.status().ToString();
    EXPECT_EQ(*exact, want) << where << " with max_ids " << want.size();
    auto over = tokenizer_->Encode(text, want.size() - 1);
    ASSERT_FALSE(over.ok()) << where << " gave " << over->size() << " ids with max_ids " << want.size() - 1;
    EXPECT_EQ(over.status().code(), StatusCode::kOutOfRange) << where << ": " << over.status().ToString();
  }
}

// Every name make_tokenizer_fixtures.py knows: one it neither makes nor skips fails the test.
INSTANTIATE_TEST_SUITE_P(Fixtures, HfTokenizerAgreementTest,
                         ::testing::Values("gpt2-bpe", "gpt2-prefix-space-bpe", "llama3-bpe", "qwen2-bpe",
                                           "metaspace-bpe", "metaspace-llama-class", "subword-affix-bpe",
                                           "llama2-transformers5", "llama2-legacy", "llama2-hub-layout",
                                           "anthropic-claude"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace bpt
