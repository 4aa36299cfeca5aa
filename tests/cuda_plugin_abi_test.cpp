// The engine refuses a CUDA plugin of another ABI version, or one without a version, before
// calling anything else in it; the plugin this build made passes the check.
#include <gtest/gtest.h>

#include <string>

#include "backend_factory.h"
#include "cuda_plugin_abi.h"

namespace bpt {
namespace {

const std::string kNotAvailable = "device cuda: the CUDA backend is not available (";
const std::string kInstall = "; install the libbptserve_cuda.so built with this engine)";
const std::string kExpected = std::to_string(BPTSERVE_CUDA_PLUGIN_ABI_VERSION);

TEST(CudaPluginAbi, RefusesAPluginWithoutAVersion) {
  const std::string path = BPTSERVE_STUB_PLUGIN_UNVERSIONED;
  const Status s = CheckCudaDeviceWithPlugin(path);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(s.message(), kNotAvailable + path +
                             " has no bptserve_cuda_plugin_abi_version(): it is a CUDA plugin from before ABI "
                             "versions, and this engine expects ABI version " +
                             kExpected + kInstall);
}

TEST(CudaPluginAbi, RefusesAPluginOfAnotherVersion) {
  const std::string path = BPTSERVE_STUB_PLUGIN_NEXT_VERSION;
  const Status s = CheckCudaDeviceWithPlugin(path);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(s.message(), kNotAvailable + path + " is CUDA plugin ABI version " +
                             std::to_string(BPTSERVE_CUDA_PLUGIN_ABI_VERSION + 1) +
                             ", but this engine expects ABI version " + kExpected + kInstall);
}

// Its entry points are bound and called: it reports no device.
TEST(CudaPluginAbi, AcceptsAPluginOfThisVersion) {
  const Status s = CheckCudaDeviceWithPlugin(BPTSERVE_STUB_PLUGIN_THIS_VERSION);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(s.message(), "device cuda: no CUDA device is visible");
}

TEST(CudaPluginAbi, ReportsAFileThatDoesNotLoad) {
  const Status s = CheckCudaDeviceWithPlugin("/nonexistent/libbptserve_cuda.so");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(s.message().rfind(kNotAvailable + "cannot load /nonexistent/libbptserve_cuda.so: ", 0), 0u)
      << s.ToString();
}

// Without a GPU the plugin gets as far as counting devices; with one, the check passes.
TEST(CudaPluginAbi, TheBuiltPluginHasThisVersion) {
#ifndef BPTSERVE_CUDA_PLUGIN_FILE
  GTEST_SKIP() << "built without the CUDA backend";
#else
  for (const Status& s : {CheckCudaDeviceWithPlugin(BPTSERVE_CUDA_PLUGIN_FILE), CheckCudaDevice()}) {
    if (!s.ok()) {
      EXPECT_EQ(s.message(), "device cuda: no CUDA device is visible");
    }
  }
#endif
}

}  // namespace
}  // namespace bpt
