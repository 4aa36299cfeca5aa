#include "engine/model_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace bpt {
namespace {

using nlohmann::json;

bool SupportedArchitecture(const std::string& a) {
  return a == "LlamaForCausalLM" || a == "MistralForCausalLM" || a == "Qwen2ForCausalLM";
}

// Reads an optional numeric field; errors name the field and the file.
Status ReadNumber(const json& j, const char* key, const std::string& source, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  if (!it->is_number()) return InvalidArgument(source + ": '" + key + "' must be a number");
  double v = it->get<double>();
  if (!std::isfinite(v)) return InvalidArgument(source + ": '" + key + "' is not finite");
  *out = v;
  return OkStatus();
}

template <typename Int>
Status ReadInt(const json& j, const char* key, const std::string& source, bool required, Int* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return InvalidArgument(source + ": missing required field '" + key + "'");
    return OkStatus();
  }
  if (it->is_number_float()) {
    double v = it->get<double>();
    if (!std::isfinite(v)) return InvalidArgument(source + ": '" + key + "' is not finite");
    return InvalidArgument(source + ": '" + key + "' must be an integer");
  }
  if (!it->is_number_integer()) return InvalidArgument(source + ": '" + key + "' must be an integer");
  *out = static_cast<Int>(it->get<int64_t>());
  return OkStatus();
}

Status ReadTokenIds(const json& j, const char* key, const std::string& source,
                    std::vector<int>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  auto read_one = [&](const json& v) -> Status {
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      return InvalidArgument(source + ": '" + key + "' must be a non-negative integer or a list of them");
    out->push_back(static_cast<int>(v.get<int64_t>()));
    return OkStatus();
  };
  if (it->is_array()) {
    for (const auto& v : *it) BPT_RETURN_IF_ERROR(read_one(v));
    return OkStatus();
  }
  return read_one(*it);
}

Status ParseRopeScaling(const json& j, const std::string& source, ModelConfig* c) {
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return OkStatus();
  if (!it->is_object()) return InvalidArgument(source + ": 'rope_scaling' must be an object or null");
  const json& rs = *it;
  std::string type;
  if (rs.contains("rope_type") && rs["rope_type"].is_string()) type = rs["rope_type"];
  else if (rs.contains("type") && rs["type"].is_string()) type = rs["type"];
  else return InvalidArgument(source + ": 'rope_scaling' needs 'rope_type' (or 'type')");
  RopeScaling& s = c->rope_scaling;
  const std::string where = source + ": rope_scaling";
  if (type == "default") return OkStatus();
  if (type == "linear") s.type = RopeScalingType::kLinear;
  else if (type == "dynamic") s.type = RopeScalingType::kDynamic;
  else if (type == "llama3") s.type = RopeScalingType::kLlama3;
  else if (type == "yarn") s.type = RopeScalingType::kYarn;
  else return InvalidArgument(where + ": unsupported rope_type '" + type +
                              "' (supported: default, linear, dynamic, llama3, yarn)");
  if (!rs.contains("factor")) return InvalidArgument(where + ": missing 'factor'");
  BPT_RETURN_IF_ERROR(ReadNumber(rs, "factor", where, &s.factor));
  if (s.factor < 1.0) return InvalidArgument(where + ": 'factor' must be >= 1");
  BPT_RETURN_IF_ERROR(ReadNumber(rs, "low_freq_factor", where, &s.low_freq_factor));
  BPT_RETURN_IF_ERROR(ReadNumber(rs, "high_freq_factor", where, &s.high_freq_factor));
  BPT_RETURN_IF_ERROR(ReadInt(rs, "original_max_position_embeddings", where, false,
                              &s.original_max_position_embeddings));
  BPT_RETURN_IF_ERROR(ReadNumber(rs, "beta_fast", where, &s.beta_fast));
  BPT_RETURN_IF_ERROR(ReadNumber(rs, "beta_slow", where, &s.beta_slow));
  BPT_RETURN_IF_ERROR(ReadNumber(rs, "attention_factor", where, &s.attention_factor));
  BPT_RETURN_IF_ERROR(ReadNumber(rs, "mscale", where, &s.mscale));
  BPT_RETURN_IF_ERROR(ReadNumber(rs, "mscale_all_dim", where, &s.mscale_all_dim));
  if (rs.contains("truncate") && rs["truncate"].is_boolean()) s.truncate = rs["truncate"];
  if (s.type == RopeScalingType::kLlama3) {
    if (!rs.contains("original_max_position_embeddings"))
      return InvalidArgument(where + ": llama3 needs 'original_max_position_embeddings'");
    if (s.high_freq_factor <= s.low_freq_factor)
      return InvalidArgument(where + ": 'high_freq_factor' must exceed 'low_freq_factor'");
  }
  return OkStatus();
}

}  // namespace

StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& source) {
  json j;
  try {  // the parser's own message says where the text went wrong
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    const std::string what = e.what();
    // Python's json module writes NaN and Infinity; too large a literal overflows to infinity.
    if (json_text.find("NaN") != std::string::npos || json_text.find("Infinity") != std::string::npos ||
        what.find("overflow") != std::string::npos)
      return InvalidArgument(source + ": holds a non-finite number (NaN, Infinity or out of range); config values must be finite (" + what + ")");
    return InvalidArgument(source + ": not valid JSON (" + what + ")");
  }
  if (!j.is_object()) return InvalidArgument(source + ": top level must be a JSON object");

  ModelConfig c;
  auto arch = j.find("architectures");
  if (arch == j.end() || !arch->is_array() || arch->empty() || !(*arch)[0].is_string())
    return InvalidArgument(source + ": missing 'architectures'");
  c.architecture = (*arch)[0].get<std::string>();
  if (!SupportedArchitecture(c.architecture))
    return InvalidArgument(source + ": unknown architecture '" + c.architecture +
                           "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");

  BPT_RETURN_IF_ERROR(ReadInt(j, "vocab_size", source, true, &c.vocab_size));
  BPT_RETURN_IF_ERROR(ReadInt(j, "hidden_size", source, true, &c.hidden_size));
  BPT_RETURN_IF_ERROR(ReadInt(j, "intermediate_size", source, true, &c.intermediate_size));
  BPT_RETURN_IF_ERROR(ReadInt(j, "num_hidden_layers", source, true, &c.num_layers));
  BPT_RETURN_IF_ERROR(ReadInt(j, "num_attention_heads", source, true, &c.num_heads));
  c.num_kv_heads = c.num_heads;
  BPT_RETURN_IF_ERROR(ReadInt(j, "num_key_value_heads", source, false, &c.num_kv_heads));
  BPT_RETURN_IF_ERROR(ReadInt(j, "head_dim", source, false, &c.head_dim));
  BPT_RETURN_IF_ERROR(ReadNumber(j, "rms_norm_eps", source, &c.rms_norm_eps));
  BPT_RETURN_IF_ERROR(ReadNumber(j, "rope_theta", source, &c.rope_theta));
  BPT_RETURN_IF_ERROR(ReadInt(j, "max_position_embeddings", source, false, &c.max_position_embeddings));
  BPT_RETURN_IF_ERROR(ParseRopeScaling(j, source, &c));
  BPT_RETURN_IF_ERROR(ReadTokenIds(j, "bos_token_id", source, &c.bos_token_ids));
  BPT_RETURN_IF_ERROR(ReadTokenIds(j, "eos_token_id", source, &c.eos_token_ids));
  if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean())
    c.tie_word_embeddings = j["tie_word_embeddings"];

  if (c.architecture == "Qwen2ForCausalLM") {
    c.qkv_bias = true;
    if (j.value("use_sliding_window", false))
      return Unimplemented(source + ": Qwen2 'use_sliding_window': true is not supported");
  } else if (j.value("attention_bias", false)) {
    c.qkv_bias = c.o_bias = true;
  }
  if (j.value("mlp_bias", false)) return Unimplemented(source + ": 'mlp_bias': true is not supported");
  if (c.architecture == "MistralForCausalLM")
    BPT_RETURN_IF_ERROR(ReadInt(j, "sliding_window", source, false, &c.sliding_window));

  auto positive = [&](int64_t v, const char* name) -> Status {
    if (v <= 0) return InvalidArgument(source + ": '" + name + "' must be positive, got " + std::to_string(v));
    return OkStatus();
  };
  BPT_RETURN_IF_ERROR(positive(c.vocab_size, "vocab_size"));
  BPT_RETURN_IF_ERROR(positive(c.hidden_size, "hidden_size"));
  BPT_RETURN_IF_ERROR(positive(c.intermediate_size, "intermediate_size"));
  BPT_RETURN_IF_ERROR(positive(c.num_layers, "num_hidden_layers"));
  BPT_RETURN_IF_ERROR(positive(c.num_heads, "num_attention_heads"));
  BPT_RETURN_IF_ERROR(positive(c.num_kv_heads, "num_key_value_heads"));
  BPT_RETURN_IF_ERROR(positive(c.max_position_embeddings, "max_position_embeddings"));
  if (c.sliding_window < 0) return InvalidArgument(source + ": 'sliding_window' must not be negative");
  if (c.num_heads % c.num_kv_heads != 0)
    return InvalidArgument(source + ": 'num_attention_heads' (" + std::to_string(c.num_heads) +
                           ") must be a multiple of 'num_key_value_heads' (" +
                           std::to_string(c.num_kv_heads) + ")");
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_heads != 0)
      return InvalidArgument(source + ": 'hidden_size' must be a multiple of 'num_attention_heads'");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  BPT_RETURN_IF_ERROR(positive(c.head_dim, "head_dim"));
  if (c.head_dim % 2 != 0) return InvalidArgument(source + ": 'head_dim' must be even for RoPE");
  if (c.rms_norm_eps <= 0) return InvalidArgument(source + ": 'rms_norm_eps' must be positive");
  if (c.rope_theta <= 1.0) return InvalidArgument(source + ": 'rope_theta' must exceed 1");
  for (int id : c.bos_token_ids)
    if (id >= c.vocab_size) return InvalidArgument(source + ": 'bos_token_id' " + std::to_string(id) + " >= vocab_size");
  for (int id : c.eos_token_ids)
    if (id >= c.vocab_size) return InvalidArgument(source + ": 'eos_token_id' " + std::to_string(id) + " >= vocab_size");
  return c;
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("model directory '" + model_dir + "' has no readable config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseModelConfig(ss.str(), path);
}

}  // namespace bpt
