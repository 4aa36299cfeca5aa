#include "model_weights.h"

#include "safetensors.h"

namespace bpt {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// One tensor of the checkpoint and the backend weight it becomes part of.
struct WeightPart {
  WeightSlot slot;
  int layer;
  std::string name;
  std::vector<int64_t> shape;  // [rows, cols] for a matrix, [n] for a vector
};

// Every tensor the config needs, in the order they are streamed. Consecutive parts of one slot
// are fused into one weight: matrices stack their rows (q|k|v, gate|up), vectors join into one
// row (the q|k|v bias).
std::vector<WeightPart> PartsOf(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), ffn = c.intermediate_size;
  std::vector<WeightPart> parts;
  parts.push_back({WeightSlot::kEmbed, -1, "model.embed_tokens.weight", {c.vocab_size, h}});
  parts.push_back({WeightSlot::kFinalNorm, -1, "model.norm.weight", {h}});
  if (!c.tie_word_embeddings) parts.push_back({WeightSlot::kLmHead, -1, "lm_head.weight", {c.vocab_size, h}});
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    parts.push_back({WeightSlot::kInputNorm, i, p + "input_layernorm.weight", {h}});
    parts.push_back({WeightSlot::kPostNorm, i, p + "post_attention_layernorm.weight", {h}});
    parts.push_back({WeightSlot::kQkv, i, p + "self_attn.q_proj.weight", {q, h}});
    parts.push_back({WeightSlot::kQkv, i, p + "self_attn.k_proj.weight", {kv, h}});
    parts.push_back({WeightSlot::kQkv, i, p + "self_attn.v_proj.weight", {kv, h}});
    if (c.qkv_bias) {
      parts.push_back({WeightSlot::kQkvBias, i, p + "self_attn.q_proj.bias", {q}});
      parts.push_back({WeightSlot::kQkvBias, i, p + "self_attn.k_proj.bias", {kv}});
      parts.push_back({WeightSlot::kQkvBias, i, p + "self_attn.v_proj.bias", {kv}});
    }
    parts.push_back({WeightSlot::kOProj, i, p + "self_attn.o_proj.weight", {h, q}});
    if (c.o_bias) parts.push_back({WeightSlot::kOBias, i, p + "self_attn.o_proj.bias", {h}});
    parts.push_back({WeightSlot::kGateUp, i, p + "mlp.gate_proj.weight", {ffn, h}});
    parts.push_back({WeightSlot::kGateUp, i, p + "mlp.up_proj.weight", {ffn, h}});
    parts.push_back({WeightSlot::kDown, i, p + "mlp.down_proj.weight", {h, ffn}});
  }
  return parts;
}

// Appends the part's tensor (already checked to have the part's shape) to `out`.
void Append(const TensorView& view, const WeightPart& part, HostMatrix* out) {
  const bool matrix = part.shape.size() == 2;
  const int64_t rows = matrix ? part.shape[0] : 1, cols = matrix ? part.shape[1] : part.shape[0];
  const size_t offset = out->data.size();
  out->data.resize(offset + rows * cols);
  ConvertToF32(view, out->data.data() + offset);
  ReleaseFilePages(view);
  if (matrix) {
    out->rows += rows;
    out->cols = cols;
  } else {
    out->rows = 1;
    out->cols += cols;
  }
}

}  // namespace

ModelWeights::ModelWeights(const ModelConfig& config, std::unique_ptr<SafetensorsModel> tensors)
    : config_(config), tensors_(std::move(tensors)) {}

ModelWeights::~ModelWeights() = default;

StatusOr<std::unique_ptr<ModelWeights>> ModelWeights::Open(const std::string& model_dir, const ModelConfig& config) {
  BPT_ASSIGN_OR_RETURN(auto tensors, SafetensorsModel::Open(model_dir));
  for (const WeightPart& part : PartsOf(config)) {
    BPT_ASSIGN_OR_RETURN(TensorView view, tensors->Find(part.name));
    if (view.shape != part.shape)
      return InvalidArgument("tensor '" + part.name + "' has shape " + ShapeString(view.shape) + ", expected " +
                             ShapeString(part.shape));
  }
  return std::unique_ptr<ModelWeights>(new ModelWeights(config, std::move(tensors)));
}

Status ModelWeights::Stream(const WeightSink& sink) const {
  const std::vector<WeightPart> parts = PartsOf(config_);
  HostMatrix weight;  // the slot's weight as its parts so far add up: [rows, cols]
  for (size_t i = 0; i < parts.size(); ++i) {
    BPT_ASSIGN_OR_RETURN(TensorView view, tensors_->Find(parts[i].name));
    Append(view, parts[i], &weight);
    const bool last_part = i + 1 == parts.size() || parts[i + 1].slot != parts[i].slot ||
                           parts[i + 1].layer != parts[i].layer;
    if (last_part) {
      BPT_RETURN_IF_ERROR(sink(parts[i].slot, parts[i].layer, std::move(weight)));
      weight = HostMatrix();
    }
  }
  return OkStatus();
}

}  // namespace bpt
