// Which attention the CUDA backend takes, and from where: the GPU script's phase 1 prints the
// cuDNN line, so a run's figures always say which library (version and file) produced them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <iostream>

#include "cuda_backend.h"
#include "cuda_test_util.h"
#include "model_config.h"

namespace bpt {
namespace {

ModelConfig TinyConfig(int head_dim) {
  const nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                            {"vocab_size", 1000},
                            {"hidden_size", 8 * head_dim},
                            {"intermediate_size", 864},
                            {"num_hidden_layers", 1},
                            {"num_attention_heads", 8},
                            {"num_key_value_heads", 2},
                            {"head_dim", head_dim},
                            {"rms_norm_eps", 1e-5},
                            {"rope_theta", 10000.0},
                            {"max_position_embeddings", 1 << 20}};
  auto c = ParseModelConfig(j.dump(), "test config");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

StatusOr<std::unique_ptr<CudaBackend>> Backend(const ModelConfig& config, AttentionBackend attention) {
  EngineOptions options;
  options.scheduler.prefill_block = 256;
  options.scheduler.max_running = 4;
  options.cuda.attention_backend = attention;
  BPT_ASSIGN_OR_RETURN(auto backend, CudaBackend::Create(config, options));
  BPT_RETURN_IF_ERROR(backend->AllocateKvPool(1, 64, 16, config.kv_dim()));
  return backend;
}

TEST(CudaBackendInfo, CudnnLoadsAndSaysWhichLibrary) {
  BPT_SKIP_WITHOUT_CUDA();
  auto backend = Backend(TinyConfig(64), AttentionBackend::kCudnn);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  EXPECT_EQ((*backend)->attention_kernels(), "cudnn");
  const std::string description = (*backend)->cudnn_description();
  EXPECT_NE(description.find("libcudnn"), std::string::npos) << description;
  std::cout << "cudnn: " << description << std::endl;
}

TEST(CudaBackendInfo, AutoTakesCudnnAndOwnTakesTheOwnKernels) {
  BPT_SKIP_WITHOUT_CUDA();
  auto automatic = Backend(TinyConfig(64), AttentionBackend::kAuto);
  ASSERT_TRUE(automatic.ok()) << automatic.status().ToString();
  EXPECT_EQ((*automatic)->attention_kernels(), "cudnn");
  auto own = Backend(TinyConfig(64), AttentionBackend::kOwn);
  ASSERT_TRUE(own.ok()) << own.status().ToString();
  EXPECT_EQ((*own)->attention_kernels(), "cuda");
  EXPECT_EQ((*own)->cudnn_description(), "");
}

// head_dim 80 is beyond the own kernels (32, 64, 128) but within cuDNN's (multiples of 8).
TEST(CudaBackendInfo, HeadDimOnlyCudnnTakesIsRefusedByOwnWithItsName) {
  BPT_SKIP_WITHOUT_CUDA();
  auto own = Backend(TinyConfig(80), AttentionBackend::kOwn);
  ASSERT_FALSE(own.ok());
  EXPECT_NE(own.status().message().find("head_dim 80"), std::string::npos) << own.status().ToString();
  auto automatic = Backend(TinyConfig(80), AttentionBackend::kAuto);
  ASSERT_TRUE(automatic.ok()) << automatic.status().ToString();
  EXPECT_EQ((*automatic)->attention_kernels(), "cudnn");
}

}  // namespace
}  // namespace bpt
