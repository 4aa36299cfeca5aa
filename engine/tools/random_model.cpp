#include "random_model.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "model_config.h"
#include "tokenizer_files.h"

namespace bpt {
namespace {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  double center;     // values are uniform in [center - half_width, center + half_width]
  double half_width;
};

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// FNV-1a: the same stream of weights for a tensor name on every platform.
uint64_t HashName(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

uint16_t FloatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even; values here are finite
  return static_cast<uint16_t>(bits >> 16);
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const int exponent = static_cast<int>((x >> 23) & 0xff) - 127 + 15;
  uint32_t mantissa = x & 0x7fffffu;
  if (exponent >= 31) return sign | 0x7c00u;
  if (exponent <= 0) {  // subnormal or zero
    if (exponent < -10) return sign;
    mantissa |= 0x800000u;
    const int shift = 14 - exponent;
    uint32_t half = mantissa >> shift;
    const uint32_t rem = mantissa & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return sign | static_cast<uint16_t>(half);
  }
  uint32_t half = (static_cast<uint32_t>(exponent) << 10) | (mantissa >> 13);
  const uint32_t rem = mantissa & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent
  return sign | static_cast<uint16_t>(half);
}

std::vector<TensorSpec> TensorsOf(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
  auto linear = [](std::string name, int64_t out, int64_t in) {
    return TensorSpec{std::move(name), {out, in}, 0.0, std::sqrt(3.0 / in)};
  };
  auto norm = [](std::string name, int64_t n) { return TensorSpec{std::move(name), {n}, 1.0, 0.2}; };
  auto bias = [](std::string name, int64_t n) { return TensorSpec{std::move(name), {n}, 0.0, 0.5}; };
  std::vector<TensorSpec> t;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, 0.0, std::sqrt(3.0)});
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back(norm(p + "input_layernorm.weight", h));
    t.push_back(linear(p + "self_attn.q_proj.weight", q, h));
    t.push_back(linear(p + "self_attn.k_proj.weight", kv, h));
    t.push_back(linear(p + "self_attn.v_proj.weight", kv, h));
    if (c.qkv_bias) {
      t.push_back(bias(p + "self_attn.q_proj.bias", q));
      t.push_back(bias(p + "self_attn.k_proj.bias", kv));
      t.push_back(bias(p + "self_attn.v_proj.bias", kv));
    }
    t.push_back(linear(p + "self_attn.o_proj.weight", h, q));
    if (c.o_bias) t.push_back(bias(p + "self_attn.o_proj.bias", h));
    t.push_back(norm(p + "post_attention_layernorm.weight", h));
    t.push_back(linear(p + "mlp.gate_proj.weight", f, h));
    t.push_back(linear(p + "mlp.up_proj.weight", f, h));
    t.push_back(linear(p + "mlp.down_proj.weight", h, f));
  }
  t.push_back(norm("model.norm.weight", h));
  if (!c.tie_word_embeddings) t.push_back(linear("lm_head.weight", c.vocab_size, h));
  return t;
}

int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Status WriteShard(const std::string& path, const std::vector<const TensorSpec*>& tensors, DType dtype,
                  uint64_t seed) {
  const size_t elem = DTypeSize(dtype);
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const TensorSpec* t : tensors) {
    const uint64_t bytes = NumElements(t->shape) * elem;
    header[t->name] = {{"dtype", DTypeName(dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  header["__metadata__"] = {{"format", "pt"}};
  std::string header_text = header.dump();
  while ((header_text.size() + 8) % 8 != 0) header_text += ' ';  // keep the data 8-byte aligned
  std::ofstream out(path, std::ios::binary);
  if (!out) return Internal("cannot write '" + path + "'");
  const uint64_t header_len = header_text.size();
  out.write(reinterpret_cast<const char*>(&header_len), 8);
  out.write(header_text.data(), header_text.size());

  std::vector<char> buffer;
  for (const TensorSpec* t : tensors) {
    uint64_t state = seed ^ HashName(t->name);
    const int64_t n = NumElements(t->shape);
    buffer.resize(static_cast<size_t>(std::min<int64_t>(n, 1 << 20)) * elem);
    for (int64_t done = 0; done < n;) {
      const int64_t chunk = std::min<int64_t>(n - done, 1 << 20);
      for (int64_t i = 0; i < chunk; ++i) {
        const double u = static_cast<double>(SplitMix64(state) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
        const float v = static_cast<float>(t->center + u * t->half_width);
        char* dst = buffer.data() + i * elem;
        if (dtype == DType::kF32) {
          std::memcpy(dst, &v, 4);
        } else {
          const uint16_t bits = dtype == DType::kBF16 ? FloatToBf16(v) : FloatToHalf(v);
          std::memcpy(dst, &bits, 2);
        }
      }
      out.write(buffer.data(), chunk * elem);
      done += chunk;
    }
  }
  if (!out) return Internal("writing '" + path + "' failed");
  return OkStatus();
}

}  // namespace

Status WriteRandomModel(const std::string& dir, const RandomModelSpec& spec) {
  nlohmann::json config_json = spec.config;
  TokenizerFiles tokenizer;
  if (!spec.tokenizer.empty()) {
    BPT_ASSIGN_OR_RETURN(tokenizer, ReadTokenizerFiles(spec.tokenizer));
    if (spec.fit_config_to_tokenizer) FitConfigToTokenizer(tokenizer, &config_json);
  }
  BPT_ASSIGN_OR_RETURN(ModelConfig config, ParseModelConfig(config_json.dump(), "spec.config"));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Internal("cannot create '" + dir + "': " + ec.message());
  {
    std::ofstream cfg(dir + "/config.json");
    cfg << config_json.dump(2) << "\n";
    if (!cfg) return Internal("cannot write '" + dir + "/config.json'");
  }
  for (const auto& [source, name] : tokenizer.files) {
    std::filesystem::copy_file(source, dir + "/" + name, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) return Internal("cannot copy '" + source + "' to '" + dir + "/" + name + "': " + ec.message());
  }
  const std::vector<TensorSpec> tensors = TensorsOf(config);
  const int shards = std::max(1, spec.num_shards);
  if (shards == 1) {
    std::vector<const TensorSpec*> all;
    for (const auto& t : tensors) all.push_back(&t);
    return WriteShard(dir + "/model.safetensors", all, spec.dtype, spec.seed);
  }
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  for (int s = 0; s < shards; ++s) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", s + 1, shards);
    std::vector<const TensorSpec*> part;
    for (size_t i = s; i < tensors.size(); i += shards) {
      part.push_back(&tensors[i]);
      index["weight_map"][tensors[i].name] = name;
    }
    BPT_RETURN_IF_ERROR(WriteShard(dir + "/" + name, part, spec.dtype, spec.seed));
  }
  std::ofstream idx(dir + "/model.safetensors.index.json");
  idx << index.dump(2) << "\n";
  if (!idx) return Internal("cannot write the safetensors index");
  return OkStatus();
}

nlohmann::json PresetConfig(const std::string& preset) {
  if (preset == "tinyllama") return TinyLlamaConfig();
  if (preset == "smollm2-135m") return SmolLM2Config();
  return DemoModelConfig(1000);
}

nlohmann::json SmallConfig() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"vocab_size", 97},
          {"hidden_size", 48},
          {"intermediate_size", 80},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"head_dim", 12},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"max_position_embeddings", 4096},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"tie_word_embeddings", false}};
}

nlohmann::json TinyLlamaConfig() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"vocab_size", 32000},
          {"hidden_size", 2048},
          {"intermediate_size", 5632},
          {"num_hidden_layers", 22},
          {"num_attention_heads", 32},
          {"num_key_value_heads", 4},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"max_position_embeddings", 2048},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"}};
}

nlohmann::json SmolLM2Config() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"vocab_size", 32000},
          {"hidden_size", 576},
          {"intermediate_size", 1536},
          {"num_hidden_layers", 30},
          {"num_attention_heads", 9},
          {"num_key_value_heads", 3},
          {"head_dim", 64},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 100000.0},
          {"max_position_embeddings", 32768},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"tie_word_embeddings", true},
          {"torch_dtype", "bfloat16"}};
}

nlohmann::json DemoModelConfig(int vocab_size) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"vocab_size", vocab_size},
          {"hidden_size", 256},
          {"intermediate_size", 768},
          {"num_hidden_layers", 4},
          {"num_attention_heads", 8},
          {"num_key_value_heads", 2},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 500000.0},
          {"max_position_embeddings", 1048576},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"}};
}

}  // namespace bpt
