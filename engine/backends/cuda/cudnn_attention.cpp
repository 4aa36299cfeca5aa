#include "cudnn_attention.h"

#include <dlfcn.h>

#include <cudnn_frontend.h>

#include <cmath>
#include <exception>
#include <unordered_map>

namespace fe = cudnn_frontend;

// The frontend's dynamic loading resolves every cuDNN call through this handle.
namespace cudnn_frontend {
void* cudnn_dlhandle = nullptr;
}

namespace bpt::cuda {
namespace {

// Tensor ids of the graphs' variant packs.
enum Uid : int64_t {
  kQ = 1,
  kK,
  kV,
  kO,
  kSeqLenQ,
  kSeqLenKv,
  kPageTableK,
  kPageTableV,
  kQOffsets,
  kOOffsets,
};

// cuDNN 9.7 is the first to take paged K/V together with ragged query offsets (the frontend's
// support surface says so); earlier ones would fail at build anyway, with a vaguer message.
constexpr int64_t kMinCudnnVersion = 90700;

// A graph cuDNN cannot build is a shape it does not support here (Unimplemented: auto falls
// back); a failed execution is an error of the step (Internal: the request fails).
Status FrontendStatus(fe::error_t e, Status (*make)(std::string), const char* what) {
  if (e.is_good()) return OkStatus();
  return make(std::string("cuDNN attention: ") + what + ": " + e.get_message());
}
#define BPT_FE_RETURN_IF_ERROR(expr, make, what) BPT_RETURN_IF_ERROR(FrontendStatus((expr), make, what))

// Loads libcudnn.so.9 once per process; the frontend resolves its calls through the handle.
StatusOr<std::string> LoadCudnn() {
  static std::string load_error;
  static void* const handle = [] {
    void* h = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) load_error = dlerror();
    return h;
  }();
  if (handle == nullptr)
    return FailedPrecondition("cuDNN attention: cannot load libcudnn.so.9 (" + load_error +
                              "); put cuDNN 9 on LD_LIBRARY_PATH or use --attention-backend own");
  fe::cudnn_dlhandle = handle;
  using GetVersion = size_t (*)();
  const auto get_version = reinterpret_cast<GetVersion>(dlsym(handle, "cudnnGetVersion"));
  if (get_version == nullptr) return FailedPrecondition("cuDNN attention: libcudnn.so.9 lacks cudnnGetVersion");
  const size_t version = get_version();
  if (static_cast<int64_t>(version) < kMinCudnnVersion)
    return FailedPrecondition("cuDNN attention: cuDNN " + std::to_string(version) +
                              " is older than 9.7, the first with paged K/V and ragged queries");
  Dl_info info{};
  std::string path = "libcudnn.so.9";
  if (dladdr(reinterpret_cast<void*>(get_version), &info) != 0 && info.dli_fname != nullptr) path = info.dli_fname;
  return "cuDNN " + std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
         std::to_string(version % 100) + " from " + path;
}

// One SDPA graph: Q and O are rows of the step's activations (ragged per sequence in the mixed
// graph, one row per sequence in the decode graph); K and V are the layer's pool, read through
// the page tables; the per-sequence lengths make the padding mask, and the causal mask is
// aligned bottom-right, so query t of a slice of n sees keys up to start + t.
std::shared_ptr<fe::graph::Graph> MakeGraph(const CudnnAttentionShape& s, int64_t max_queries) {
  const bool ragged = max_queries > 1;
  const int64_t b = s.batch, h = s.num_heads, hk = s.num_kv_heads, d = s.head_dim, bs = s.block_size;
  const int64_t kv_dim = hk * d;
  auto graph = std::make_shared<fe::graph::Graph>();
  graph->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto int32_tensor = [&](const char* name, int64_t uid, std::vector<int64_t> dim, std::vector<int64_t> stride) {
    return graph->tensor(fe::graph::Tensor_attributes()
                             .set_name(name)
                             .set_uid(uid)
                             .set_dim(std::move(dim))
                             .set_stride(std::move(stride))
                             .set_data_type(fe::DataType_t::INT32));
  };
  // [b, h, max_queries, d] over rows of qkv_stride; the batch stride is unused when ragged.
  auto q_attrs = fe::graph::Tensor_attributes()
                     .set_name("Q")
                     .set_uid(kQ)
                     .set_dim({b, h, max_queries, d})
                     .set_stride({max_queries * s.qkv_stride, d, s.qkv_stride, 1});
  if (ragged) q_attrs.set_ragged_offset(int32_tensor("q_offsets", kQOffsets, {b + 1, 1, 1, 1}, {1, 1, 1, 1}));
  auto q = graph->tensor(q_attrs);
  // [num_kv_blocks, hk, block_size, d]: the pool's [blocks, block_size, hk, d] seen head-major.
  auto container = [&](const char* name, int64_t uid) {
    return graph->tensor(fe::graph::Tensor_attributes()
                             .set_name(name)
                             .set_uid(uid)
                             .set_dim({s.num_kv_blocks, hk, bs, d})
                             .set_stride({bs * kv_dim, d, kv_dim, 1}));
  };
  auto k = container("K", kK);
  auto v = container("V", kV);
  auto sdpa = fe::graph::SDPA_attributes()
                  .set_name("attention")
                  .set_generate_stats(false)
                  .set_attn_scale(1.0f / std::sqrt(static_cast<float>(d)))
                  .set_padding_mask(true)
                  .set_seq_len_q(int32_tensor("seq_len_q", kSeqLenQ, {b, 1, 1, 1}, {1, 1, 1, 1}))
                  .set_seq_len_kv(int32_tensor("seq_len_kv", kSeqLenKv, {b, 1, 1, 1}, {1, 1, 1, 1}))
                  .set_paged_attention_k_table(int32_tensor("page_table_k", kPageTableK, {b, 1, s.table_width, 1},
                                                            {s.table_width, s.table_width, 1, 1}))
                  .set_paged_attention_v_table(int32_tensor("page_table_v", kPageTableV, {b, 1, s.table_width, 1},
                                                            {s.table_width, s.table_width, 1, 1}))
                  .set_paged_attention_max_seq_len_kv(static_cast<int>(s.table_width * bs));
  // A lone query is the last position and sees every key, so the decode graph needs no causal
  // mask (cuDNN before 9.10 refuses one there); a window needs it as its right edge.
  if (ragged || s.sliding_window > 0) sdpa.set_causal_mask_bottom_right(true);
  // A window of W keys: query at position p sees (p - W, p], as the own kernels do.
  if (s.sliding_window > 0) sdpa.set_sliding_window_length(static_cast<int>(s.sliding_window));
  auto [o, stats] = graph->sdpa(q, k, v, sdpa);
  o->set_output(true).set_uid(kO).set_dim({b, h, max_queries, d}).set_stride({max_queries * s.out_stride, d, s.out_stride, 1});
  if (ragged) o->set_ragged_offset(int32_tensor("out_offsets", kOOffsets, {b + 1, 1, 1, 1}, {1, 1, 1, 1}));
  return graph;
}

}  // namespace

struct CudnnAttention::Graphs {
  cudnnHandle_t handle = nullptr;
  std::shared_ptr<fe::graph::Graph> mixed, decode;
  int64_t workspace_bytes = 0;
  std::string description;
  // Reused by every Run: only the pointers change, so no step allocates.
  std::unordered_map<int64_t, void*> mixed_pack, decode_pack;

  ~Graphs() {
    if (handle != nullptr) fe::detail::destroy_handle(handle);
  }
};

CudnnAttention::CudnnAttention(std::unique_ptr<Graphs> graphs) : graphs_(std::move(graphs)) {}
CudnnAttention::~CudnnAttention() = default;

int64_t CudnnAttention::workspace_bytes() const { return graphs_->workspace_bytes; }
const std::string& CudnnAttention::description() const { return graphs_->description; }

StatusOr<std::unique_ptr<CudnnAttention>> CudnnAttention::Create(const CudnnAttentionShape& shape,
                                                                 cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(CheckCudnnAttentionShape(shape));
  BPT_ASSIGN_OR_RETURN(std::string description, LoadCudnn());
  auto g = std::make_unique<Graphs>();
  g->description = std::move(description);
  // The frontend reports through error_t, but its dynamic loading throws when a CUDA or cuDNN
  // symbol is missing: nothing may escape into the engine.
  try {
    if (fe::detail::create_handle(&g->handle) != CUDNN_STATUS_SUCCESS)
      return FailedPrecondition("cuDNN attention: cudnnCreate failed (" + g->description + ")");
    if (fe::detail::set_stream(g->handle, stream) != CUDNN_STATUS_SUCCESS)
      return Internal("cuDNN attention: cudnnSetStream failed");
    for (auto [graph, max_queries] : {std::pair{&g->mixed, shape.prefill_block}, std::pair{&g->decode, int64_t{1}}}) {
      *graph = MakeGraph(shape, max_queries);
      BPT_FE_RETURN_IF_ERROR((*graph)->build(g->handle, {fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}), Unimplemented,
                             max_queries > 1 ? "building the mixed-step graph" : "building the decode graph");
      int64_t bytes = 0;
      BPT_FE_RETURN_IF_ERROR((*graph)->get_workspace_size(bytes), Internal, "workspace size");
      g->workspace_bytes = std::max(g->workspace_bytes, bytes);
    }
  } catch (const std::exception& e) {
    return FailedPrecondition(std::string("cuDNN attention: ") + e.what());
  }
  for (auto* pack : {&g->mixed_pack, &g->decode_pack})
    for (int64_t uid : {kQ, kK, kV, kO, kSeqLenQ, kSeqLenKv, kPageTableK, kPageTableV}) (*pack)[uid] = nullptr;
  g->mixed_pack[kQOffsets] = nullptr;
  g->mixed_pack[kOOffsets] = nullptr;
  return std::unique_ptr<CudnnAttention>(new CudnnAttention(std::move(g)));
}

Status CudnnAttention::Run(bool decode_only, const __nv_bfloat16* qkv, const __nv_bfloat16* k_cache,
                           const __nv_bfloat16* v_cache, const CudnnAttentionDeviceBuffers& plan_buffers,
                           __nv_bfloat16* out, void* workspace) {
  Graphs& g = *graphs_;
  auto& pack = decode_only ? g.decode_pack : g.mixed_pack;
  pack[kQ] = const_cast<__nv_bfloat16*>(qkv);
  pack[kK] = const_cast<__nv_bfloat16*>(k_cache);
  pack[kV] = const_cast<__nv_bfloat16*>(v_cache);
  pack[kO] = out;
  pack[kSeqLenQ] = plan_buffers.seq_len_q;
  pack[kSeqLenKv] = plan_buffers.seq_len_kv;
  pack[kPageTableK] = plan_buffers.page_table;
  pack[kPageTableV] = plan_buffers.page_table;
  if (!decode_only) {
    pack[kQOffsets] = plan_buffers.q_offsets;
    pack[kOOffsets] = plan_buffers.out_offsets;
  }
  try {
    BPT_FE_RETURN_IF_ERROR((decode_only ? g.decode : g.mixed)->execute(g.handle, pack, workspace), Internal,
                           "execute");
  } catch (const std::exception& e) {
    return Internal(std::string("cuDNN attention: ") + e.what());
  }
  return OkStatus();
}

}  // namespace bpt::cuda
