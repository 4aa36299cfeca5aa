// config.json's RoPE as transformers 4.x and 5.x write it: the same model read from either form
// gets the same frequencies, and a form this engine does not apply is refused by name rather
// than read as the default (which would serve a wrong model without a word).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model_config.h"

namespace bpt {
namespace {

nlohmann::json BaseConfig() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", 128}, {"hidden_size", 64},
          {"intermediate_size", 128}, {"num_hidden_layers", 1}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"max_position_embeddings", 131072}};
}

StatusOr<ModelConfig> Parse(const nlohmann::json& j) { return ParseModelConfig(j.dump(), "config.json"); }

const nlohmann::json kLlama3Scaling = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};

TEST(ModelConfigRope, TransformersFiveRopeParametersEqualTheFourXForm) {
  nlohmann::json v4 = BaseConfig();
  v4["rope_theta"] = 500000.0;
  v4["rope_scaling"] = kLlama3Scaling;
  nlohmann::json v5 = BaseConfig();
  v5["rope_parameters"] = kLlama3Scaling;
  v5["rope_parameters"]["rope_theta"] = 500000.0;
  auto a = Parse(v4), b = Parse(v5);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->rope_theta, 500000.0);  // not the 10000 of a config without rope_theta
  EXPECT_EQ(b->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(b->rope_scaling.factor, 8.0);
  EXPECT_EQ(b->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(a->rope_theta, b->rope_theta);
  EXPECT_EQ(a->rope_scaling.type, b->rope_scaling.type);
  EXPECT_EQ(a->rope_scaling.high_freq_factor, b->rope_scaling.high_freq_factor);
}

TEST(ModelConfigRope, DefaultRopeParametersCarryTheTheta) {
  nlohmann::json j = BaseConfig();
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}};
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->rope_theta, 1000000.0);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kNone);
}

TEST(ModelConfigRope, BothFormsMustAgree) {
  nlohmann::json j = BaseConfig();
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = kLlama3Scaling;
  j["rope_parameters"] = kLlama3Scaling;
  j["rope_parameters"]["rope_theta"] = 500000.0;
  EXPECT_TRUE(Parse(j).ok()) << Parse(j).status().ToString();

  j["rope_parameters"]["rope_theta"] = 10000.0;
  auto theta = Parse(j);
  ASSERT_FALSE(theta.ok());
  EXPECT_NE(theta.status().message().find("'rope_theta' (500000.000000) and 'rope_parameters.rope_theta' (10000.000000) disagree"),
            std::string::npos) << theta.status().ToString();

  j["rope_parameters"]["rope_theta"] = 500000.0;
  j["rope_parameters"]["factor"] = 4.0;
  auto scaling = Parse(j);
  ASSERT_FALSE(scaling.ok());
  EXPECT_NE(scaling.status().message().find("describe different RoPE scalings"), std::string::npos)
      << scaling.status().ToString();
}

TEST(ModelConfigRope, WhatIsNotAppliedIsRefusedByName) {
  nlohmann::json per_layer = BaseConfig();  // Gemma 3's form: one RoPE per attention type
  per_layer["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e6}}},
                                  {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}};
  auto a = Parse(per_layer);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(a.status().message().find("'rope_parameters.full_attention' is not supported"), std::string::npos)
      << a.status().ToString();

  nlohmann::json partial = BaseConfig();
  partial["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e4}, {"partial_rotary_factor", 0.5}};
  auto b = Parse(partial);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("'rope_parameters.partial_rotary_factor' below 1"), std::string::npos)
      << b.status().ToString();

  nlohmann::json top_partial = BaseConfig();
  top_partial["partial_rotary_factor"] = 0.4;
  EXPECT_EQ(Parse(top_partial).status().code(), StatusCode::kUnimplemented);

  nlohmann::json no_theta = BaseConfig();
  no_theta["rope_parameters"] = {{"rope_type", "default"}};
  auto c = Parse(no_theta);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'rope_parameters' needs 'rope_theta'"), std::string::npos)
      << c.status().ToString();

  nlohmann::json unknown_type = BaseConfig();
  unknown_type["rope_parameters"] = {{"rope_type", "longrope"}, {"rope_theta", 1e4}, {"factor", 2.0}};
  auto d = Parse(unknown_type);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("unsupported rope_type 'longrope'"), std::string::npos) << d.status().ToString();
}

}  // namespace
}  // namespace bpt
