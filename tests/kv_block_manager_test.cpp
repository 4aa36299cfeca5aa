#include "engine/kv_block_manager.h"

#include <gtest/gtest.h>

#include <set>

namespace bpt {
namespace {

TEST(KvBlockManager, ReservesWholeBlocksAndReleasesThem) {
  KvBlockManager m(10, 16);
  EXPECT_EQ(m.capacity_tokens(), 160);
  BlockTable t;
  ASSERT_TRUE(m.Reserve(&t, 1).ok());
  EXPECT_EQ(t.size(), 1u);
  ASSERT_TRUE(m.Reserve(&t, 16).ok());
  EXPECT_EQ(t.size(), 1u);
  ASSERT_TRUE(m.Reserve(&t, 17).ok());
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(m.num_free_blocks(), 8);
  m.Release(&t);
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(m.num_free_blocks(), 10);
}

TEST(KvBlockManager, FullPoolIsResourceExhaustedAndLeavesTableUnchanged) {
  KvBlockManager m(4, 8);
  BlockTable a, b;
  ASSERT_TRUE(m.Reserve(&a, 24).ok());
  const Status s = m.Reserve(&b, 9);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("capacity 32 tokens"), std::string::npos) << s.message();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(m.num_free_blocks(), 1);
}

TEST(KvBlockManager, ShuffledBlocksAreDistinctAndAllReturned) {
  KvBlockManager m(64, 4);
  m.ShuffleFreeBlocks(3);
  BlockTable a, b;
  ASSERT_TRUE(m.Reserve(&a, 100).ok());
  ASSERT_TRUE(m.Reserve(&b, 150).ok());
  std::set<int32_t> seen(a.begin(), a.end());
  seen.insert(b.begin(), b.end());
  EXPECT_EQ(seen.size(), a.size() + b.size());
  bool contiguous = true;
  for (size_t i = 1; i < a.size(); ++i) contiguous &= a[i] == a[i - 1] + 1;
  EXPECT_FALSE(contiguous);
  m.Release(&a);
  m.Release(&b);
  EXPECT_EQ(m.num_free_blocks(), 64);
}

}  // namespace
}  // namespace bpt
