// Corrupted model directories, one table row each: a valid small model is written, one thing in
// it is broken, and loading must give a clean error Status whose message names the problem (the
// key, the tensor or the file). Rows that expect kOk are valid variations that must still load.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "engine.h"
#include "safetensors.h"
#include "proc_status.h"
#include "test_models.h"

namespace bpt {
namespace {

using nlohmann::json;
using testing::TempDir;
namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A safetensors file split into its parts, to be edited and written back.
struct Safetensors {
  json header;
  std::string data;
};

Safetensors ReadSafetensors(const std::string& path) {
  const std::string bytes = ReadFile(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  return {json::parse(bytes.substr(8, header_len)), bytes.substr(8 + header_len)};
}

// Writes the header as given, padded with `padding` spaces, with its true length.
void WriteSafetensors(const std::string& path, const Safetensors& st, size_t padding = 0) {
  const std::string text = st.header.dump() + std::string(padding, ' ');
  const uint64_t header_len = text.size();
  WriteFile(path, std::string(reinterpret_cast<const char*>(&header_len), 8) + text + st.data);
}

void SetHeaderLength(const std::string& path, uint64_t header_len) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.write(reinterpret_cast<const char*>(&header_len), 8);
}

uint64_t HeaderLength(const std::string& path) {
  uint64_t header_len = 0;
  std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(&header_len), 8);
  return header_len;
}

// Edits of the model directory a row applies to the valid model.
using Corruption = std::function<void(const std::string& dir)>;

json ConfigOf(const std::string& dir) { return json::parse(ReadFile(dir + "/config.json")); }

Corruption SetKey(const std::string& key, json value) {
  return [=](const std::string& dir) {
    json c = ConfigOf(dir);
    c[key] = value;
    WriteFile(dir + "/config.json", c.dump());
  };
}

Corruption EraseKey(const std::string& key) {
  return [=](const std::string& dir) {
    json c = ConfigOf(dir);
    c.erase(key);
    WriteFile(dir + "/config.json", c.dump());
  };
}

// Writes `value` for `key` as raw text: numbers nlohmann::json would not write (2^64, 1e999).
Corruption SetKeyText(const std::string& key, const std::string& text) {
  return [=](const std::string& dir) {
    json c = ConfigOf(dir);
    c[key] = "@@";
    std::string dumped = c.dump();
    dumped.replace(dumped.find("\"@@\""), 4, text);
    WriteFile(dir + "/config.json", dumped);
  };
}

Corruption ConfigText(const std::string& text) {
  return [=](const std::string& dir) { WriteFile(dir + "/config.json", text); };
}

Corruption EditHeader(std::function<void(json&)> edit, const std::string& file = "model.safetensors") {
  return [=](const std::string& dir) {
    Safetensors st = ReadSafetensors(dir + "/" + file);
    edit(st.header);
    WriteSafetensors(dir + "/" + file, st);
  };
}

Corruption EditSafetensors(std::function<void(Safetensors&)> edit, const std::string& file = "model.safetensors") {
  return [=](const std::string& dir) {
    Safetensors st = ReadSafetensors(dir + "/" + file);
    edit(st);
    WriteSafetensors(dir + "/" + file, st);
  };
}

Corruption EditIndex(std::function<void(json&)> edit) {
  return [=](const std::string& dir) {
    json index = json::parse(ReadFile(dir + "/model.safetensors.index.json"));
    edit(index);
    WriteFile(dir + "/model.safetensors.index.json", index.dump());
  };
}

Corruption MakeDirectory(const std::string& name) {
  return [=](const std::string& dir) {
    fs::remove(dir + "/" + name);
    fs::create_directory(dir + "/" + name);
  };
}

Corruption Both(Corruption a, Corruption b) {
  return [=](const std::string& dir) {
    a(dir);
    b(dir);
  };
}

constexpr int64_t k2To31 = int64_t{1} << 31;
constexpr int64_t k2To32 = int64_t{1} << 32;

const char* const kNorm0 = "model.layers.0.input_layernorm.weight";

struct Row {
  std::string name;
  Corruption corrupt;
  StatusCode code;       // kOk: must load
  std::string fragment;  // the message must contain it
  json config = testing::SmallConfig();
  int shards = 1;
  DType dtype = DType::kF32;
};

json Qwen2Config() {
  json c = testing::SmallConfig();
  c["architectures"] = {"Qwen2ForCausalLM"};
  return c;
}

json MistralConfig() {
  json c = testing::SmallConfig();
  c["architectures"] = {"MistralForCausalLM"};
  return c;
}

json Config(std::initializer_list<std::pair<const std::string, json>> overrides) {
  json c = testing::SmallConfig();
  for (const auto& [k, v] : overrides) c[k] = v;
  return c;
}

const StatusCode kOk = StatusCode::kOk;
const StatusCode kBad = StatusCode::kInvalidArgument;
const StatusCode kLoss = StatusCode::kDataLoss;
const StatusCode kMissing = StatusCode::kNotFound;
const StatusCode kUnsupported = StatusCode::kUnimplemented;

std::vector<Row> Rows() {
  std::vector<Row> rows = {
      // Valid variations.
      {"valid_f32", nullptr, kOk, ""},
      {"valid_bf16", nullptr, kOk, "", testing::SmallConfig(), 1, DType::kBF16},
      {"valid_f16", nullptr, kOk, "", testing::SmallConfig(), 1, DType::kF16},
      {"valid_two_shards", nullptr, kOk, "", testing::SmallConfig(), 2},
      {"valid_three_shards", nullptr, kOk, "", testing::SmallConfig(), 3, DType::kBF16},
      {"valid_tied_embeddings", nullptr, kOk, "", Config({{"tie_word_embeddings", true}})},
      {"valid_llama_attention_bias", nullptr, kOk, "", Config({{"attention_bias", true}})},
      {"valid_qwen2_biases", nullptr, kOk, "", Qwen2Config()},
      {"valid_qwen2_use_sliding_window_false", SetKey("use_sliding_window", false), kOk, "", Qwen2Config()},
      {"valid_mistral_sliding_window", nullptr, kOk, "", [] { json c = MistralConfig(); c["sliding_window"] = 16; return c; }()},
      {"valid_mistral_sliding_window_null", SetKey("sliding_window", nullptr), kOk, "", MistralConfig()},
      {"valid_head_dim_null", SetKey("head_dim", nullptr), kOk, ""},
      {"valid_rope_scaling_null", SetKey("rope_scaling", nullptr), kOk, ""},
      {"valid_rope_scaling_linear", SetKey("rope_scaling", {{"type", "linear"}, {"factor", 2.0}}), kOk, ""},
      {"valid_bos_token_id_null", SetKey("bos_token_id", nullptr), kOk, ""},
      {"valid_eos_token_id_list", SetKey("eos_token_id", {2, 3}), kOk, ""},
      {"valid_mlp_bias_false", SetKey("mlp_bias", false), kOk, ""},
      {"valid_unknown_keys", Both(SetKey("torch_dtype", "bfloat16"), SetKey("quantization", {{"bits", "x"}})), kOk, ""},
      {"valid_rms_norm_eps_integer", SetKey("rms_norm_eps", 1), kOk, ""},
      {"valid_header_padding", EditSafetensors([](Safetensors& st) {}), kOk, ""},
      {"valid_header_without_metadata", EditHeader([](json& h) { h.erase("__metadata__"); }), kOk, ""},
      {"valid_extra_unused_tensor", EditSafetensors([](Safetensors& st) {
         const uint64_t end = st.data.size();
         st.header["rotary_emb.inv_freq"] = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {end, end + 8}}};
         st.data += std::string(8, '\0');
       }), kOk, ""},
      {"valid_empty_tensor", EditHeader([](json& h) {
         h["empty"] = {{"dtype", "BF16"}, {"shape", {0, 5}}, {"data_offsets", {0, 0}}};
       }), kOk, ""},

      // The attacker's aborts: a wrong JSON type where a bool belongs.
      {"attention_bias_0", SetKey("attention_bias", 0), kBad, "'attention_bias' must be true or false, got 0"},
      {"mlp_bias_null", SetKey("mlp_bias", nullptr), kBad, "'mlp_bias' is null"},
      {"use_sliding_window_string", SetKey("use_sliding_window", "false"), kBad,
       "'use_sliding_window' must be true or false, got \"false\"", Qwen2Config()},
      {"tie_word_embeddings_string", SetKey("tie_word_embeddings", "true"), kBad, "'tie_word_embeddings' must be true or false"},
      {"mlp_bias_true", SetKey("mlp_bias", true), kUnsupported, "'mlp_bias': true is not supported"},
      {"use_sliding_window_true", SetKey("use_sliding_window", true), kUnsupported, "'use_sliding_window': true", Qwen2Config()},
      // ... and the sizes that allocated before failing.
      {"num_hidden_layers_1e8", SetKey("num_hidden_layers", 100000000), kBad, "'num_hidden_layers' must be in [1, 1024], got 100000000"},
      {"num_hidden_layers_1e7", SetKey("num_hidden_layers", 10000000), kBad, "'num_hidden_layers' must be in [1, 1024]"},
      {"hidden_size_1e9", SetKey("hidden_size", 1000000000), kBad, "'hidden_size' must be in [1, 65536], got 1000000000"},
      {"hidden_size_1e9_derived_head_dim", Both(EraseKey("head_dim"), SetKey("hidden_size", 1000000000)), kBad,
       "'hidden_size' must be in [1, 65536], got 1000000000"},
      {"head_dim_2^21", SetKey("head_dim", 1 << 21), kBad, "'head_dim' must be in [1, 1024], got 2097152"},
      // Silent truncation to int.
      {"num_hidden_layers_2^32+2", SetKey("num_hidden_layers", k2To32 + 2), kBad, "'num_hidden_layers' must be in [1, 1024], got 4294967298"},
      {"vocab_size_2^32+97", SetKey("vocab_size", k2To32 + 97), kBad, "'vocab_size' must be in [1, 4194304], got 4294967393"},
      {"intermediate_size_2^31", SetKey("intermediate_size", k2To31), kBad, "'intermediate_size' must be in [1, 262144], got 2147483648"},
      {"num_attention_heads_2^32", SetKey("num_attention_heads", k2To32), kBad, "'num_attention_heads' must be in [1, 1024]"},
      {"num_hidden_layers_2^63", SetKeyText("num_hidden_layers", "9223372036854775808"), kBad, "'num_hidden_layers' must be in [1, 1024], got 9223372036854775808"},
      {"vocab_size_2^64", SetKeyText("vocab_size", "18446744073709551616"), kBad, "'vocab_size' must be an integer"},
      {"max_position_embeddings_2^63-1", SetKey("max_position_embeddings", INT64_MAX), kBad, "'max_position_embeddings' must be in [1, 134217728]"},
      // heads x head_dim overflowing int.
      {"heads_x_head_dim_overflow", Both(SetKey("num_attention_heads", 1024), Both(SetKey("num_key_value_heads", 1024), SetKey("head_dim", 1024))),
       kBad, "'num_attention_heads' x 'head_dim' = 1048576 exceeds the limit"},
      {"head_dim_65536", Both(SetKey("num_attention_heads", 65536), SetKey("head_dim", 65536)), kBad, "'num_attention_heads' must be in"},
      {"derived_head_dim_too_large", Both(SetKey("head_dim", nullptr), Both(SetKey("hidden_size", 65536), SetKey("num_attention_heads", 2))),
       kBad, "'hidden_size' / 'num_attention_heads' = 32768 exceeds the head_dim limit"},
      {"parameters_over_limit", Both(SetKey("hidden_size", 65536), Both(SetKey("intermediate_size", 262144), SetKey("num_hidden_layers", 1024))),
       kBad, "parameters, more than the limit"},
      // Negative and zero.
      {"vocab_size_negative", SetKey("vocab_size", -1), kBad, "'vocab_size' must be in [1, "},
      {"hidden_size_zero", SetKey("hidden_size", 0), kBad, "'hidden_size' must be in [1, "},
      {"num_key_value_heads_zero", SetKey("num_key_value_heads", 0), kBad, "'num_key_value_heads' must be in [1, "},
      {"head_dim_negative", SetKey("head_dim", -12), kBad, "'head_dim' must be in [1, "},
      {"head_dim_odd", Both(SetKey("head_dim", 11), SetKey("num_attention_heads", 4)), kBad, "'head_dim' must be even"},
      {"max_position_embeddings_zero", SetKey("max_position_embeddings", 0), kBad, "'max_position_embeddings' must be in [1, "},
      {"sliding_window_negative", SetKey("sliding_window", -1), kBad, "'sliding_window' must be in [0, ", MistralConfig()},
      {"kv_heads_not_dividing", SetKey("num_key_value_heads", 3), kBad, "multiple of 'num_key_value_heads'"},
      // Wrong JSON types.
      {"vocab_size_string", SetKey("vocab_size", "97"), kBad, "'vocab_size' must be an integer, got \"97\""},
      {"hidden_size_float", SetKey("hidden_size", 48.5), kBad, "'hidden_size' must be an integer, got 48.5"},
      {"num_hidden_layers_bool", SetKey("num_hidden_layers", true), kBad, "'num_hidden_layers' must be an integer, got true"},
      {"intermediate_size_null", SetKey("intermediate_size", nullptr), kBad, "required field 'intermediate_size' is null"},
      {"num_attention_heads_list", SetKey("num_attention_heads", {4}), kBad, "'num_attention_heads' must be an integer, got [4]"},
      {"num_key_value_heads_object", SetKey("num_key_value_heads", json::object()), kBad, "'num_key_value_heads' must be an integer"},
      {"head_dim_string", SetKey("head_dim", "12"), kBad, "'head_dim' must be an integer"},
      {"max_position_embeddings_float", SetKey("max_position_embeddings", 4096.0), kBad, "'max_position_embeddings' must be an integer"},
      {"rms_norm_eps_string", SetKey("rms_norm_eps", "1e-5"), kBad, "'rms_norm_eps' must be a number"},
      {"rms_norm_eps_null", SetKey("rms_norm_eps", nullptr), kBad, "'rms_norm_eps' is null"},
      {"rms_norm_eps_negative", SetKey("rms_norm_eps", -1e-5), kBad, "'rms_norm_eps' must be in [0, 1]"},
      {"rms_norm_eps_zero", SetKey("rms_norm_eps", 0), kBad, "'rms_norm_eps' must be positive"},
      {"rope_theta_bool", SetKey("rope_theta", false), kBad, "'rope_theta' must be a number, got false"},
      {"rope_theta_one", SetKey("rope_theta", 1.0), kBad, "'rope_theta' must exceed 1"},
      {"rope_theta_huge", SetKey("rope_theta", 1e300), kBad, "'rope_theta' must be in [1, 1e+15]"},
      {"rope_theta_nan", SetKeyText("rope_theta", "NaN"), kBad, "non-finite"},
      {"rope_theta_infinity", SetKeyText("rope_theta", "-Infinity"), kBad, "non-finite"},
      {"rms_norm_eps_overflow", SetKeyText("rms_norm_eps", "1e999"), kBad, "non-finite"},
      {"sliding_window_string", SetKey("sliding_window", "4096"), kBad, "'sliding_window' must be an integer", MistralConfig()},
      {"architectures_string", SetKey("architectures", "LlamaForCausalLM"), kBad, "'architectures' must be a list of strings"},
      {"architectures_empty", SetKey("architectures", json::array()), kBad, "'architectures' is empty"},
      {"architectures_number", SetKey("architectures", {7}), kBad, "'architectures[0]' must be a string, got 7"},
      {"architectures_missing", EraseKey("architectures"), kBad, "missing required field 'architectures'"},
      {"architecture_unknown", SetKey("architectures", {"GPT2LMHeadModel"}), kBad, "unknown architecture 'GPT2LMHeadModel'"},
      {"vocab_size_missing", EraseKey("vocab_size"), kBad, "missing required field 'vocab_size'"},
      {"bos_token_id_negative", SetKey("bos_token_id", -1), kBad, "'bos_token_id' must be in [0, "},
      {"bos_token_id_string", SetKey("bos_token_id", "1"), kBad, "'bos_token_id' must be an integer or a list of integers"},
      {"eos_token_id_list_with_string", SetKey("eos_token_id", {2, "3"}), kBad, "'eos_token_id[1]' must be an integer, got \"3\""},
      {"eos_token_id_at_vocab_size", SetKey("eos_token_id", 97), kBad, "'eos_token_id' 97 >= vocab_size"},
      {"eos_token_id_2^32+1", SetKey("eos_token_id", k2To32 + 1), kBad, "'eos_token_id' must be in [0, "},
      {"rope_scaling_string", SetKey("rope_scaling", "linear"), kBad, "'rope_scaling' must be an object, got \"linear\""},
      {"rope_scaling_type_number", SetKey("rope_scaling", {{"rope_type", 3}, {"factor", 2.0}}), kBad, "'rope_scaling.rope_type' must be a string"},
      {"rope_scaling_no_type", SetKey("rope_scaling", {{"factor", 2.0}}), kBad, "'rope_scaling' needs 'rope_type'"},
      {"rope_scaling_unsupported", SetKey("rope_scaling", {{"rope_type", "su"}, {"factor", 2.0}}), kBad, "unsupported rope_type 'su'"},
      {"rope_scaling_factor_string", SetKey("rope_scaling", {{"type", "linear"}, {"factor", "2"}}), kBad, "'rope_scaling.factor' must be a number"},
      {"rope_scaling_factor_missing", SetKey("rope_scaling", {{"type", "linear"}}), kBad, "missing required field 'rope_scaling.factor'"},
      {"rope_scaling_factor_below_1", SetKey("rope_scaling", {{"type", "linear"}, {"factor", 0.5}}), kBad, "'rope_scaling.factor' must be in [1, "},
      {"rope_scaling_truncate_string", SetKey("rope_scaling", {{"rope_type", "yarn"}, {"factor", 2.0}, {"truncate", "no"}}), kBad,
       "'rope_scaling.truncate' must be true or false"},
      {"rope_scaling_yarn_beta_zero", SetKey("rope_scaling", {{"rope_type", "yarn"}, {"factor", 2.0}, {"beta_slow", 0}}), kBad,
       "'rope_scaling.beta_slow' must be positive"},
      {"rope_scaling_llama3_no_original", SetKey("rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}), kBad,
       "llama3 needs 'original_max_position_embeddings'"},
      {"rope_scaling_original_max_2^40", SetKey("rope_scaling", {{"rope_type", "yarn"}, {"factor", 2.0}, {"original_max_position_embeddings", int64_t{1} << 40}}),
       kBad, "'rope_scaling.original_max_position_embeddings' must be in [1, "},
      // config.json itself.
      {"config_not_json", ConfigText("{ not json"), kBad, "config.json: not valid JSON"},
      {"config_empty", ConfigText(""), kBad, "config.json: not valid JSON"},
      {"config_array", ConfigText("[1, 2]"), kBad, "config.json: top level must be a JSON object"},
      {"config_truncated", [](const std::string& dir) {
         const std::string text = ReadFile(dir + "/config.json");
         WriteFile(dir + "/config.json", text.substr(0, text.size() / 2));
       }, kBad, "config.json: not valid JSON"},
      {"config_deep_nesting", SetKeyText("rope_scaling", std::string(100000, '[') + std::string(100000, ']')), kBad,
       "'rope_scaling' must be an object, got [[...]]"},
      {"config_directory", MakeDirectory("config.json"), kBad, "config.json' is a directory"},
      {"config_huge", ConfigText("{\"pad\": \"" + std::string(2 << 20, 'x') + "\"}"), kBad, "config.json' is larger than"},
      {"config_missing", [](const std::string& dir) { fs::remove(dir + "/config.json"); }, kMissing, "config.json"},
      // Tensors that do not match the config.
      {"missing_layer", SetKey("num_hidden_layers", 3), kMissing, "'model.layers.2.input_layernorm.weight'"},
      {"many_missing_layers", SetKey("num_hidden_layers", 1024), kMissing, "'model.layers.2.input_layernorm.weight'"},
      {"wrong_intermediate_size", SetKey("intermediate_size", 96), kBad, "'model.layers.0.mlp.gate_proj.weight' has shape [80, 48], expected [96, 48]"},
      {"wrong_vocab_size", SetKey("vocab_size", 1000), kBad, "'model.embed_tokens.weight' has shape [97, 48], expected [1000, 48]"},
      {"wrong_head_dim", Both(SetKey("head_dim", 1024), SetKey("num_attention_heads", 128)), kBad, "'model.layers.0.self_attn.q_proj.weight' has shape [48, 48], expected [131072, 48]"},
      {"valid_tied_config_untied_file", SetKey("tie_word_embeddings", true), kOk, ""},
      {"untied_config_tied_file", SetKey("tie_word_embeddings", false), kMissing, "'lm_head.weight'", Config({{"tie_word_embeddings", true}})},
      {"missing_bias", SetKey("attention_bias", true), kMissing, "'model.layers.0.self_attn.q_proj.bias'"},
      {"missing_tensor", EditSafetensors([](Safetensors& st) {
         // Drops the last tensor and its bytes, so only the tensor is missing.
         const json entry = st.header["lm_head.weight"];
         st.header.erase("lm_head.weight");
         st.data.resize(entry["data_offsets"][0].get<size_t>());
       }), kMissing, "missing tensor 'lm_head.weight'"},
      {"tensor_reshaped", EditHeader([](json& h) { h[kNorm0]["shape"] = {2, 24}; }), kBad,
       std::string("'") + kNorm0 + "' has shape [2, 24], expected [48]"},
      // The safetensors file.
      {"weights_truncated", [](const std::string& dir) {
         fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") - 100);
       }, kLoss, "truncated file: tensor 'lm_head.weight'"},
      {"weights_5_bytes", [](const std::string& dir) { fs::resize_file(dir + "/model.safetensors", 5); }, kLoss, "truncated file (5 bytes"},
      {"weights_empty", [](const std::string& dir) { fs::resize_file(dir + "/model.safetensors", 0); }, kLoss, "truncated file (0 bytes"},
      {"weights_directory", MakeDirectory("model.safetensors"), kBad, "model.safetensors' is not a regular file"},
      {"weights_missing", [](const std::string& dir) { fs::remove(dir + "/model.safetensors"); }, kMissing, "model.safetensors"},
      {"header_length_0", [](const std::string& dir) { SetHeaderLength(dir + "/model.safetensors", 0); }, kLoss, "header length 0"},
      {"header_length_1", [](const std::string& dir) { SetHeaderLength(dir + "/model.safetensors", 1); }, kLoss, "header length 1 cannot hold"},
      {"header_length_2^40", [](const std::string& dir) { SetHeaderLength(dir + "/model.safetensors", uint64_t{1} << 40); }, kLoss,
       "header length 1099511627776 runs beyond the file"},
      {"header_length_2^64-1", [](const std::string& dir) { SetHeaderLength(dir + "/model.safetensors", UINT64_MAX); }, kLoss,
       "header length 18446744073709551615 runs beyond the file"},
      {"header_length_over_limit", [](const std::string& dir) {
         fs::resize_file(dir + "/model.safetensors", 120'000'000);  // sparse: nothing is written
         SetHeaderLength(dir + "/model.safetensors", 110'000'000);
       }, kLoss, "header length 110000000 exceeds the limit of 100000000 bytes"},
      {"header_length_shrunk_into_padding", [](const std::string& dir) {
         const std::string path = dir + "/model.safetensors";
         WriteSafetensors(path, ReadSafetensors(path), /*padding=*/16);
         SetHeaderLength(path, HeaderLength(path) - 8);  // the JSON still parses; every weight shifts
       }, kLoss, "does not end where the data begins"},
      {"header_length_grown_into_data", [](const std::string& dir) {
         const std::string path = dir + "/model.safetensors";
         SetHeaderLength(path, HeaderLength(path) + 8);
       }, kLoss, "model.safetensors: header: not valid JSON"},
      {"header_not_json", EditSafetensors([](Safetensors& st) { st.header = "not an object"; }), kLoss, "header: top level must be a JSON object"},
      {"header_entry_not_object", EditHeader([](json& h) { h[kNorm0] = 5; }), kLoss, std::string("tensor '") + kNorm0 + "': must be a JSON object"},
      {"metadata_not_object", EditHeader([](json& h) { h["__metadata__"] = "pt"; }), kLoss, "'__metadata__' must be an object of strings"},
      {"metadata_number_value", EditHeader([](json& h) { h["__metadata__"] = {{"format", 1}}; }), kLoss, "'__metadata__' must be an object of strings"},
      {"dtype_missing", EditHeader([](json& h) { h[kNorm0].erase("dtype"); }), kLoss, "missing required field 'dtype'"},
      {"dtype_number", EditHeader([](json& h) { h[kNorm0]["dtype"] = 32; }), kLoss, "'dtype' must be a string"},
      {"dtype_unsupported", EditHeader([](json& h) { h[kNorm0]["dtype"] = "I64"; }), kLoss, "unsupported dtype 'I64'"},
      {"dtype_mismatch", EditHeader([](json& h) { h[kNorm0]["dtype"] = "BF16"; }), kLoss,
       std::string("tensor '") + kNorm0 + "': 192 bytes do not match its shape [48] and dtype BF16"},
      {"shape_mismatch", EditHeader([](json& h) { h[kNorm0]["shape"] = {24}; }), kLoss, "192 bytes do not match its shape [24]"},
      {"shape_negative", EditHeader([](json& h) { h[kNorm0]["shape"] = {-48}; }), kLoss, "'shape[0]' must be in [0, "},
      {"shape_string", EditHeader([](json& h) { h[kNorm0]["shape"] = "48"; }), kLoss, "'shape' must be a list of integers"},
      {"shape_product_wraps_to_zero", EditHeader([](json& h) {
         // 2^62 x 2^2 elements x 4 bytes wraps to 0 in 64 bits: an empty tensor, were it not checked.
         h["wraps"] = {{"dtype", "F32"}, {"shape", {int64_t{1} << 62, 4}}, {"data_offsets", {0, 0}}};
       }), kLoss, "tensor 'wraps': 0 bytes do not match its shape [4611686018427387904, 4]"},
      {"data_offsets_decrease", EditHeader([](json& h) {
         auto& off = h[kNorm0]["data_offsets"];
         off = {off[1], off[0]};
       }), kLoss, "] decrease"},
      {"data_offsets_three", EditHeader([](json& h) { h[kNorm0]["data_offsets"].push_back(0); }), kLoss, "'data_offsets' must be [begin, end]"},
      {"data_offsets_negative", EditHeader([](json& h) { h[kNorm0]["data_offsets"][0] = -1; }), kLoss, "'data_offsets[0]' must be in [0, "},
      {"data_offsets_string", EditHeader([](json& h) { h[kNorm0]["data_offsets"][1] = "192"; }), kLoss, "'data_offsets[1]' must be an integer"},
      {"data_offsets_beyond_data", EditHeader([](json& h) {
         h[kNorm0]["data_offsets"] = {uint64_t{1} << 62, (uint64_t{1} << 62) + 192};
       }), kLoss, std::string("truncated file: tensor '") + kNorm0 + "' ends at byte"},
      {"data_offsets_overlap", EditSafetensors([](Safetensors& st) {
         // lm_head (last in the file) moved onto the embedding, its own bytes dropped: without the
         // check the model silently loads with tied embeddings.
         st.header["lm_head.weight"]["data_offsets"] = st.header["model.embed_tokens.weight"]["data_offsets"];
         st.data.resize(st.data.size() - 97 * 48 * 4);
       }), kLoss, "overlaps tensor"},
      {"data_offsets_gap", EditSafetensors([](Safetensors& st) {
         auto& off = st.header["lm_head.weight"]["data_offsets"];
         off = {off[0].get<uint64_t>() + 16, off[1].get<uint64_t>() + 16};
         st.data += std::string(16, '\0');
       }), kLoss, "of the data section belong to no tensor (a gap before tensor 'lm_head.weight')"},
      {"data_trailing_bytes", EditSafetensors([](Safetensors& st) { st.data += std::string(64, '\0'); }), kLoss,
       "does not end where the data begins"},
      // Sharded weights and their index.
      {"index_not_json", [](const std::string& dir) { WriteFile(dir + "/model.safetensors.index.json", "{"); }, kBad,
       "model.safetensors.index.json: not valid JSON", testing::SmallConfig(), 2},
      {"index_directory", MakeDirectory("model.safetensors.index.json"), kBad, "model.safetensors.index.json' is a directory", testing::SmallConfig(), 2},
      {"index_no_weight_map", EditIndex([](json& i) { i.erase("weight_map"); }), kBad,
       "missing required field 'weight_map'", testing::SmallConfig(), 2},
      {"index_weight_map_list", EditIndex([](json& i) { i["weight_map"] = json::array(); }), kBad,
       "'weight_map' must be an object", testing::SmallConfig(), 2},
      {"index_shard_number", EditIndex([](json& i) { i["weight_map"][kNorm0] = 1; }), kBad,
       std::string("'weight_map.") + kNorm0 + "' must be a string", testing::SmallConfig(), 2},
      {"index_shard_path", EditIndex([](json& i) { i["weight_map"][kNorm0] = "../model-00001-of-00002.safetensors"; }), kBad,
       "which is not a file name in the model directory", testing::SmallConfig(), 2},
      {"index_shard_empty", EditIndex([](json& i) { i["weight_map"][kNorm0] = ""; }), kBad,
       "names shard '', which is not a file name", testing::SmallConfig(), 2},
      {"index_wrong_shard", EditIndex([](json& i) {
         auto& shard = i["weight_map"][kNorm0];
         shard = shard == "model-00001-of-00002.safetensors" ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
       }), kBad, std::string("holds tensor '") + kNorm0 + "', which the index places in", testing::SmallConfig(), 2},
      {"index_unlisted_tensor", EditIndex([](json& i) { i["weight_map"].erase(kNorm0); }), kBad,
       std::string("holds tensor '") + kNorm0 + "', which the index does not list", testing::SmallConfig(), 2},
      {"index_lists_absent_tensor", EditIndex([](json& i) { i["weight_map"]["ghost"] = "model-00001-of-00002.safetensors"; }), kLoss,
       "tensor 'ghost' is not in shard 'model-00001-of-00002.safetensors'", testing::SmallConfig(), 2},
      {"index_missing_shard", [](const std::string& dir) { fs::remove(dir + "/model-00002-of-00002.safetensors"); }, kMissing,
       "model-00002-of-00002.safetensors", testing::SmallConfig(), 2},
      {"shard_corrupt", EditHeader([](json& h) { h[kNorm0]["dtype"] = "F64"; }, "model-00002-of-00002.safetensors"), kLoss,
       std::string("model-00002-of-00002.safetensors: tensor '") + kNorm0 + "': unsupported dtype 'F64'", testing::SmallConfig(), 2},
      {"shards_duplicate_tensor", EditSafetensors([](Safetensors& st) {
         const uint64_t end = st.data.size();
         st.header[kNorm0] = {{"dtype", "F32"}, {"shape", {48}}, {"data_offsets", {end, end + 192}}};
         st.data += std::string(192, '\0');
       }, "model-00001-of-00002.safetensors"), kBad, std::string("holds tensor '") + kNorm0 + "', which the index places in", testing::SmallConfig(), 2},
      // tokenizer.model.
      {"tokenizer_directory", MakeDirectory("tokenizer.model"), kBad, "tokenizer.model' is not a regular file"},
      {"tokenizer_garbage", [](const std::string& dir) { WriteFile(dir + "/tokenizer.model", "\x08\x01garbage, not a protobuf"); }, kBad,
       "cannot load tokenizer"},
      {"tokenizer_empty", [](const std::string& dir) { WriteFile(dir + "/tokenizer.model", ""); }, kBad, "cannot load tokenizer"},
  };
  return rows;
}


Status Load(const std::string& dir) {
  EngineOptions options;
  options.model_dir = dir;
  options.kv_cache.capacity_tokens = 256;
  options.cpu.num_threads = 1;
  auto engine = Engine::Create(options);
  return engine.ok() ? OkStatus() : engine.status();
}

// Row names as gtest allows them ("head_dim_2^21" -> "head_dim_2_21").
std::string TestName(std::string name) {
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

class CorruptModel : public ::testing::TestWithParam<Row> {};

TEST_P(CorruptModel, FailsCleanlyNamingTheProblem) {
  const Row& row = GetParam();
  TempDir dir;
  ASSERT_NO_FATAL_FAILURE(testing::WriteModelOrDie(dir.path(), row.config, row.dtype, 1, row.shards));
  if (row.corrupt) row.corrupt(dir.path());
  const Status s = Load(dir.path());
  if (row.code == kOk) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    return;
  }
  ASSERT_FALSE(s.ok()) << "loaded although corrupt";
  EXPECT_EQ(s.code(), row.code) << s.ToString();
  EXPECT_NE(s.message().find(row.fragment), std::string::npos) << s.ToString() << "\nexpected: " << row.fragment;
}

// Configs whose sizes no file backs: each must fail before anything is allocated from them, so
// the peak resident memory across all of them stays small (before the checks, 10^7 layers
// allocated 2.5 GB in ModelRunner::Create and head_dim 2^21 4 GB in CpuAttention).
TEST(CorruptModelMemory, UnbackedSizesFailBeforeAllocating) {
  if (!(std::ofstream("/proc/self/clear_refs") << "5").flush())
    GTEST_SKIP() << "this kernel cannot reset the peak RSS (/proc/self/clear_refs)";
  TempDir dir;
  ASSERT_NO_FATAL_FAILURE(testing::WriteModelOrDie(dir.path(), testing::SmallConfig()));
  const std::vector<std::pair<std::string, json>> claims = {
      {"num_hidden_layers", {{"num_hidden_layers", 10000000}}},
      {"head_dim", {{"head_dim", 1 << 21}}},
      // Within the limits, so only the tensor check stands between them and the allocations.
      {"q_proj", {{"num_hidden_layers", 1024}, {"num_attention_heads", 128}, {"num_key_value_heads", 1}, {"head_dim", 1024}}},
      {"embed_tokens", {{"vocab_size", 4000000}, {"hidden_size", 65536}, {"intermediate_size", 262144}, {"num_hidden_layers", 4}}},
  };
  const int64_t baseline = testing::ProcStatusBytes("self", "VmRSS");
  for (const auto& [fragment, overrides] : claims) {
    json c = testing::SmallConfig();
    for (const auto& [key, value] : overrides.items()) c[key] = value;
    WriteFile(dir / "config.json", c.dump());
    const Status s = Load(dir.path());
    EXPECT_FALSE(s.ok()) << fragment;
    EXPECT_NE(s.message().find(fragment), std::string::npos) << s.ToString();
  }
  const int64_t peak = testing::ProcStatusBytes("self", "VmHWM");
  EXPECT_LT(peak - baseline, int64_t{100} << 20) << "peak RSS grew by " << (peak - baseline) << " bytes";
}

INSTANTIATE_TEST_SUITE_P(Table, CorruptModel, ::testing::ValuesIn(Rows()),
                         [](const ::testing::TestParamInfo<Row>& info) { return TestName(info.param.name); });

// config.json may be a FIFO (the server's readiness test streams it in): the size limit is
// applied while reading, not taken from stat.
TEST(CorruptModelFiles, ConfigStreamedThroughAFifoLoads) {
  TempDir dir;
  ASSERT_NO_FATAL_FAILURE(testing::WriteModelOrDie(dir.path(), testing::SmallConfig()));
  const std::string text = ReadFile(dir / "config.json");
  fs::remove(dir / "config.json");
  ASSERT_EQ(mkfifo((dir / "config.json").c_str(), 0600), 0);
  std::thread writer([&] { std::ofstream(dir / "config.json") << text; });  // opens once Load does
  const Status s = Load(dir.path());
  writer.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

// Whole safetensors files given as bytes, straight to the parser: the libFuzzer finds
// (tests/fuzz/safetensors_header_fuzz) and shapes of input no model writer produces. A file
// that parses has every tensor converted, as the harness does.
struct BytesRow {
  std::string name;
  std::string header;  // the JSON text; its length is prepended
  std::string data;
  StatusCode code;
  std::string fragment;
};

std::vector<BytesRow> BytesRows() {
  return {
      // Fuzz find: converting an empty F32 tensor passed memcpy a null destination.
      {"fuzz_empty_f32_tensor", R"({"empty":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}})", "", kOk, ""},
      {"no_tensors", "{}", "", kOk, ""},
      {"scalar", R"({"s":{"dtype":"BF16","shape":[],"data_offsets":[0,2]}})", "ab", kOk, ""},
      {"trailing_garbage_after_json", "{}x", "", kLoss, "header: not valid JSON"},
      {"invalid_utf8_name", "{\"\xff\":{}}", "", kLoss, "header: not valid JSON"},
      {"deep_nesting", "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", "", kLoss,
       "tensor 'a': must be a JSON object"},
      {"duplicate_offsets_zero_length", R"({"a":{"dtype":"F16","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})",
       "xy", kOk, ""},
      {"offsets_near_2^64", R"({"a":{"dtype":"F16","shape":[1],"data_offsets":[18446744073709551614,18446744073709551615]}})", "", kLoss,
       "'data_offsets[0]' must be in [0, 9223372036854775807]"},
  };
}

class CorruptSafetensorsBytes : public ::testing::TestWithParam<BytesRow> {};

TEST_P(CorruptSafetensorsBytes, ParseCleanly) {
  const BytesRow& row = GetParam();
  const uint64_t header_len = row.header.size();
  const std::string file = std::string(reinterpret_cast<const char*>(&header_len), 8) + row.header + row.data;
  auto tensors = ParseSafetensors(reinterpret_cast<const uint8_t*>(file.data()), file.size(), "bytes.safetensors");
  if (row.code != kOk) {
    ASSERT_FALSE(tensors.ok()) << "parsed although corrupt";
    EXPECT_EQ(tensors.status().code(), row.code) << tensors.status().ToString();
    EXPECT_NE(tensors.status().message().find(row.fragment), std::string::npos) << tensors.status().ToString();
    return;
  }
  ASSERT_TRUE(tensors.ok()) << tensors.status().ToString();
  for (const auto& [name, view] : *tensors) {
    std::vector<float> converted(view.num_bytes / DTypeSize(view.dtype));
    ConvertToF32(view, converted.data());
  }
}

INSTANTIATE_TEST_SUITE_P(Table, CorruptSafetensorsBytes, ::testing::ValuesIn(BytesRows()),
                         [](const ::testing::TestParamInfo<BytesRow>& info) { return TestName(info.param.name); });

}  // namespace
}  // namespace bpt
