#include "cuda_backend.h"

#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <type_traits>
#include <utility>
#include <vector>

#include "check.h"
#include "cuda_kernels.cuh"
#include "cuda_plugin_abi.h"
#include "rope.h"
#if BPTSERVE_WITH_CUDNN
#include "cudnn_attention.h"
#endif

namespace bpt {

using cuda::bf16;

namespace {

Status CublasStatus(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return OkStatus();
  return Internal(std::string("cuBLAS error in ") + what + ": " + cublasGetStatusName(status) + " (" +
                  cublasGetStatusString(status) + ")");
}
#define BPT_CUBLAS_RETURN_IF_ERROR(expr) BPT_RETURN_IF_ERROR(CublasStatus((expr), #expr))

Status CheckBf16(const char* op, const Tensor& t) {
  if (t.elem_bytes != 2) return Internal(std::string(op) + ": expected a bf16 tensor");
  return OkStatus();
}

bf16* B(const Tensor& t) { return static_cast<bf16*>(t.data); }

// cuBLAS's recommended workspace on Hopper; given up front so it never allocates in a step.
constexpr size_t kCublasWorkspaceBytes = 32u << 20;

template <typename T>
size_t AlignedBytes(size_t count) {
  return (count * sizeof(T) + 255) / 256 * 256;
}

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error for the caller
    return 0;
  }
  return count;
}

StatusOr<CudaMemoryInfo> CudaMemoryInfoNow(int device_ordinal) {
  BPT_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_ordinal));
  size_t free_bytes = 0, total_bytes = 0;
  BPT_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_bytes, &total_bytes));
  return CudaMemoryInfo{static_cast<int64_t>(free_bytes), static_cast<int64_t>(total_bytes)};
}

// The step's metadata, laid out identically in pinned host memory and on the device so one
// copy moves it.
struct StepBuffers {
  int32_t* token_ids;                       // [prefill_block]
  int64_t* slots;                           // [prefill_block]
  float* rope_cos;                          // [prefill_block, head_dim / 2]
  float* rope_sin;                          // [prefill_block, head_dim / 2]
  cuda::AttentionSequence* sequences;       // [max_running]
  cuda::PrefillTile* prefill_tiles;         // [prefill_block]: a tile holds at least one token
  cuda::DecodeItem* decode_items;           // [max_running]
  int64_t* gather_rows;                     // [max_running]
};

struct CudaBackend::Impl {
  ModelConfig config;
  EngineOptions options;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudaEvent_t staging_free = nullptr;  // the previous step's metadata has left the host buffer
  cudaEvent_t gather_free = nullptr;
  int num_sms = 0;
  std::vector<void*> device_allocations;
  int64_t weight_bytes = 0;
  int64_t workspace_bytes = 0;

  // KV pool: K then V, each [num_layers, num_blocks * block_size, kv_dim] bf16.
  bf16* k_pool = nullptr;
  bf16* v_pool = nullptr;
  int64_t kv_layer_stride = 0;  // elements
  int kv_num_layers = 0;
  int64_t num_kv_blocks = 0;
  int kv_block_size = 0;
  int kv_dim = 0;
  // The tier threads' copies of whole blocks: one stream per direction (the storer reads, the
  // loader writes), each under its lock, apart from the steps' stream so they overlap the steps.
  cudaStream_t kv_read_stream = nullptr;
  cudaStream_t kv_write_stream = nullptr;
  std::mutex kv_read_mu, kv_write_mu;

  // Per-step metadata.
  size_t step_bytes = 0;       // every buffer below
  size_t step_copy_bytes = 0;  // those BeginStep fills (gather_rows is GatherRows's own)
  void* step_host = nullptr;  // pinned
  void* step_device = nullptr;
  StepBuffers host{}, device{};
  int32_t* block_tables_host = nullptr;  // pinned [max_running * num_kv_blocks]
  int32_t* block_tables_device = nullptr;
  float* decode_acc = nullptr;  // [max_running, num_heads, kMaxDecodeSplits, head_dim]
  float* decode_max = nullptr;  // [max_running, num_heads, kMaxDecodeSplits]
  float* decode_sum = nullptr;  // [max_running, num_heads, kMaxDecodeSplits]
  std::vector<int64_t> positions;  // [prefill_block]

  cuda::AttentionPlan plan;  // the current step's

#if BPTSERVE_WITH_CUDNN
  // cuDNN's attention, when chosen (AllocateKvPool builds it: its graphs need the pool's shape).
  std::unique_ptr<cuda::CudnnAttention> cudnn;
  cuda::CudnnAttentionShape cudnn_shape{};
  cuda::CudnnAttentionPlan cudnn_plan;  // the current step's
  void* cudnn_plan_host = nullptr;  // pinned, laid out as cudnn_plan_device
  void* cudnn_plan_device = nullptr;
  size_t cudnn_plan_bytes = 0;      // the per-sequence arrays before the page table
  cuda::CudnnAttentionBuffers cudnn_host{}, cudnn_device{};
  void* cudnn_workspace = nullptr;
#endif
  bool own_attention_supported = false;  // head_dim and GQA group within the own kernels' range
  std::string attention_fallback;        // why auto took the own kernels, for the load summary

  // Device sampling: per-row parameters and penalties in, chosen tokens out.
  cuda::SampleRowParams* sample_params_host = nullptr;  // pinned [max_running]
  cuda::SampleRowParams* sample_params_device = nullptr;
  cuda::PenaltyEntry* penalties_host = nullptr;  // pinned [max_running * vocab]
  cuda::PenaltyEntry* penalties_device = nullptr;
  cuda::SampleResult* sample_results_host = nullptr;  // pinned [max_running]
  cuda::SampleResult* sample_results_device = nullptr;
  float* sample_scratch = nullptr;  // [max_running, vocab] penalized logits

  // Decode graphs, keyed by what their launches bake in: the batch size and the decode grid.
  enum class GraphMode { kOff, kCapturing, kReplaying };
  using GraphKey = std::pair<int, int>;
  std::map<GraphKey, cudaGraphExec_t> graphs;
  // Shapes whose first step ran eagerly: a capture must never meet a library's first call for a
  // shape (cuBLAS or cuDNN may then allocate, pick kernels or sync, none of which a graph allows).
  std::set<GraphKey> shapes_run_eagerly;
  GraphMode graph_mode = GraphMode::kOff;
  GraphKey graph_key{};
  int64_t graphs_captured = 0;
  int64_t graph_replays = 0;
  bool Replaying() const { return graph_mode == GraphMode::kReplaying; }

  ~Impl() {
    AbandonCapture();
    for (auto& [key, exec] : graphs) cudaGraphExecDestroy(exec);
    if (stream != nullptr) cudaStreamSynchronize(stream);
    for (void* p : device_allocations) cudaFree(p);
    if (step_host != nullptr) cudaFreeHost(step_host);
    for (void* p : {static_cast<void*>(sample_params_host), static_cast<void*>(penalties_host),
                    static_cast<void*>(sample_results_host)})
      if (p != nullptr) cudaFreeHost(p);
    if (block_tables_host != nullptr) cudaFreeHost(block_tables_host);
#if BPTSERVE_WITH_CUDNN
    cudnn.reset();
    if (cudnn_plan_host != nullptr) cudaFreeHost(cudnn_plan_host);
#endif
    if (staging_free != nullptr) cudaEventDestroy(staging_free);
    if (gather_free != nullptr) cudaEventDestroy(gather_free);
    if (cublas != nullptr) cublasDestroy(cublas);
    for (cudaStream_t s : {kv_read_stream, kv_write_stream, stream})
      if (s != nullptr) cudaStreamDestroy(s);
  }

  // Into to_host or from from_host (the other is null), both
  // [num_layers][2 (K, V)][blocks.size()][block_size][kv_dim] bf16. One copy per run of
  // consecutive blocks in a layer's K or V (a sequence's blocks mostly are), then a wait on the
  // copy stream, so the host buffer is whole (or the pool written) on return. A block of -1 is
  // skipped (writes only).
  Status CopyKvBlocks(std::span<const int32_t> blocks, uint8_t* to_host, const uint8_t* from_host,
                      cudaStream_t copy_stream) {
    const bool reading = to_host != nullptr;
    for (int32_t b : blocks)
      if (b < (reading ? 0 : -1) || b >= num_kv_blocks)
        return Internal(std::string(reading ? "ReadKvBlocks" : "WriteKvBlocks") + ": block " + std::to_string(b) +
                        " is outside the pool");
    // The tier threads are the runtime's too: their current device must be the backend's.
    BPT_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.cuda.device_ordinal));
    const size_t slab = static_cast<size_t>(kv_block_size) * kv_dim * sizeof(bf16);
    const size_t n = blocks.size();
    for (int layer = 0; layer < kv_num_layers; ++layer)
      for (int kv = 0; kv < 2; ++kv) {
        bf16* layer_pool = (kv == 0 ? k_pool : v_pool) + layer * kv_layer_stride;  // [num_blocks, block_size, kv_dim]
        const size_t part = (static_cast<size_t>(layer) * 2 + kv) * n * slab;  // [blocks.size(), block_size, kv_dim]
        for (size_t i = 0; i < n;) {
          if (blocks[i] < 0) {
            ++i;
            continue;
          }
          size_t run = 1;
          while (i + run < n && blocks[i + run] == blocks[i] + static_cast<int32_t>(run)) ++run;
          void* device = layer_pool + static_cast<int64_t>(blocks[i]) * kv_block_size * kv_dim;
          const size_t at = part + i * slab;
          BPT_CUDA_RETURN_IF_ERROR(
              reading ? cudaMemcpyAsync(to_host + at, device, run * slab, cudaMemcpyDeviceToHost, copy_stream)
                      : cudaMemcpyAsync(device, from_host + at, run * slab, cudaMemcpyHostToDevice, copy_stream));
          i += run;
        }
      }
    BPT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(copy_stream));
    return OkStatus();
  }

  StatusOr<void*> DeviceAlloc(size_t bytes, const char* what) {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return ResourceExhausted(std::string("cannot allocate ") + std::to_string(bytes) + " bytes of device memory for " +
                               what + ": " + cudaGetErrorString(e));
    }
    device_allocations.push_back(p);
    return p;
  }

  Status AllocateStepBuffers() {
    const int64_t t = options.scheduler.prefill_block, s = options.scheduler.max_running, half = config.head_dim / 2;
    const size_t sizes[] = {AlignedBytes<int32_t>(t),
                            AlignedBytes<int64_t>(t),
                            AlignedBytes<float>(t * half),
                            AlignedBytes<float>(t * half),
                            AlignedBytes<cuda::AttentionSequence>(s),
                            AlignedBytes<cuda::PrefillTile>(t),
                            AlignedBytes<cuda::DecodeItem>(s),
                            AlignedBytes<int64_t>(s)};
    step_bytes = 0;
    for (size_t b : sizes) step_bytes += b;
    step_copy_bytes = step_bytes - sizes[std::size(sizes) - 1];
    BPT_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&step_host, step_bytes, cudaHostAllocDefault));
    BPT_ASSIGN_OR_RETURN(step_device, DeviceAlloc(step_bytes, "step metadata"));
    auto carve = [&](void* base, StepBuffers* b) {
      char* p = static_cast<char*>(base);
      void** fields[] = {reinterpret_cast<void**>(&b->token_ids),     reinterpret_cast<void**>(&b->slots),
                         reinterpret_cast<void**>(&b->rope_cos),      reinterpret_cast<void**>(&b->rope_sin),
                         reinterpret_cast<void**>(&b->sequences),     reinterpret_cast<void**>(&b->prefill_tiles),
                         reinterpret_cast<void**>(&b->decode_items),  reinterpret_cast<void**>(&b->gather_rows)};
      for (size_t i = 0; i < std::size(fields); ++i) {
        *fields[i] = p;
        p += sizes[i];
      }
    };
    carve(step_host, &host);
    carve(step_device, &device);
    workspace_bytes += static_cast<int64_t>(step_bytes);
    positions.resize(t);

    const size_t partial_heads = static_cast<size_t>(s) * config.num_heads * cuda::kMaxDecodeSplits;
    BPT_ASSIGN_OR_RETURN(void* acc, DeviceAlloc(partial_heads * config.head_dim * sizeof(float), "decode partials"));
    BPT_ASSIGN_OR_RETURN(void* mx, DeviceAlloc(partial_heads * sizeof(float), "decode partials"));
    BPT_ASSIGN_OR_RETURN(void* sm, DeviceAlloc(partial_heads * sizeof(float), "decode partials"));
    decode_acc = static_cast<float*>(acc);
    decode_max = static_cast<float*>(mx);
    decode_sum = static_cast<float*>(sm);
    workspace_bytes += static_cast<int64_t>(partial_heads * (config.head_dim + 2) * sizeof(float));
    return options.cuda.device_sampling ? AllocateSamplingBuffers() : OkStatus();
  }

  Status AllocateSamplingBuffers() {
    const size_t rows = options.scheduler.max_running, vocab = config.vocab_size;
    auto both = [&](auto** host_ptr, auto** device_ptr, size_t count, const char* what) -> Status {
      const size_t bytes = count * sizeof(**host_ptr);
      BPT_CUDA_RETURN_IF_ERROR(cudaHostAlloc(reinterpret_cast<void**>(host_ptr), bytes, cudaHostAllocDefault));
      BPT_ASSIGN_OR_RETURN(void* d, DeviceAlloc(bytes, what));
      *device_ptr = static_cast<std::remove_reference_t<decltype(*device_ptr)>>(d);
      workspace_bytes += static_cast<int64_t>(bytes);
      return OkStatus();
    };
    BPT_RETURN_IF_ERROR(both(&sample_params_host, &sample_params_device, rows, "sampling parameters"));
    BPT_RETURN_IF_ERROR(both(&penalties_host, &penalties_device, rows * vocab, "sampling penalties"));
    BPT_RETURN_IF_ERROR(both(&sample_results_host, &sample_results_device, rows, "sampling results"));
    BPT_ASSIGN_OR_RETURN(void* scratch, DeviceAlloc(rows * vocab * sizeof(float), "sampling scratch"));
    sample_scratch = static_cast<float*>(scratch);
    workspace_bytes += static_cast<int64_t>(rows * vocab * sizeof(float));
    return OkStatus();
  }

  // Copies on the backend's stream and waits: a plain cudaMemcpy from pageable memory may
  // return before its DMA lands, and this non-blocking stream would not wait for it.
  Status CopyToDeviceNow(void* device_ptr, const void* host_ptr, size_t bytes) {
    BPT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(device_ptr, host_ptr, bytes, cudaMemcpyHostToDevice, stream));
    BPT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    return OkStatus();
  }

#if BPTSERVE_WITH_CUDNN
  // Builds cuDNN's graphs for the pool and the staging buffers of their per-step plan.
  Status StartCudnn() {
    cudnn_shape = {options.scheduler.max_running, config.num_heads,
                   config.num_kv_heads,           config.head_dim,
                   kv_block_size,                 num_kv_blocks,
                   /*table_width=*/num_kv_blocks,  // no sequence holds more blocks than the pool
                   options.scheduler.prefill_block,
                   /*qkv_stride=*/static_cast<int64_t>(config.num_heads + 2 * config.num_kv_heads) * config.head_dim,
                   /*out_stride=*/static_cast<int64_t>(config.num_heads) * config.head_dim,
                   config.sliding_window};
    BPT_ASSIGN_OR_RETURN(cudnn, cuda::CudnnAttention::Create(cudnn_shape, stream));
    const int64_t b = cudnn_shape.batch;
    const size_t sizes[] = {AlignedBytes<int32_t>(b), AlignedBytes<int32_t>(b), AlignedBytes<int32_t>(b + 1),
                            AlignedBytes<int32_t>(b + 1), AlignedBytes<int32_t>(b * cudnn_shape.table_width)};
    size_t total = 0;
    for (size_t bytes : sizes) total += bytes;
    cudnn_plan_bytes = total - sizes[std::size(sizes) - 1];
    BPT_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&cudnn_plan_host, total, cudaHostAllocDefault));
    BPT_ASSIGN_OR_RETURN(cudnn_plan_device, DeviceAlloc(total, "cuDNN attention plans"));
    auto carve = [&](void* base, cuda::CudnnAttentionBuffers* out) {
      char* p = static_cast<char*>(base);
      int32_t** fields[] = {&out->seq_len_q, &out->seq_len_kv, &out->q_offsets, &out->out_offsets, &out->page_table};
      for (size_t i = 0; i < std::size(fields); ++i) {
        *fields[i] = reinterpret_cast<int32_t*>(p);
        p += sizes[i];
      }
    };
    carve(cudnn_plan_host, &cudnn_host);
    carve(cudnn_plan_device, &cudnn_device);
    workspace_bytes += static_cast<int64_t>(total);
    if (cudnn->workspace_bytes() > 0) {
      BPT_ASSIGN_OR_RETURN(cudnn_workspace, DeviceAlloc(cudnn->workspace_bytes(), "the cuDNN attention workspace"));
      workspace_bytes += cudnn->workspace_bytes();
    }
    return OkStatus();
  }

  // The step's cuDNN plan to the device: the per-sequence arrays, then only the rows and
  // columns of the page table the step uses.
  Status CopyCudnnPlan() {
    BPT_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(cudnn_plan_device, cudnn_plan_host, cudnn_plan_bytes, cudaMemcpyHostToDevice, stream));
    if (cudnn_plan.num_sequences == 0) return OkStatus();
    const size_t pitch = static_cast<size_t>(cudnn_shape.table_width) * sizeof(int32_t);
    BPT_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(cudnn_device.page_table, pitch, cudnn_host.page_table, pitch,
                                               static_cast<size_t>(cudnn_plan.used_width) * sizeof(int32_t),
                                               cudnn_plan.num_sequences, cudaMemcpyHostToDevice, stream));
    return OkStatus();
  }
#endif

  // Ends a capture that the step never finished (an op failed), discarding what it recorded.
  void AbandonCapture() {
    if (graph_mode != GraphMode::kCapturing) return;
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(stream, &graph);
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();
    graph_mode = GraphMode::kOff;
  }

  bool UsesCudnn() const {
#if BPTSERVE_WITH_CUDNN
    return cudnn != nullptr;
#else
    return false;
#endif
  }

  // Decode steps replay a graph captured from the second step of the same shape.
  Status StartGraph() {
    graph_mode = GraphMode::kOff;
    if (!options.cuda.graphs || !plan.decode_only) return OkStatus();
    // cuDNN's decode graph takes any context, so only the batch size shapes its launches.
    graph_key = {plan.num_decode_items, UsesCudnn() ? 0 : plan.max_splits_in_step};
    if (graphs.count(graph_key) != 0) {
      graph_mode = GraphMode::kReplaying;
      return OkStatus();
    }
    if (shapes_run_eagerly.insert(graph_key).second) return OkStatus();
    BPT_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    graph_mode = GraphMode::kCapturing;
    return OkStatus();
  }

  // Runs the step's graph: instantiated first when this step captured it.
  Status FinishGraph() {
    if (graph_mode == GraphMode::kOff) return OkStatus();
    if (graph_mode == GraphMode::kCapturing) {
      graph_mode = GraphMode::kOff;
      cudaGraph_t graph = nullptr;
      BPT_CUDA_RETURN_IF_ERROR(cudaStreamEndCapture(stream, &graph));
      cudaGraphExec_t exec = nullptr;
      const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
      cudaGraphDestroy(graph);
      BPT_CUDA_RETURN_IF_ERROR(instantiated);
      graphs[graph_key] = exec;
      ++graphs_captured;
    } else {
      ++graph_replays;
    }
    graph_mode = GraphMode::kOff;
    const auto graph = graphs.find(graph_key);
    BPT_CHECK(graph != graphs.end(), "the decode graph for this step shape was not captured");
    return cuda::CudaStatus(cudaGraphLaunch(graph->second, stream), "cudaGraphLaunch");
  }
};

CudaBackend::CudaBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaBackend::~CudaBackend() = default;

StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(const ModelConfig& config,
                                                           const EngineOptions& options) {
  if (CudaDeviceCount() <= options.cuda.device_ordinal)
    return FailedPrecondition("device cuda: no CUDA device " + std::to_string(options.cuda.device_ordinal) +
                              " is visible (" + std::to_string(CudaDeviceCount()) + " found)");
  if (options.scheduler.prefill_block <= 0 || options.scheduler.max_running <= 0)
    return InvalidArgument("device cuda: step sizes must be positive");
  const int group = config.num_heads / config.num_kv_heads;
  std::string own_unsupported;
  if (!cuda::AttentionHeadDimSupported(config.head_dim))
    own_unsupported = "head_dim " + std::to_string(config.head_dim) + " is not supported by the own attention kernels (32, 64, 128)";
  else if (cuda::kPrefillTileRows % group != 0)
    own_unsupported = std::to_string(group) + " query heads per KV head; the own attention kernels take divisors of 64";
  const AttentionBackend attention = options.cuda.attention_backend;
  if (!own_unsupported.empty() && (attention == AttentionBackend::kOwn || !BPTSERVE_WITH_CUDNN))
    return Unimplemented("device cuda: " + own_unsupported);
  if (attention == AttentionBackend::kCudnn && !BPTSERVE_WITH_CUDNN)
    return FailedPrecondition(
        "device cuda: --attention-backend cudnn, but this build has no cuDNN attention (CMake found no cuDNN "
        "frontend headers: pip install nvidia-cudnn-frontend, then reconfigure)");

  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->options = options;
  impl->own_attention_supported = own_unsupported.empty();
  BPT_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.cuda.device_ordinal));
  BPT_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&impl->num_sms, cudaDevAttrMultiProcessorCount, options.cuda.device_ordinal));
  BPT_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking));
  BPT_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&impl->staging_free, cudaEventDisableTiming));
  BPT_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&impl->gather_free, cudaEventDisableTiming));
  BPT_CUBLAS_RETURN_IF_ERROR(cublasCreate(&impl->cublas));
  BPT_CUBLAS_RETURN_IF_ERROR(cublasSetStream(impl->cublas, impl->stream));
  BPT_ASSIGN_OR_RETURN(void* cublas_workspace, impl->DeviceAlloc(kCublasWorkspaceBytes, "the cuBLAS workspace"));
  BPT_CUBLAS_RETURN_IF_ERROR(cublasSetWorkspace(impl->cublas, cublas_workspace, kCublasWorkspaceBytes));
  impl->workspace_bytes += static_cast<int64_t>(kCublasWorkspaceBytes);
  BPT_RETURN_IF_ERROR(impl->AllocateStepBuffers());
  BPT_RETURN_IF_ERROR(cuda::ConfigureAttentionKernels());
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(impl)));
}

StatusOr<Tensor> CudaBackend::UploadWeight(HostMatrix&& host) {
  if (static_cast<int64_t>(host.data.size()) != host.rows * host.cols)
    return Internal("weight of " + std::to_string(host.data.size()) + " values is not [" + std::to_string(host.rows) +
                    ", " + std::to_string(host.cols) + "]");
  std::vector<bf16> converted(host.data.size());
  for (size_t i = 0; i < converted.size(); ++i) converted[i] = __float2bfloat16(host.data[i]);
  std::vector<float>().swap(host.data);
  const size_t bytes = converted.size() * sizeof(bf16);
  BPT_ASSIGN_OR_RETURN(void* p, impl_->DeviceAlloc(bytes, "weights"));
  BPT_RETURN_IF_ERROR(impl_->CopyToDeviceNow(p, converted.data(), bytes));
  impl_->weight_bytes += static_cast<int64_t>(bytes);
  return Tensor{p, host.rows, host.cols, 2};
}

StatusOr<Tensor> CudaBackend::AllocateActivation(int64_t rows, int64_t cols, Precision precision) {
  const int elem = precision == Precision::kFloat32 ? 4 : 2;
  const size_t bytes = static_cast<size_t>(rows * cols) * elem;
  BPT_ASSIGN_OR_RETURN(void* p, impl_->DeviceAlloc(bytes, "activations"));
  impl_->workspace_bytes += static_cast<int64_t>(bytes);
  return Tensor{p, rows, cols, elem};
}

Status CudaBackend::AllocateKvPool(int num_layers, int64_t num_blocks, int block_size, int kv_dim) {
  Impl& m = *impl_;
  m.kv_block_size = block_size;
  m.kv_dim = kv_dim;
  m.num_kv_blocks = num_blocks;
  m.kv_layer_stride = num_blocks * block_size * kv_dim;
  m.kv_num_layers = num_layers;
  const size_t half_bytes = static_cast<size_t>(m.kv_layer_stride) * num_layers * sizeof(bf16);
  BPT_ASSIGN_OR_RETURN(void* k, m.DeviceAlloc(half_bytes, "the KV cache (K)"));
  BPT_ASSIGN_OR_RETURN(void* v, m.DeviceAlloc(half_bytes, "the KV cache (V)"));
  m.k_pool = static_cast<bf16*>(k);
  m.v_pool = static_cast<bf16*>(v);
  BPT_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&m.kv_read_stream, cudaStreamNonBlocking));
  BPT_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&m.kv_write_stream, cudaStreamNonBlocking));
  // Zero, once: a kernel that reads a whole last block (masking the unwritten slots' scores)
  // still multiplies their V by 0, which only a finite V keeps at 0.
  BPT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(k, 0, half_bytes, m.stream));
  BPT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(v, 0, half_bytes, m.stream));
  // Done before the tier threads' copies, which run on streams of their own, can meet it.
  BPT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(m.stream));
  // A sequence's block table has at most one entry per pool block.
  const size_t table_bytes = static_cast<size_t>(m.options.scheduler.max_running) * num_blocks * sizeof(int32_t);
  BPT_CUDA_RETURN_IF_ERROR(cudaHostAlloc(reinterpret_cast<void**>(&m.block_tables_host), table_bytes, cudaHostAllocDefault));
  BPT_ASSIGN_OR_RETURN(void* tables, m.DeviceAlloc(table_bytes, "block tables"));
  m.block_tables_device = static_cast<int32_t*>(tables);
  m.workspace_bytes += static_cast<int64_t>(table_bytes);
#if BPTSERVE_WITH_CUDNN
  if (m.options.cuda.attention_backend != AttentionBackend::kOwn) {
    const Status started = m.StartCudnn();
    if (!started.ok()) {
      m.cudnn.reset();
      if (m.options.cuda.attention_backend == AttentionBackend::kCudnn || !m.own_attention_supported) return started;
      m.attention_fallback = started.message();
    }
  }
#endif
  return OkStatus();
}

int64_t CudaBackend::KvBlockBytes() const {
  const Impl& m = *impl_;
  return 2LL * m.kv_num_layers * m.kv_block_size * m.kv_dim * static_cast<int64_t>(sizeof(bf16));
}

Status CudaBackend::ReadKvBlocks(std::span<const int32_t> blocks, uint8_t* host) const {
  std::lock_guard<std::mutex> lock(impl_->kv_read_mu);
  return impl_->CopyKvBlocks(blocks, host, nullptr, impl_->kv_read_stream);
}

Status CudaBackend::WriteKvBlocks(std::span<const int32_t> blocks, const uint8_t* host) {
  std::lock_guard<std::mutex> lock(impl_->kv_write_mu);
  return impl_->CopyKvBlocks(blocks, nullptr, host, impl_->kv_write_stream);
}

Status CudaBackend::WaitForSteps() {
  // Between steps no graph is open; one still open is a failed step's, and must be dropped,
  // not launched (nor kept for replays).
  impl_->AbandonCapture();
  impl_->graph_mode = Impl::GraphMode::kOff;
  BPT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(impl_->stream));
  return OkStatus();
}

void* CudaBackend::AllocatePinnedHostMemory(size_t bytes) {
  if (cudaSetDevice(impl_->options.cuda.device_ordinal) != cudaSuccess) return nullptr;
  void* p = nullptr;
  // Portable: the tier threads copy from it, whatever context they run in.
  if (cudaHostAlloc(&p, bytes, cudaHostAllocPortable) != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it, so the next call does not report it
    return nullptr;
  }
  return p;
}

void CudaBackend::FreePinnedHostMemory(void* p) {
  if (p != nullptr) cudaFreeHost(p);
}

std::string CudaBackend::attention_kernels() const {
  if (impl_->UsesCudnn()) return "cudnn";
  if (!impl_->attention_fallback.empty()) return "cuda (auto: " + impl_->attention_fallback + ")";
  return "cuda";
}

std::string CudaBackend::cudnn_description() const {
#if BPTSERVE_WITH_CUDNN
  if (impl_->UsesCudnn()) return impl_->cudnn->description();
#endif
  return "";
}

int64_t CudaBackend::KvBytesPerToken(int num_layers, int kv_dim) const {
  return 2LL * num_layers * kv_dim * static_cast<int64_t>(sizeof(bf16));
}

int64_t CudaBackend::WeightBytes() const { return impl_->weight_bytes; }
int64_t CudaBackend::WorkspaceBytes() const { return impl_->workspace_bytes; }
int64_t CudaBackend::graphs_captured() const { return impl_->graphs_captured; }
int64_t CudaBackend::graph_replays() const { return impl_->graph_replays; }

int64_t CudaBackend::FreeMemoryBytes() const {
  StatusOr<CudaMemoryInfo> info = CudaMemoryInfoNow(impl_->options.cuda.device_ordinal);
  return info.ok() ? info->free_bytes : 0;
}

Status CudaBackend::BeginStep(const StepLayout& step, const Rope& rope) {
  Impl& m = *impl_;
  if (m.k_pool == nullptr) return Internal("BeginStep before AllocateKvPool");
  m.AbandonCapture();
  BPT_CUDA_RETURN_IF_ERROR(cudaSetDevice(m.options.cuda.device_ordinal));
  // The previous step's copy must have read the pinned buffers before they are rewritten.
  BPT_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(m.staging_free));

  const cuda::AttentionPlanLimits limits{m.kv_block_size,
                                    m.num_kv_blocks,
                                    m.options.scheduler.prefill_block,
                                    m.options.scheduler.max_running,
                                    m.config.num_heads / m.config.num_kv_heads,
                                    m.config.num_kv_heads,
                                    m.config.sliding_window,
                                    m.num_sms};
  const cuda::AttentionPlanBuffers buffers{m.host.sequences, m.host.prefill_tiles, m.host.decode_items,
                                      m.block_tables_host, m.host.slots,      m.positions.data()};
  BPT_ASSIGN_OR_RETURN(m.plan, cuda::PlanAttention(step, limits, buffers));
#if BPTSERVE_WITH_CUDNN
  if (m.UsesCudnn()) {
    BPT_ASSIGN_OR_RETURN(m.cudnn_plan, cuda::PlanCudnnAttention(step, m.cudnn_shape, m.cudnn_host));
  }
#endif
  const int64_t n = m.plan.num_tokens;
  std::memcpy(m.host.token_ids, step.token_ids.data(), n * sizeof(int32_t));
  rope.Fill(m.positions.data(), n, m.host.rope_cos, m.host.rope_sin);
  // A graph's logit rows are the step's rows in order; they travel with the metadata.
  const bool graph = m.options.cuda.graphs && m.plan.decode_only;
  if (graph)
    for (size_t i = 0; i < step.sequences.size(); ++i) m.host.gather_rows[i] = static_cast<int64_t>(i);

  BPT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(m.step_device, m.step_host, graph ? m.step_bytes : m.step_copy_bytes,
                                           cudaMemcpyHostToDevice, m.stream));
  if (m.UsesCudnn()) {
#if BPTSERVE_WITH_CUDNN
    BPT_RETURN_IF_ERROR(m.CopyCudnnPlan());
#endif
  } else {
    BPT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(m.block_tables_device, m.block_tables_host,
                                             m.plan.block_table_entries * sizeof(int32_t), cudaMemcpyHostToDevice,
                                             m.stream));
  }
  BPT_CUDA_RETURN_IF_ERROR(cudaEventRecord(m.staging_free, m.stream));
  return m.StartGraph();
}

Status CudaBackend::Embed(const Tensor& table, Tensor out) {
  BPT_RETURN_IF_ERROR(CheckShape("Embed", out, impl_->plan.num_tokens, table.cols));
  BPT_RETURN_IF_ERROR(CheckBf16("Embed", out));
  if (impl_->Replaying()) return OkStatus();
  return cuda::LaunchEmbed(B(table), table.rows, impl_->device.token_ids, impl_->plan.num_tokens, table.cols, B(out),
                           impl_->stream);
}

Status CudaBackend::RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor out) {
  BPT_RETURN_IF_ERROR(CheckShape("RmsNorm", out, x.rows, x.cols));
  BPT_RETURN_IF_ERROR(CheckShape("RmsNorm weight", weight, 1, x.cols));
  BPT_RETURN_IF_ERROR(CheckBf16("RmsNorm", x));
  BPT_RETURN_IF_ERROR(CheckBf16("RmsNorm", out));
  if (impl_->Replaying()) return OkStatus();
  return cuda::LaunchRmsNorm(B(x), B(weight), x.rows, x.cols, eps, B(out), impl_->stream);
}

Status CudaBackend::AddRmsNorm(Tensor x, const Tensor& y, const Tensor& weight, float eps, Tensor out) {
  BPT_RETURN_IF_ERROR(CheckShape("AddRmsNorm y", y, x.rows, x.cols));
  BPT_RETURN_IF_ERROR(CheckShape("AddRmsNorm out", out, x.rows, x.cols));
  BPT_RETURN_IF_ERROR(CheckShape("AddRmsNorm weight", weight, 1, x.cols));
  BPT_RETURN_IF_ERROR(CheckBf16("AddRmsNorm", x));
  if (impl_->Replaying()) return OkStatus();
  return cuda::LaunchAddRmsNorm(B(x), B(y), B(weight), x.rows, x.cols, eps, B(out), impl_->stream);
}

Status CudaBackend::Linear(const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor out) {
  BPT_RETURN_IF_ERROR(CheckShape("Linear input", x, out.rows, weight.cols));
  BPT_RETURN_IF_ERROR(CheckShape("Linear output", out, x.rows, weight.rows));
  BPT_RETURN_IF_ERROR(CheckBf16("Linear input", x));
  if (bias != nullptr) {
    BPT_RETURN_IF_ERROR(CheckShape("Linear bias", *bias, 1, out.cols));
    BPT_RETURN_IF_ERROR(CheckBf16("Linear output with bias", out));
  }
  if (impl_->Replaying()) return OkStatus();
  // cuBLAS is column-major: row-major out[n, o] = x[n, k] W[o, k]^T is, in its view,
  // out^T[o, n] = W[o, k] x^T[k, n], where row-major W reads as [k, o] (so op T) and x as [k, n].
  const float alpha = 1.0f, beta = 0.0f;
  const cudaDataType out_type = out.elem_bytes == 4 ? CUDA_R_32F : CUDA_R_16BF;
  BPT_CUBLAS_RETURN_IF_ERROR(cublasGemmEx(
      impl_->cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(weight.rows), static_cast<int>(x.rows),
      static_cast<int>(x.cols), &alpha, weight.data, CUDA_R_16BF, static_cast<int>(weight.cols), x.data, CUDA_R_16BF,
      static_cast<int>(x.cols), &beta, out.data, out_type, static_cast<int>(out.cols), CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT));
  if (bias != nullptr) return cuda::LaunchAddBias(B(out), B(*bias), out.rows, out.cols, impl_->stream);
  return OkStatus();
}

Status CudaBackend::Add(Tensor x, const Tensor& y) {
  BPT_RETURN_IF_ERROR(CheckShape("Add", y, x.rows, x.cols));
  BPT_RETURN_IF_ERROR(CheckBf16("Add", x));
  if (impl_->Replaying()) return OkStatus();
  return cuda::LaunchAdd(B(x), B(y), x.rows * x.cols, impl_->stream);
}

Status CudaBackend::ApplyRope(Tensor qkv, const AttentionShape& shape) {
  const int q_cols = shape.num_heads * shape.head_dim, kv_cols = shape.num_kv_heads * shape.head_dim;
  BPT_RETURN_IF_ERROR(CheckShape("ApplyRope", qkv, impl_->plan.num_tokens, q_cols + 2 * kv_cols));
  if (impl_->Replaying()) return OkStatus();
  return cuda::LaunchRope(B(qkv), qkv.rows, qkv.cols, shape.num_heads, shape.num_kv_heads, shape.head_dim,
                          impl_->device.rope_cos, impl_->device.rope_sin, impl_->stream);
}

Status CudaBackend::AppendKv(int layer, const Tensor& qkv, const AttentionShape& shape) {
  const int q_cols = shape.num_heads * shape.head_dim, kv_cols = shape.num_kv_heads * shape.head_dim;
  BPT_RETURN_IF_ERROR(CheckShape("AppendKv", qkv, impl_->plan.num_tokens, q_cols + 2 * kv_cols));
  if (kv_cols != impl_->kv_dim) return Internal("AppendKv: the KV pool was sized for another kv_dim");
  if (impl_->Replaying()) return OkStatus();
  const int64_t offset = layer * impl_->kv_layer_stride;
  return cuda::LaunchAppendKv(B(qkv), qkv.rows, qkv.cols, q_cols, kv_cols, impl_->device.slots,
                              impl_->k_pool + offset, impl_->v_pool + offset, impl_->stream);
}

Status CudaBackend::Attention(int layer, const Tensor& qkv, const AttentionShape& shape, Tensor out) {
  Impl& m = *impl_;
  const int q_cols = shape.num_heads * shape.head_dim, kv_cols = shape.num_kv_heads * shape.head_dim;
  BPT_RETURN_IF_ERROR(CheckShape("Attention input", qkv, m.plan.num_tokens, q_cols + 2 * kv_cols));
  BPT_RETURN_IF_ERROR(CheckShape("Attention output", out, m.plan.num_tokens, q_cols));
  if (impl_->Replaying()) return OkStatus();
  const int64_t offset = layer * m.kv_layer_stride;
#if BPTSERVE_WITH_CUDNN
  if (m.UsesCudnn())
    return m.cudnn->Run(m.cudnn_plan.decode_only, B(qkv), m.k_pool + offset, m.v_pool + offset, m.cudnn_device,
                        B(out), m.cudnn_workspace);
#endif
  cuda::AttentionArgs args{};
  args.qkv = B(qkv);
  args.qkv_stride = qkv.cols;
  args.k_cache = m.k_pool + offset;
  args.v_cache = m.v_pool + offset;
  args.block_tables = m.block_tables_device;
  args.block_size = m.kv_block_size;
  args.out = B(out);
  args.out_stride = out.cols;
  args.num_heads = shape.num_heads;
  args.num_kv_heads = shape.num_kv_heads;
  args.head_dim = shape.head_dim;
  args.sliding_window = shape.sliding_window;
  args.scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  BPT_RETURN_IF_ERROR(cuda::LaunchPrefillAttention(args, m.device.sequences, m.device.prefill_tiles,
                                                   m.plan.num_prefill_tiles, m.stream));
  return cuda::LaunchDecodeAttention(args, m.device.sequences, m.device.decode_items, m.plan.num_decode_items,
                                     m.plan.max_splits_in_step, cuda::kMaxDecodeSplits, m.decode_acc, m.decode_max,
                                     m.decode_sum, m.stream);
}

Status CudaBackend::SwiGlu(const Tensor& gate_up, Tensor out) {
  BPT_RETURN_IF_ERROR(CheckShape("SwiGlu", gate_up, out.rows, 2 * out.cols));
  if (impl_->Replaying()) return OkStatus();
  return cuda::LaunchSwiGlu(B(gate_up), out.rows, out.cols, B(out), impl_->stream);
}

Status CudaBackend::GatherRows(const Tensor& x, const std::vector<int64_t>& rows, Tensor out) {
  Impl& m = *impl_;
  BPT_RETURN_IF_ERROR(CheckShape("GatherRows", out, static_cast<int64_t>(rows.size()), x.cols));
  if (static_cast<int64_t>(rows.size()) > m.options.scheduler.max_running)
    return Internal("GatherRows: more rows than the workspace holds");
  for (int64_t r : rows)
    if (r < 0 || r >= x.rows) return Internal("GatherRows: row " + std::to_string(r) + " is outside the tensor");
  if (m.graph_mode != Impl::GraphMode::kOff) {  // the rows BeginStep sent: one per sequence, in order
    for (size_t i = 0; i < rows.size(); ++i)
      if (rows[i] != static_cast<int64_t>(i)) return Internal("GatherRows: a decode graph gathers every row in order");
    if (m.Replaying()) return OkStatus();
    return cuda::LaunchGatherRows(B(x), x.cols, m.device.gather_rows, static_cast<int64_t>(rows.size()), B(out),
                                  m.stream);
  }
  BPT_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(m.gather_free));
  std::memcpy(m.host.gather_rows, rows.data(), rows.size() * sizeof(int64_t));
  BPT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(m.device.gather_rows, m.host.gather_rows, rows.size() * sizeof(int64_t),
                                           cudaMemcpyHostToDevice, m.stream));
  BPT_CUDA_RETURN_IF_ERROR(cudaEventRecord(m.gather_free, m.stream));
  return cuda::LaunchGatherRows(B(x), x.cols, m.device.gather_rows, static_cast<int64_t>(rows.size()), B(out),
                                m.stream);
}

Status CudaBackend::CopyToHost(const Tensor& x, float* host) {
  BPT_RETURN_IF_ERROR(impl_->FinishGraph());
  const size_t count = static_cast<size_t>(x.rows * x.cols);
  if (x.elem_bytes == 4) {
    BPT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host, x.data, count * sizeof(float), cudaMemcpyDeviceToHost, impl_->stream));
    BPT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(impl_->stream));
    return OkStatus();
  }
  std::vector<bf16> staged(count);
  BPT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(staged.data(), x.data, count * sizeof(bf16), cudaMemcpyDeviceToHost, impl_->stream));
  BPT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(impl_->stream));
  for (size_t i = 0; i < count; ++i) host[i] = __bfloat162float(staged[i]);
  return OkStatus();
}

bool CudaBackend::SamplesOnDevice() const { return impl_->options.cuda.device_sampling; }

Status CudaBackend::Sample(const Tensor& logits, const std::vector<SamplingRow>& rows,
                           std::vector<SampledToken>* out) {
  Impl& m = *impl_;
  const int vocab = m.config.vocab_size;
  if (!m.options.cuda.device_sampling) return FailedPrecondition("device sampling is off");
  BPT_RETURN_IF_ERROR(CheckShape("Sample", logits, static_cast<int64_t>(rows.size()), vocab));
  if (logits.elem_bytes != 4) return Internal("Sample: logits must be fp32");
  if (static_cast<int64_t>(rows.size()) > m.options.scheduler.max_running)
    return Internal("Sample: more rows than the workspace holds");
  BPT_RETURN_IF_ERROR(m.FinishGraph());

  // The previous Sample waited for its results, so the pinned buffers are free.
  int32_t entries = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const SamplingRow& row = rows[r];
    const SamplingParams& sp = *row.params;
    const int32_t begin = entries;
    for (int32_t token : *row.prompt_tokens) {
      const auto it = row.output_counts->find(token);
      m.penalties_host[entries++] = {token, it == row.output_counts->end() ? 0 : it->second, 1};
    }
    for (const auto& [token, count] : *row.output_counts)
      if (!std::binary_search(row.prompt_tokens->begin(), row.prompt_tokens->end(), token))
        m.penalties_host[entries++] = {token, count, 0};
    m.sample_params_host[r] = {sp.temperature,        sp.top_k,
                               sp.top_p,              sp.min_p,
                               sp.repetition_penalty, sp.presence_penalty,
                               sp.frequency_penalty,  static_cast<float>(row.uniform),
                               sp.top_logprobs,       begin,
                               entries - begin};
  }
  const size_t n = rows.size();
  BPT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(m.sample_params_device, m.sample_params_host,
                                           n * sizeof(cuda::SampleRowParams), cudaMemcpyHostToDevice, m.stream));
  if (entries > 0)
    BPT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(m.penalties_device, m.penalties_host, entries * sizeof(cuda::PenaltyEntry),
                                             cudaMemcpyHostToDevice, m.stream));
  BPT_RETURN_IF_ERROR(cuda::LaunchSample(static_cast<const float*>(logits.data), static_cast<int>(n), vocab,
                                         m.sample_params_device, m.penalties_device, m.sample_scratch,
                                         m.sample_results_device, m.stream));
  BPT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(m.sample_results_host, m.sample_results_device,
                                           n * sizeof(cuda::SampleResult), cudaMemcpyDeviceToHost, m.stream));
  BPT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(m.stream));

  out->resize(n);
  for (size_t r = 0; r < n; ++r) {
    const cuda::SampleResult& result = m.sample_results_host[r];
    SampledToken& token = (*out)[r];
    token.token_id = result.token;
    token.logprob = result.logprob;
    token.top_logprobs.clear();
    for (int k = 0; k < std::min({rows[r].params->top_logprobs, cuda::kMaxTopLogprobs, vocab}); ++k)
      token.top_logprobs.emplace_back(result.top_ids[k], result.top_logprobs[k]);
  }
  return OkStatus();
}

Status CudaBackend::PoisonForTests() {
  Impl& m = *impl_;
  if (m.k_pool == nullptr) return FailedPrecondition("PoisonForTests before AllocateKvPool");
  const size_t pool_bytes = static_cast<size_t>(m.kv_layer_stride) * m.kv_num_layers * sizeof(bf16);
  const size_t partial_heads =
      static_cast<size_t>(m.options.scheduler.max_running) * m.config.num_heads * cuda::kMaxDecodeSplits;
  BPT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(m.k_pool, 0xFF, pool_bytes, m.stream));
  BPT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(m.v_pool, 0xFF, pool_bytes, m.stream));
  BPT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(m.decode_acc, 0xFF, partial_heads * m.config.head_dim * sizeof(float), m.stream));
  BPT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(m.decode_max, 0xFF, partial_heads * sizeof(float), m.stream));
  BPT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(m.decode_sum, 0xFF, partial_heads * sizeof(float), m.stream));
  BPT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(m.stream));
  return OkStatus();
}

Status CudaBackend::CopyFromHost(const float* host, Tensor x) {
  const size_t count = static_cast<size_t>(x.rows * x.cols);
  if (x.elem_bytes == 4) return impl_->CopyToDeviceNow(x.data, host, count * sizeof(float));
  std::vector<bf16> converted(count);
  for (size_t i = 0; i < count; ++i) converted[i] = __float2bfloat16(host[i]);
  return impl_->CopyToDeviceNow(x.data, converted.data(), count * sizeof(bf16));
}

}  // namespace bpt

extern "C" int bptserve_cuda_plugin_abi_version() { return BPTSERVE_CUDA_PLUGIN_ABI_VERSION; }

extern "C" int bptserve_cuda_device_count() { return bpt::CudaDeviceCount(); }

extern "C" bpt::Backend* bptserve_cuda_create_backend(const bpt::ModelConfig* config,
                                                      const bpt::EngineOptions* options, bpt::Status* status) {
  auto backend = bpt::CudaBackend::Create(*config, *options);
  if (!backend.ok()) {
    *status = backend.status();
    return nullptr;
  }
  std::unique_ptr<bpt::CudaBackend> owned = std::move(backend).value();
  return owned.release();
}
