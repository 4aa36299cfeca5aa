#include "model_config.h"

#include <algorithm>
#include <iterator>
#include <limits>

#include "checked_math.h"
#include "json_fields.h"

namespace bpt {
namespace {

using namespace model_limits;

// Real configs are a few KB; the cap keeps a hostile one from filling memory before parsing.
constexpr size_t kMaxConfigBytes = 1 << 20;

constexpr NumberRange kFinite{-std::numeric_limits<double>::max(), std::numeric_limits<double>::max()};
// Multipliers and exponents of the RoPE scalings: any real one is far below the bound.
constexpr NumberRange kFactor{0.0, 1e6};

bool SupportedArchitecture(const std::string& a) {
  return a == "LlamaForCausalLM" || a == "MistralForCausalLM" || a == "Qwen2ForCausalLM";
}

Status Positive(const JsonFields& f, const char* key, double v) {
  if (v <= 0) return InvalidArgument(f.where() + ": '" + f.Name(key) + "' must be positive");
  return OkStatus();
}

// One RoPE scaling object: transformers 4.x's 'rope_scaling', or the scaling half of 5.x's
// 'rope_parameters' (key names which). "default" (or no object) is no scaling.
Status ParseRopeScalingObject(const JsonFields& rs, const std::string& key, RopeScaling* out) {
  // Older configs name the type 'type'; newer ones 'rope_type' (and may keep both).
  BPT_ASSIGN_OR_RETURN(std::optional<std::string> type, rs.OptionalString("rope_type"));
  if (!type) {
    BPT_ASSIGN_OR_RETURN(type, rs.OptionalString("type"));
  }
  if (!type) return InvalidArgument(rs.where() + ": '" + key + "' needs 'rope_type' (or 'type')");
  RopeScaling s;
  const std::string where = rs.where() + ": " + key;
  if (*type == "default") {
    *out = s;
    return OkStatus();
  }
  if (*type == "linear") s.type = RopeScalingType::kLinear;
  else if (*type == "dynamic") s.type = RopeScalingType::kDynamic;
  else if (*type == "llama3") s.type = RopeScalingType::kLlama3;
  else if (*type == "yarn") s.type = RopeScalingType::kYarn;
  else return InvalidArgument(where + ": unsupported rope_type '" + *type +
                              "' (supported: default, linear, dynamic, llama3, yarn)");
  BPT_ASSIGN_OR_RETURN(s.factor, rs.Number("factor", {1.0, 1e6}));
  BPT_ASSIGN_OR_RETURN(s.low_freq_factor, rs.NumberOr("low_freq_factor", s.low_freq_factor, kFactor));
  BPT_ASSIGN_OR_RETURN(s.high_freq_factor, rs.NumberOr("high_freq_factor", s.high_freq_factor, kFactor));
  BPT_ASSIGN_OR_RETURN(s.original_max_position_embeddings,
                       rs.IntOr("original_max_position_embeddings", 0, {1, kMaxPositions}, Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(s.beta_fast, rs.NumberOr("beta_fast", s.beta_fast, kFactor));
  BPT_ASSIGN_OR_RETURN(s.beta_slow, rs.NumberOr("beta_slow", s.beta_slow, kFactor));
  BPT_ASSIGN_OR_RETURN(s.attention_factor, rs.NumberOr("attention_factor", s.attention_factor, kFactor, Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(s.mscale, rs.NumberOr("mscale", s.mscale, kFinite, Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(s.mscale_all_dim, rs.NumberOr("mscale_all_dim", s.mscale_all_dim, kFinite, Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(s.truncate, rs.BoolOr("truncate", s.truncate));
  if (s.type == RopeScalingType::kLlama3) {
    if (s.original_max_position_embeddings == 0)
      return InvalidArgument(where + ": llama3 needs 'original_max_position_embeddings'");
    BPT_RETURN_IF_ERROR(Positive(rs, "low_freq_factor", s.low_freq_factor));
    if (s.high_freq_factor <= s.low_freq_factor)
      return InvalidArgument(where + ": 'high_freq_factor' must exceed 'low_freq_factor'");
  }
  if (s.type == RopeScalingType::kYarn) {  // their logarithms place the ramp
    BPT_RETURN_IF_ERROR(Positive(rs, "beta_fast", s.beta_fast));
    BPT_RETURN_IF_ERROR(Positive(rs, "beta_slow", s.beta_slow));
  }
  *out = s;
  return OkStatus();
}

bool SameScaling(const RopeScaling& a, const RopeScaling& b) {
  return a.type == b.type && a.factor == b.factor && a.low_freq_factor == b.low_freq_factor &&
         a.high_freq_factor == b.high_freq_factor &&
         a.original_max_position_embeddings == b.original_max_position_embeddings && a.beta_fast == b.beta_fast &&
         a.beta_slow == b.beta_slow && a.attention_factor == b.attention_factor && a.mscale == b.mscale &&
         a.mscale_all_dim == b.mscale_all_dim && a.truncate == b.truncate;
}

bool HasKey(const JsonFields& f, std::string_view key) {
  const std::vector<std::string> keys = f.Keys();
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// RoPE as transformers 4.x writes it (top-level 'rope_theta' and 'rope_scaling') or as 5.x does
// ('rope_parameters' holding rope_type, rope_theta and the scaling keys). A config may carry
// both forms (5.x keeps reading the old keys); then they must agree, since a silent choice
// between two frequencies is a wrong model. Every key of 'rope_parameters' must be one this
// code applies: an unknown one (a per-layer-type table, partial rotation) is an error naming it.
Status ParseRope(const JsonFields& f, ModelConfig* c) {
  const bool has_top_theta = HasKey(f, "rope_theta");
  BPT_ASSIGN_OR_RETURN(c->rope_theta, f.NumberOr("rope_theta", c->rope_theta, {1.0, 1e15}));
  // HF writes rope_scaling: null for models without scaling.
  BPT_ASSIGN_OR_RETURN(std::optional<JsonFields> scaling, f.OptionalObject("rope_scaling", Null::kAbsent));
  if (scaling) BPT_RETURN_IF_ERROR(ParseRopeScalingObject(*scaling, "rope_scaling", &c->rope_scaling));
  BPT_ASSIGN_OR_RETURN(std::optional<JsonFields> params, f.OptionalObject("rope_parameters", Null::kAbsent));
  if (params) {
    static constexpr std::string_view kApplied[] = {
        "rope_type", "type", "rope_theta", "factor", "low_freq_factor", "high_freq_factor",
        "original_max_position_embeddings", "beta_fast", "beta_slow", "attention_factor", "mscale",
        "mscale_all_dim", "truncate", "partial_rotary_factor"};
    for (const std::string& key : params->Keys())
      if (std::find(std::begin(kApplied), std::end(kApplied), key) == std::end(kApplied))
        return Unimplemented(params->where() + ": '" + params->Name(key) +
                             "' is not supported (bptserve applies one RoPE to every layer: rope_type, "
                             "rope_theta and the scaling keys)");
    BPT_ASSIGN_OR_RETURN(const double partial, params->NumberOr("partial_rotary_factor", 1.0, {0.0, 1.0}));
    if (partial != 1.0)
      return Unimplemented(params->where() + ": '" + params->Name("partial_rotary_factor") +
                           "' below 1 (partial rotation) is not supported");
    if (!HasKey(*params, "rope_theta") && !has_top_theta)
      return InvalidArgument(params->where() + ": 'rope_parameters' needs 'rope_theta'");
    BPT_ASSIGN_OR_RETURN(const double theta, params->NumberOr("rope_theta", c->rope_theta, {1.0, 1e15}));
    if (has_top_theta && theta != c->rope_theta)
      return InvalidArgument(f.where() + ": 'rope_theta' (" + std::to_string(c->rope_theta) +
                             ") and 'rope_parameters.rope_theta' (" + std::to_string(theta) + ") disagree");
    c->rope_theta = theta;
    RopeScaling from_params;
    BPT_RETURN_IF_ERROR(ParseRopeScalingObject(*params, "rope_parameters", &from_params));
    if (scaling && !SameScaling(c->rope_scaling, from_params))
      return InvalidArgument(f.where() + ": 'rope_scaling' and 'rope_parameters' describe different RoPE scalings");
    c->rope_scaling = from_params;
  }
  BPT_ASSIGN_OR_RETURN(const double partial, f.NumberOr("partial_rotary_factor", 1.0, {0.0, 1.0}));
  if (partial != 1.0)
    return Unimplemented(f.where() + ": 'partial_rotary_factor' below 1 (partial rotation) is not supported");
  return OkStatus();
}

// Token ids are checked against the vocabulary once it is known.
Status ReadTokenIds(const JsonFields& config, const char* key, int vocab_size, std::vector<int>* out) {
  BPT_ASSIGN_OR_RETURN(std::vector<int64_t> ids, config.IntOrIntList(key, {0, kMaxVocabSize - 1}, Null::kAbsent));
  for (int64_t id : ids) {
    if (id >= vocab_size)
      return InvalidArgument(config.where() + ": '" + key + "' " + std::to_string(id) + " >= vocab_size");
    out->push_back(static_cast<int>(id));
  }
  return OkStatus();
}

// Sizes derived from several fields, each bounded on its own: their products must fit too.
Status CheckDerivedSizes(const ModelConfig& c, const std::string& source) {
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim;  // both at most 1024
  if (q_dim > kMaxAttentionDim)
    return InvalidArgument(source + ": 'num_attention_heads' x 'head_dim' = " + std::to_string(q_dim) +
                           " exceeds the limit of " + std::to_string(kMaxAttentionDim));
  const int64_t h = c.hidden_size, kv = int64_t{c.num_kv_heads} * c.head_dim, f = c.intermediate_size;
  const std::optional<int64_t> per_layer = CheckedSum({CheckedProduct({CheckedSum({q_dim, 2 * kv}), h}),
                                                       CheckedProduct({h, q_dim}), CheckedProduct({3, f, h}), 2 * h});
  const std::optional<int64_t> total =
      CheckedSum({CheckedProduct({c.num_layers, per_layer}),
                  CheckedProduct({c.tie_word_embeddings ? 1 : 2, c.vocab_size, h}), h});
  if (!total || *total > kMaxParameters)
    return InvalidArgument(source + ": the config describes " +
                           (total ? std::to_string(*total) : std::string("more than 2^63")) +
                           " parameters, more than the limit of " + std::to_string(kMaxParameters));
  return OkStatus();
}

StatusOr<ModelConfig> FromJson(const nlohmann::json& j, const std::string& source) {
  BPT_ASSIGN_OR_RETURN(JsonFields f, JsonFields::Of(j, source));

  ModelConfig c;
  BPT_ASSIGN_OR_RETURN(std::vector<std::string> architectures, f.StringList("architectures"));
  if (architectures.empty()) return InvalidArgument(source + ": 'architectures' is empty");
  c.architecture = architectures[0];
  if (!SupportedArchitecture(c.architecture))
    return InvalidArgument(source + ": unknown architecture '" + c.architecture +
                           "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");

  // Each integer is range-checked in 64 bits, so the narrowing to int below cannot truncate.
  BPT_ASSIGN_OR_RETURN(const int64_t vocab_size, f.Int("vocab_size", {1, kMaxVocabSize}));
  BPT_ASSIGN_OR_RETURN(const int64_t hidden_size, f.Int("hidden_size", {1, kMaxHiddenSize}));
  BPT_ASSIGN_OR_RETURN(const int64_t intermediate_size, f.Int("intermediate_size", {1, kMaxIntermediateSize}));
  BPT_ASSIGN_OR_RETURN(const int64_t num_layers, f.Int("num_hidden_layers", {1, kMaxLayers}));
  BPT_ASSIGN_OR_RETURN(const int64_t num_heads, f.Int("num_attention_heads", {1, kMaxHeads}));
  BPT_ASSIGN_OR_RETURN(const int64_t num_kv_heads, f.IntOr("num_key_value_heads", num_heads, {1, kMaxHeads}));
  // null: derived from hidden_size, as when absent.
  BPT_ASSIGN_OR_RETURN(const int64_t head_dim, f.IntOr("head_dim", 0, {1, kMaxHeadDim}, Null::kAbsent));
  c.vocab_size = static_cast<int>(vocab_size);
  c.hidden_size = static_cast<int>(hidden_size);
  c.intermediate_size = static_cast<int>(intermediate_size);
  c.num_layers = static_cast<int>(num_layers);
  c.num_heads = static_cast<int>(num_heads);
  c.num_kv_heads = static_cast<int>(num_kv_heads);
  c.head_dim = static_cast<int>(head_dim);

  BPT_ASSIGN_OR_RETURN(c.rms_norm_eps, f.NumberOr("rms_norm_eps", c.rms_norm_eps, {0.0, 1.0}));
  BPT_ASSIGN_OR_RETURN(c.max_position_embeddings,
                       f.IntOr("max_position_embeddings", c.max_position_embeddings, {1, kMaxPositions}));
  BPT_RETURN_IF_ERROR(ParseRope(f, &c));
  BPT_RETURN_IF_ERROR(ReadTokenIds(f, "bos_token_id", c.vocab_size, &c.bos_token_ids));
  BPT_RETURN_IF_ERROR(ReadTokenIds(f, "eos_token_id", c.vocab_size, &c.eos_token_ids));
  BPT_ASSIGN_OR_RETURN(c.tie_word_embeddings, f.BoolOr("tie_word_embeddings", false));

  if (c.architecture == "Qwen2ForCausalLM") {
    c.qkv_bias = true;
    BPT_ASSIGN_OR_RETURN(const bool sliding, f.BoolOr("use_sliding_window", false));
    if (sliding) return Unimplemented(source + ": Qwen2 'use_sliding_window': true is not supported");
  } else {
    BPT_ASSIGN_OR_RETURN(const bool attention_bias, f.BoolOr("attention_bias", false));
    c.qkv_bias = c.o_bias = attention_bias;
  }
  BPT_ASSIGN_OR_RETURN(const bool mlp_bias, f.BoolOr("mlp_bias", false));
  if (mlp_bias) return Unimplemented(source + ": 'mlp_bias': true is not supported");
  // null: full attention (Mistral v0.2 and later).
  if (c.architecture == "MistralForCausalLM") {
    BPT_ASSIGN_OR_RETURN(c.sliding_window, f.IntOr("sliding_window", 0, {0, kMaxPositions}, Null::kAbsent));
  }

  if (c.num_heads % c.num_kv_heads != 0)
    return InvalidArgument(source + ": 'num_attention_heads' (" + std::to_string(c.num_heads) +
                           ") must be a multiple of 'num_key_value_heads' (" +
                           std::to_string(c.num_kv_heads) + ")");
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_heads != 0)
      return InvalidArgument(source + ": 'hidden_size' must be a multiple of 'num_attention_heads'");
    c.head_dim = c.hidden_size / c.num_heads;
    if (c.head_dim > kMaxHeadDim)
      return InvalidArgument(source + ": 'hidden_size' / 'num_attention_heads' = " + std::to_string(c.head_dim) +
                             " exceeds the head_dim limit of " + std::to_string(kMaxHeadDim));
  }
  if (c.head_dim % 2 != 0) return InvalidArgument(source + ": 'head_dim' must be even for RoPE");
  if (c.rms_norm_eps <= 0) return InvalidArgument(source + ": 'rms_norm_eps' must be positive");
  if (c.rope_theta <= 1.0) return InvalidArgument(source + ": 'rope_theta' must exceed 1");
  BPT_RETURN_IF_ERROR(CheckDerivedSizes(c, source));
  return c;
}

}  // namespace

StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& source) {
  BPT_ASSIGN_OR_RETURN(nlohmann::json j, ParseJsonObject(json_text, source));
  return FromJson(j, source);
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  StatusOr<nlohmann::json> j = ReadJsonFile(path, kMaxConfigBytes);
  if (j.status().code() == StatusCode::kNotFound)
    return NotFound("model directory '" + model_dir + "' has no readable config.json (" + j.status().message() + ")");
  if (!j.ok()) return j.status();
  return FromJson(*j, path);
}

}  // namespace bpt
