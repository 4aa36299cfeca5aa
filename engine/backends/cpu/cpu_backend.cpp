#include "cpu_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "bf16.h"
#include "rope.h"

namespace bpt {
namespace {

int ResolveThreads(int requested) {
  if (requested > 0) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

float* F(const Tensor& t) { return static_cast<float*>(t.data); }

}  // namespace

CpuBackend::CpuBackend(const ModelConfig& config, const CpuOptions& options, ElementType weight_dtype,
                       ElementType kv_dtype)
    : isa_(options.isa == CpuIsa::kAuto ? DetectCpuIsa() : options.isa),
      weight_dtype_(weight_dtype),
      kv_dtype_(kv_dtype),
      pool_(ResolveThreads(options.num_threads)),
      attention_({config.num_heads, config.num_kv_heads, config.head_dim, config.sliding_window},
                 options.attention_tiling, isa_, kv_dtype_, ResolveThreads(options.num_threads)),
      matmul_(isa_, weight_dtype, CpuMatmul::Bf16DotMaxRows()),
      elementwise_(isa_) {
  workspace_bytes_ = attention_.ScratchBytes();
}

std::string CpuBackend::attention_kernels() const { return attention_.kernels_name(); }

CpuBackend::~CpuBackend() {
  if (kv_pool_ != nullptr) munmap(kv_pool_, kv_pool_bytes_);
}

StatusOr<Tensor> CpuBackend::UploadWeight(HostMatrix&& host) {
  if (static_cast<int64_t>(host.data.size()) != host.rows * host.cols)
    return Internal("weight of " + std::to_string(host.data.size()) + " values is not [" +
                    std::to_string(host.rows) + ", " + std::to_string(host.cols) + "]");
  // Matrices go to the matmul kernels' panels (in weight_dtype_); vectors stay fp32 for the
  // elementwise ops.
  if (host.rows > 1) return matmul_.Pack(std::move(host));
  weights_.push_back(std::move(host.data));
  weight_bytes_ += static_cast<int64_t>(weights_.back().size() * sizeof(float));
  return Tensor{weights_.back().data(), host.rows, host.cols, 4};
}

StatusOr<Tensor> CpuBackend::AllocateActivation(int64_t rows, int64_t cols, Precision) {
  auto buf = std::make_unique<float[]>(rows * cols);  // value-initialized: resident from the start
  Tensor t{buf.get(), rows, cols, 4};
  allocations_.push_back(std::move(buf));
  workspace_bytes_ += rows * cols * static_cast<int64_t>(sizeof(float)) + matmul_.ReserveInput(rows, cols);
  return t;
}

Status CpuBackend::AllocateKvPool(int num_layers, int64_t num_blocks, int block_size, int kv_dim) {
  kv_block_size_ = block_size;
  kv_layer_stride_ = num_blocks * block_size * KvBytesPerToken(1, kv_dim) / 2;
  kv_v_offset_ = kv_layer_stride_ * num_layers;
  kv_pool_bytes_ = static_cast<size_t>(2 * kv_v_offset_);
  void* p = mmap(nullptr, kv_pool_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return ResourceExhausted("cannot reserve a KV pool of " + std::to_string(kv_pool_bytes_) + " bytes");
  kv_pool_ = static_cast<char*>(p);
  kv_num_layers_ = num_layers;
  kv_num_blocks_ = num_blocks;
  kv_block_slab_bytes_ = block_size * KvBytesPerToken(1, kv_dim) / 2;
  return OkStatus();
}

Status CpuBackend::ReadKvBlocks(std::span<const int32_t> blocks, uint8_t* host) const {
  for (int32_t b : blocks)
    if (b < 0 || b >= kv_num_blocks_) return Internal("ReadKvBlocks: block " + std::to_string(b) + " is outside the pool");
  const int64_t n = static_cast<int64_t>(blocks.size());
  for (int layer = 0; layer < kv_num_layers_; ++layer)
    for (int kv = 0; kv < 2; ++kv) {
      const char* slab = kv_pool_ + layer * kv_layer_stride_ + kv * kv_v_offset_;
      uint8_t* out = host + (static_cast<int64_t>(layer) * 2 + kv) * n * kv_block_slab_bytes_;
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(out + i * kv_block_slab_bytes_, slab + blocks[i] * kv_block_slab_bytes_, kv_block_slab_bytes_);
    }
  return OkStatus();
}

Status CpuBackend::WriteKvBlocks(std::span<const int32_t> blocks, const uint8_t* host) {
  for (int32_t b : blocks)
    if (b < -1 || b >= kv_num_blocks_) return Internal("WriteKvBlocks: block " + std::to_string(b) + " is outside the pool");
  const int64_t n = static_cast<int64_t>(blocks.size());
  for (int layer = 0; layer < kv_num_layers_; ++layer)
    for (int kv = 0; kv < 2; ++kv) {
      char* slab = kv_pool_ + layer * kv_layer_stride_ + kv * kv_v_offset_;
      const uint8_t* in = host + (static_cast<int64_t>(layer) * 2 + kv) * n * kv_block_slab_bytes_;
      for (int64_t i = 0; i < n; ++i)
        if (blocks[i] >= 0)
          std::memcpy(slab + blocks[i] * kv_block_slab_bytes_, in + i * kv_block_slab_bytes_, kv_block_slab_bytes_);
    }
  return OkStatus();
}

int64_t CpuBackend::KvBytesPerToken(int num_layers, int kv_dim) const {
  const int64_t element_bytes = kv_dtype_ == ElementType::kBFloat16 ? 2 : 4;
  return 2LL * num_layers * kv_dim * element_bytes;
}

int64_t CpuBackend::WorkspaceBytes() const {
  const int64_t step_state = (positions_.capacity() + slots_.capacity()) * sizeof(int64_t) +
                             (rope_cos_.capacity() + rope_sin_.capacity()) * sizeof(float);
  return workspace_bytes_ + step_state;
}

int64_t CpuBackend::FreeMemoryBytes() const {
  return static_cast<int64_t>(sysconf(_SC_AVPHYS_PAGES)) * sysconf(_SC_PAGESIZE);
}

Status CpuBackend::BeginStep(const StepLayout& step, const Rope& rope) {
  const int64_t n = step.num_tokens();
  step_ = &step;
  positions_.resize(n);
  slots_.resize(n);
  int64_t row = 0;
  for (const auto& seq : step.sequences) {
    for (int32_t t = 0; t < seq.num_tokens; ++t, ++row) {
      const int64_t pos = seq.start_position + t;
      const int64_t block_index = pos / kv_block_size_;
      if (block_index >= static_cast<int64_t>(seq.block_table->size()))
        return Internal("block table does not cover position " + std::to_string(pos));
      positions_[row] = pos;
      slots_[row] = static_cast<int64_t>((*seq.block_table)[block_index]) * kv_block_size_ + pos % kv_block_size_;
    }
  }
  if (row != n) return Internal("step sequences cover " + std::to_string(row) + " of " + std::to_string(n) + " tokens");
  const int half = rope.head_dim() / 2;
  rope_cos_.resize(n * half);
  rope_sin_.resize(n * half);
  rope.Fill(positions_.data(), n, rope_cos_.data(), rope_sin_.data());
  return OkStatus();
}

Status CpuBackend::Embed(const Tensor& table, Tensor out) {
  const int64_t n = step_->num_tokens();
  BPT_RETURN_IF_ERROR(CheckShape("Embed", out, n, table.cols));
  matmul_.Embed(table, step_->token_ids.data(), out);
  return OkStatus();
}

Status CpuBackend::RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor out) {
  BPT_RETURN_IF_ERROR(CheckShape("RmsNorm", out, x.rows, x.cols));
  BPT_RETURN_IF_ERROR(CheckShape("RmsNorm weight", weight, 1, x.cols));
  const int64_t h = x.cols;
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* in = F(x) + r * h;
    float* o = F(out) + r * h;
    double sum_sq = 0;
    for (int64_t i = 0; i < h; ++i) sum_sq += static_cast<double>(in[i]) * in[i];
    const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / h + eps));
    for (int64_t i = 0; i < h; ++i) o[i] = F(weight)[i] * (in[i] * inv_rms);
  }
  return OkStatus();
}

Status CpuBackend::Linear(const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor out) {
  BPT_RETURN_IF_ERROR(CheckShape("Linear input", x, out.rows, weight.cols));
  BPT_RETURN_IF_ERROR(CheckShape("Linear output", out, x.rows, weight.rows));
  if (bias != nullptr) BPT_RETURN_IF_ERROR(CheckShape("Linear bias", *bias, 1, out.cols));
  matmul_.Linear(x, weight, bias != nullptr ? F(*bias) : nullptr, out, pool_);
  return OkStatus();
}

Status CpuBackend::Add(Tensor x, const Tensor& y) {
  BPT_RETURN_IF_ERROR(CheckShape("Add", y, x.rows, x.cols));
  const int64_t n = x.rows * x.cols;
  for (int64_t i = 0; i < n; ++i) F(x)[i] += F(y)[i];
  return OkStatus();
}

Status CpuBackend::AddRmsNorm(Tensor x, const Tensor& y, const Tensor& weight, float eps, Tensor out) {
  BPT_RETURN_IF_ERROR(Add(x, y));
  return RmsNorm(x, weight, eps, out);
}

Status CpuBackend::ApplyRope(Tensor qkv, const AttentionShape& shape) {
  const int64_t n = step_->num_tokens();
  const int q_cols = shape.num_heads * shape.head_dim, kv_cols = shape.num_kv_heads * shape.head_dim;
  BPT_RETURN_IF_ERROR(CheckShape("ApplyRope", qkv, n, q_cols + 2 * kv_cols));
  const int half = shape.head_dim / 2;
  for (int64_t t = 0; t < n; ++t) {
    float* row = F(qkv) + t * qkv.cols;
    const float* c = rope_cos_.data() + t * half;
    const float* s = rope_sin_.data() + t * half;
    bpt::ApplyRope(row, 1, shape.num_heads, shape.head_dim, c, s);
    bpt::ApplyRope(row + q_cols, 1, shape.num_kv_heads, shape.head_dim, c, s);
  }
  return OkStatus();
}

Status CpuBackend::AppendKv(int layer, const Tensor& qkv, const AttentionShape& shape) {
  const int64_t n = step_->num_tokens();
  const int q_cols = shape.num_heads * shape.head_dim, kv_cols = shape.num_kv_heads * shape.head_dim;
  BPT_RETURN_IF_ERROR(CheckShape("AppendKv", qkv, n, q_cols + 2 * kv_cols));
  char* k_layer = kv_pool_ + layer * kv_layer_stride_;
  char* v_layer = k_layer + kv_v_offset_;
  for (int64_t t = 0; t < n; ++t) {
    const float* row = F(qkv) + t * qkv.cols;
    if (kv_dtype_ == ElementType::kBFloat16) {
      auto* k = reinterpret_cast<uint16_t*>(k_layer) + slots_[t] * kv_cols;
      auto* v = reinterpret_cast<uint16_t*>(v_layer) + slots_[t] * kv_cols;
      for (int i = 0; i < kv_cols; ++i) {
        k[i] = RoundToBf16(row[q_cols + i]);
        v[i] = RoundToBf16(row[q_cols + kv_cols + i]);
      }
    } else {
      std::memcpy(reinterpret_cast<float*>(k_layer) + slots_[t] * kv_cols, row + q_cols, kv_cols * sizeof(float));
      std::memcpy(reinterpret_cast<float*>(v_layer) + slots_[t] * kv_cols, row + q_cols + kv_cols,
                  kv_cols * sizeof(float));
    }
  }
  return OkStatus();
}

Status CpuBackend::Attention(int layer, const Tensor& qkv, const AttentionShape& shape, Tensor out) {
  const int64_t n = step_->num_tokens();
  BPT_RETURN_IF_ERROR(CheckShape("Attention output", out, n, shape.num_heads * shape.head_dim));
  const char* k_layer = kv_pool_ + layer * kv_layer_stride_;
  PagedKvLayer kv{k_layer, k_layer + kv_v_offset_, kv_block_size_};
  attention_.Run(F(qkv), qkv.cols, kv, step_->sequences, positions_.data(), F(out), out.cols, pool_);
  return OkStatus();
}

Status CpuBackend::SwiGlu(const Tensor& gate_up, Tensor out) {
  BPT_RETURN_IF_ERROR(CheckShape("SwiGlu", gate_up, out.rows, 2 * out.cols));
  elementwise_.SwiGlu(gate_up, out, pool_);
  return OkStatus();
}

Status CpuBackend::GatherRows(const Tensor& x, const std::vector<int64_t>& rows, Tensor out) {
  BPT_RETURN_IF_ERROR(CheckShape("GatherRows", out, static_cast<int64_t>(rows.size()), x.cols));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(F(out) + i * x.cols, F(x) + rows[i] * x.cols, x.cols * sizeof(float));
  return OkStatus();
}

Status CpuBackend::CopyToHost(const Tensor& x, float* host) {
  std::memcpy(host, x.data, x.rows * x.cols * sizeof(float));
  return OkStatus();
}

}  // namespace bpt
