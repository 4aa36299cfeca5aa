#include "engine/model_weights.h"

#include <cstring>

#include "engine/safetensors.h"

namespace bpt {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Appends tensor `name` of the expected shape as rows of `out` (whose cols must match).
Status AppendRows(const SafetensorsModel& st, const std::string& name,
                  const std::vector<int64_t>& expected, HostMatrix* out) {
  BPT_ASSIGN_OR_RETURN(TensorView view, st.Find(name));
  if (view.shape != expected)
    return InvalidArgument("tensor '" + name + "' has shape " + ShapeString(view.shape) +
                           ", expected " + ShapeString(expected));
  const int64_t cols = expected.size() == 2 ? expected[1] : expected[0];
  const int64_t rows = expected.size() == 2 ? expected[0] : 1;
  if (out->cols == 0) out->cols = cols;
  const size_t offset = out->data.size();
  out->data.resize(offset + rows * cols);
  ConvertToF32(view, out->data.data() + offset);
  ReleaseFilePages(view);
  out->rows += rows;
  return OkStatus();
}

StatusOr<HostMatrix> Load(const SafetensorsModel& st, const std::string& name,
                          const std::vector<int64_t>& expected) {
  HostMatrix m;
  BPT_RETURN_IF_ERROR(AppendRows(st, name, expected, &m));
  return m;
}

}  // namespace

Status StreamModelWeights(const std::string& model_dir, const ModelConfig& c, const WeightSink& sink) {
  BPT_ASSIGN_OR_RETURN(auto st, SafetensorsModel::Open(model_dir));
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), ffn = c.intermediate_size;
  auto send = [&](WeightSlot slot, int layer, const std::string& name, const std::vector<int64_t>& shape) -> Status {
    BPT_ASSIGN_OR_RETURN(HostMatrix m, Load(*st, name, shape));
    return sink(slot, layer, std::move(m));
  };
  BPT_RETURN_IF_ERROR(send(WeightSlot::kEmbed, -1, "model.embed_tokens.weight", {c.vocab_size, h}));
  BPT_RETURN_IF_ERROR(send(WeightSlot::kFinalNorm, -1, "model.norm.weight", {h}));
  if (!c.tie_word_embeddings)
    BPT_RETURN_IF_ERROR(send(WeightSlot::kLmHead, -1, "lm_head.weight", {c.vocab_size, h}));
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    BPT_RETURN_IF_ERROR(send(WeightSlot::kInputNorm, i, p + "input_layernorm.weight", {h}));
    BPT_RETURN_IF_ERROR(send(WeightSlot::kPostNorm, i, p + "post_attention_layernorm.weight", {h}));
    HostMatrix qkv;
    BPT_RETURN_IF_ERROR(AppendRows(*st, p + "self_attn.q_proj.weight", {q, h}, &qkv));
    BPT_RETURN_IF_ERROR(AppendRows(*st, p + "self_attn.k_proj.weight", {kv, h}, &qkv));
    BPT_RETURN_IF_ERROR(AppendRows(*st, p + "self_attn.v_proj.weight", {kv, h}, &qkv));
    BPT_RETURN_IF_ERROR(sink(WeightSlot::kQkv, i, std::move(qkv)));
    if (c.qkv_bias) {
      // Biases are vectors: concatenated along columns of a single row.
      HostMatrix qb, kb, vb;
      BPT_ASSIGN_OR_RETURN(qb, Load(*st, p + "self_attn.q_proj.bias", {q}));
      BPT_ASSIGN_OR_RETURN(kb, Load(*st, p + "self_attn.k_proj.bias", {kv}));
      BPT_ASSIGN_OR_RETURN(vb, Load(*st, p + "self_attn.v_proj.bias", {kv}));
      HostMatrix bias{std::move(qb.data), 1, q + 2 * kv};
      bias.data.insert(bias.data.end(), kb.data.begin(), kb.data.end());
      bias.data.insert(bias.data.end(), vb.data.begin(), vb.data.end());
      BPT_RETURN_IF_ERROR(sink(WeightSlot::kQkvBias, i, std::move(bias)));
    }
    BPT_RETURN_IF_ERROR(send(WeightSlot::kOProj, i, p + "self_attn.o_proj.weight", {h, q}));
    if (c.o_bias) BPT_RETURN_IF_ERROR(send(WeightSlot::kOBias, i, p + "self_attn.o_proj.bias", {h}));
    HostMatrix gate_up;
    BPT_RETURN_IF_ERROR(AppendRows(*st, p + "mlp.gate_proj.weight", {ffn, h}, &gate_up));
    BPT_RETURN_IF_ERROR(AppendRows(*st, p + "mlp.up_proj.weight", {ffn, h}, &gate_up));
    BPT_RETURN_IF_ERROR(sink(WeightSlot::kGateUp, i, std::move(gate_up)));
    BPT_RETURN_IF_ERROR(send(WeightSlot::kDown, i, p + "mlp.down_proj.weight", {h, ffn}));
  }
  return OkStatus();
}

}  // namespace bpt
