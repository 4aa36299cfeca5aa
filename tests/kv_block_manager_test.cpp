#include "kv_block_manager.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
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

namespace bpt {
namespace {

std::vector<int32_t> Tokens(int n, int32_t first) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = first + i;
  return t;
}

TEST(PrefixCache, MatchesFullBlocksAndLeavesOneTokenToCompute) {
  KvBlockManager m(16, 4);
  const auto doc = Tokens(10, 100);  // two full blocks and a partial one
  BlockTable a;
  EXPECT_EQ(m.MatchPrefix(doc, &a), 0);
  ASSERT_TRUE(m.Reserve(&a, 10).ok());
  m.CachePrefix(doc, 10, a);
  EXPECT_EQ(m.num_cached_blocks(), 2);

  BlockTable b;
  EXPECT_EQ(m.MatchPrefix(doc, &b), 8);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0], a[0]);
  EXPECT_EQ(b[1], a[1]);

  // A prompt that is exactly the two cached blocks still computes its last token.
  BlockTable c;
  EXPECT_EQ(m.MatchPrefix(std::span<const int32_t>(doc).first(8), &c), 4);
  // A different second block stops the match after the first.
  auto other = doc;
  other[5] = 7;
  BlockTable d;
  EXPECT_EQ(m.MatchPrefix(other, &d), 4);

  m.Release(&a);
  m.Release(&b);
  m.Release(&c);
  m.Release(&d);
  EXPECT_EQ(m.num_free_blocks(), 16) << "cached blocks no table holds are free to take";
}

TEST(PrefixCache, SharedBlocksStayWhileReferencedAndEvictLeastRecentlyUsed) {
  KvBlockManager m(6, 2);
  const auto first = Tokens(5, 10), second = Tokens(5, 50);
  BlockTable a, b;
  ASSERT_TRUE(m.Reserve(&a, 5).ok());
  m.CachePrefix(first, 4, a);
  m.Release(&a);  // both cached blocks of `first` are evictable now
  ASSERT_TRUE(m.Reserve(&b, 5).ok());
  m.CachePrefix(second, 4, b);
  m.Release(&b);
  EXPECT_EQ(m.num_cached_blocks(), 4);

  BlockTable hold;  // `second` in use again: its blocks must survive any pressure
  EXPECT_EQ(m.MatchPrefix(second, &hold), 4);
  BlockTable big;
  ASSERT_TRUE(m.Reserve(&big, 8).ok());  // 4 blocks: 2 free plus `first`'s 2 cached ones
  EXPECT_EQ(m.num_cached_blocks(), 2);
  EXPECT_EQ(m.Reserve(&big, 10).code(), StatusCode::kResourceExhausted) << "held blocks are not evictable";
  BlockTable again;
  EXPECT_EQ(m.MatchPrefix(first, &again), 0) << "`first` was evicted";
  m.Release(&big);
  m.Release(&hold);
  EXPECT_EQ(m.num_free_blocks(), 6);
}

TEST(PrefixCache, RandomOperationsNeverLeakOrShareWrongly) {
  std::mt19937 rng(5);
  KvBlockManager m(40, 4);
  struct Seq {
    std::vector<int32_t> tokens;
    BlockTable table;
  };
  std::vector<Seq> live;
  for (int step = 0; step < 5000; ++step) {
    if (live.size() < 6 && rng() % 2 == 0) {
      Seq s;
      const int shared = rng() % 3;  // a few documents, so prefixes repeat
      s.tokens = Tokens(4 + rng() % 30, 1000 * shared);
      for (size_t i = s.tokens.size() / 2; i < s.tokens.size(); ++i) s.tokens[i] = rng() % 5;
      const int64_t matched = m.MatchPrefix(s.tokens, &s.table);
      ASSERT_LT(matched, static_cast<int64_t>(s.tokens.size()));
      ASSERT_EQ(matched % 4, 0);
      if (!m.Reserve(&s.table, s.tokens.size()).ok()) {
        m.Release(&s.table);
        continue;
      }
      m.CachePrefix(s.tokens, s.tokens.size(), s.table);
      live.push_back(std::move(s));
    } else if (!live.empty()) {
      const size_t i = rng() % live.size();
      m.Release(&live[i].table);
      live.erase(live.begin() + i);
    }
    // Blocks in use never exceed the pool, and a block two tables share holds the same tokens.
    std::map<int32_t, std::vector<int32_t>> owner;
    int64_t held = 0;
    for (const auto& s : live)
      for (size_t b = 0; b < s.table.size(); ++b) {
        const size_t begin = b * 4, end = std::min(s.tokens.size(), begin + 4);
        std::vector<int32_t> content(s.tokens.begin() + begin, s.tokens.begin() + end);
        auto [it, inserted] = owner.emplace(s.table[b], content);
        if (inserted) ++held;
        else ASSERT_EQ(it->second, content) << "block " << s.table[b] << " shared by different tokens";
      }
    ASSERT_EQ(held + m.num_free_blocks(), 40);
  }
  for (auto& s : live) m.Release(&s.table);
  EXPECT_EQ(m.num_free_blocks(), 40);
}

}  // namespace
}  // namespace bpt
