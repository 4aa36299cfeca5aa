// BPT_CHECK aborts naming the broken invariant, in this Release build too (it is not assert),
// and builds its message only when the condition fails.
#include <gtest/gtest.h>

#include <string>

#include "check.h"

namespace bpt {
namespace {

TEST(BptCheck, AbortsNamingFileLineConditionAndMessage) {
  const int blocks = 3;
  EXPECT_DEATH(BPT_CHECK(blocks == 4, "blocks: " + std::to_string(blocks)),
               "check_test\\.cpp:[0-9]+: BPT_CHECK\\(blocks == 4\\) failed: blocks: 3\n");
}

TEST(BptCheck, BuildsNoMessageWhenTheConditionHolds) {
  int built = 0;
  const auto message = [&] {
    ++built;
    return std::string("unused");
  };
  BPT_CHECK(built == 0, message());
  EXPECT_EQ(built, 0);
}

}  // namespace
}  // namespace bpt
