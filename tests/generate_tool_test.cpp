// bptserve-generate's sampling flags: those left out take the model's defaults
// (generation_config.json's under --generation-config auto, bptserve's under none), as the
// server's unset request fields do; those given win.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "test_models.h"

namespace bpt {
namespace {

using testing::SmallConfig;
using testing::TempDir;

// The ids bptserve-generate prints for `flags` on the model in dir/model (token-ids mode).
std::string GeneratedIds(const TempDir& dir, const std::string& flags) {
  const std::string command = std::string(BPTSERVE_BIN_DIR) + "/bptserve-generate --model " + (dir / "model") +
                              " --token-ids 5,6,7 --max-new-tokens 8 --ignore-eos --seed 3 " + flags + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "cannot run " + command;
  std::string output;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) output.append(buffer, n);
  const int status = pclose(pipe);
  EXPECT_EQ(status, 0) << command << "\n" << output;
  const size_t at = output.find("token_ids:");
  return at == std::string::npos ? "no ids in: " + output : output.substr(at, output.find('\n', at) - at);
}

TEST(GenerateTool, UnsetSamplingFlagsTakeTheModelsDefaults) {
  TempDir dir;
  testing::WriteModelOrDie(dir / "model", SmallConfig());
  std::ofstream(dir / "model/generation_config.json") << R"({"temperature": 0.0})";

  const std::string greedy = GeneratedIds(dir, "--temperature 0");
  const std::string sampled = GeneratedIds(dir, "--temperature 1");
  EXPECT_NE(greedy, sampled) << "the two temperatures must be told apart";
  EXPECT_EQ(GeneratedIds(dir, ""), greedy) << "generation_config.json's temperature 0";
  EXPECT_EQ(GeneratedIds(dir, "--generation-config none"), sampled) << "bptserve's temperature 1";
  EXPECT_EQ(GeneratedIds(dir, "--generation-config none --temperature 0"), greedy);
}

}  // namespace
}  // namespace bpt
