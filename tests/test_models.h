// Helpers shared by the engine tests: temporary directories and small random models.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "random_model.h"
#include "temp_dir.h"

namespace bpt::testing {

using ::bpt::SmallConfig;

inline void WriteModelOrDie(const std::string& dir, const nlohmann::json& config, DType dtype = DType::kF32,
                            uint64_t seed = 1, int shards = 1, const std::string& tokenizer = "") {
  RandomModelSpec spec;
  spec.config = config;
  spec.dtype = dtype;
  spec.seed = seed;
  spec.num_shards = shards;
  spec.tokenizer = tokenizer;
  const Status s = WriteRandomModel(dir, spec);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

// The demo tokenizer the build trains from engine/fixtures/demo_corpus.txt.
inline std::string DemoTokenizerPath() { return BPTSERVE_DEMO_TOKENIZER; }
// The real Llama 2 tokenizer from ../shared, absent on a user's fresh clone.
inline std::string Llama2TokenizerPath() { return BPTSERVE_LLAMA2_TOKENIZER; }

}  // namespace bpt::testing
