// The host-memory tier alone (on the CPU, with plain memory standing in for page-locked): slots
// of one chunk each, least recently used out first, pins, reads in place, concurrent use. Through
// the engine it runs on a GPU only (tests/gpu/cuda_kv_tier_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <numeric>
#include <thread>
#include <vector>

#include "host_kv_tier.h"

namespace bpt {
namespace {

constexpr int64_t kSlot = 1000;
constexpr int64_t kT0 = 1'700'000'000;

ChunkKey KeyOf(uint64_t i) { return {0x4057000000000000ULL | i, ~i}; }

// A chunk whose bytes name it: seed, seed + 1, ... (mod 256).
std::vector<uint8_t> ChunkBytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), seed);
  return v;
}

// Counts what it hands out and takes back, and remembers the arena.
struct CountingMemory {
  std::atomic<int> allocations{0}, frees{0};
  uint8_t* arena = nullptr;
  size_t arena_bytes = 0;
  bool refuse = false;
  HostMemoryAllocator Allocator() {
    return {[this](size_t bytes) -> void* {
              if (refuse) return nullptr;
              ++allocations;
              arena_bytes = bytes;
              arena = static_cast<uint8_t*>(std::malloc(bytes));
              return arena;
            },
            [this](void* p) {
              ++frees;
              std::free(p);
            }};
  }
};

class HostKvTierTest : public ::testing::Test {
 protected:
  std::unique_ptr<HostKvTier> Open(int64_t slots, int64_t extra_bytes = 0) {
    HostKvTierOptions o;
    o.budget_bytes = slots * kSlot + extra_bytes;
    o.slot_bytes = kSlot;
    o.memory = memory_.Allocator();
    o.now_s = [this] { return now_.load(); };
    auto tier = HostKvTier::Open(std::move(o));
    EXPECT_TRUE(tier.ok()) << tier.status().ToString();
    return tier.ok() ? std::move(tier).value() : nullptr;
  }
  static bool Holds(HostKvTier& tier, uint64_t i) {
    const StatusOr<bool> has = tier.Contains(KeyOf(i));
    EXPECT_TRUE(has.ok());
    return has.ok() && *has;
  }
  static std::vector<uint8_t> Got(HostKvTier& tier, uint64_t i) {
    std::vector<uint8_t> out;
    const Status s = tier.Get(KeyOf(i), &out);
    EXPECT_TRUE(s.ok() || s.code() == StatusCode::kNotFound) << s.ToString();
    return out;
  }

  CountingMemory memory_;
  std::atomic<int64_t> now_{kT0};
};

TEST_F(HostKvTierTest, OpenTakesWholeSlotsAndRefusesWhatCannotWork) {
  {
    auto tier = Open(3, kSlot - 1);  // a partial slot is not one
    ASSERT_NE(tier, nullptr);
    EXPECT_STREQ(tier->name(), "host");
    EXPECT_FALSE(tier->shared());
    EXPECT_EQ(tier->budget_bytes(), 3 * kSlot);
    EXPECT_EQ(memory_.allocations.load(), 1) << "the whole arena at once";
    EXPECT_EQ(memory_.arena_bytes, static_cast<size_t>(3 * kSlot));
    EXPECT_EQ(tier->bytes_used(), 0);
  }
  EXPECT_EQ(memory_.frees.load(), 1) << "the arena goes back with the tier";

  HostKvTierOptions o;
  o.slot_bytes = kSlot;
  o.budget_bytes = kSlot - 1;
  const Status too_small = HostKvTier::Open(o).status();
  EXPECT_EQ(too_small.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_small.message().find("kv_host_gib"), std::string::npos) << too_small.ToString();
  o.budget_bytes = kSlot;
  o.slot_bytes = 0;
  EXPECT_EQ(HostKvTier::Open(o).status().code(), StatusCode::kInvalidArgument);

  memory_.refuse = true;  // cudaHostAlloc refusing that much page-locked memory
  o.slot_bytes = kSlot;
  o.memory = memory_.Allocator();
  const Status refused = HostKvTier::Open(o).status();
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("kv_host_gib"), std::string::npos) << refused.ToString();
}

TEST_F(HostKvTierTest, PutGetAndReadInPlace) {
  auto tier = Open(4);
  ASSERT_NE(tier, nullptr);
  EXPECT_FALSE(Holds(*tier, 1));
  std::vector<uint8_t> scratch;
  const Status absent = tier->Read(KeyOf(1), &scratch, [](std::span<const uint8_t>) { return OkStatus(); });
  EXPECT_EQ(absent.code(), StatusCode::kNotFound);

  const auto a = ChunkBytes(kSlot, 1), b = ChunkBytes(kSlot - 10, 7);  // a chunk may be shorter than a slot
  ASSERT_TRUE(tier->Put(KeyOf(1), a, 0).ok());
  ASSERT_TRUE(tier->Put(KeyOf(2), b, 0).ok());
  EXPECT_TRUE(Holds(*tier, 1));
  EXPECT_EQ(Got(*tier, 1), a);
  EXPECT_EQ(Got(*tier, 2), b);
  EXPECT_EQ(tier->bytes_used(), 2 * kSlot) << "each chunk costs its slot";
  EXPECT_EQ(tier->num_chunks(), 2);

  // Read hands over the slot itself (no copy into the scratch buffer) and returns what `use` does.
  const uint8_t* seen = nullptr;
  size_t seen_bytes = 0;
  const Status read = tier->Read(KeyOf(2), &scratch, [&](std::span<const uint8_t> bytes) {
    seen = bytes.data();
    seen_bytes = bytes.size();
    return DataLoss("what use says");
  });
  EXPECT_EQ(read.code(), StatusCode::kDataLoss);
  EXPECT_TRUE(scratch.empty());
  EXPECT_GE(seen, memory_.arena);
  EXPECT_LE(seen + seen_bytes, memory_.arena + memory_.arena_bytes) << "the bytes are the arena's";
  EXPECT_EQ(seen_bytes, b.size());

  // A key names its bytes: a second Put changes nothing but its use and pin.
  ASSERT_TRUE(tier->Put(KeyOf(1), ChunkBytes(kSlot, 99), 0).ok());
  EXPECT_EQ(Got(*tier, 1), a);
  EXPECT_EQ(tier->num_chunks(), 2);

  const Status too_big = tier->Put(KeyOf(3), ChunkBytes(kSlot + 1, 3), 0);
  EXPECT_EQ(too_big.code(), StatusCode::kInvalidArgument) << too_big.ToString();
  EXPECT_FALSE(Holds(*tier, 3));

  tier->Drop(KeyOf(1));
  EXPECT_FALSE(Holds(*tier, 1));
  EXPECT_EQ(tier->bytes_used(), kSlot);
  tier->Drop(KeyOf(42));  // not held: nothing
  EXPECT_EQ(tier->num_chunks(), 1);
}

TEST_F(HostKvTierTest, EvictsTheLeastRecentlyUsedFirstAndReusesItsSlot) {
  auto tier = Open(3);
  ASSERT_NE(tier, nullptr);
  for (uint64_t i : {1, 2, 3}) ASSERT_TRUE(tier->Put(KeyOf(i), ChunkBytes(kSlot, static_cast<uint8_t>(i)), 0).ok());
  EXPECT_EQ(Got(*tier, 1), ChunkBytes(kSlot, 1));  // order now 2, 3, 1
  ASSERT_TRUE(tier->Put(KeyOf(4), ChunkBytes(kSlot, 4), 0).ok());
  EXPECT_FALSE(Holds(*tier, 2));
  for (uint64_t i : {1, 3, 4}) EXPECT_TRUE(Holds(*tier, i)) << i;
  // Contains is no use; Read is: 3 moves last, order 1, 4, 3.
  std::vector<uint8_t> scratch;
  ASSERT_TRUE(tier->Read(KeyOf(3), &scratch, [](std::span<const uint8_t>) { return OkStatus(); }).ok());
  ASSERT_TRUE(tier->Put(KeyOf(5), ChunkBytes(kSlot, 5), 0).ok());
  EXPECT_FALSE(Holds(*tier, 1));
  ASSERT_TRUE(tier->Put(KeyOf(6), ChunkBytes(kSlot, 6), 0).ok());
  EXPECT_FALSE(Holds(*tier, 4));
  // Every chunk held reads back whole: an evicted chunk's slot went to exactly one newcomer.
  for (uint64_t i : {3, 5, 6}) EXPECT_EQ(Got(*tier, i), ChunkBytes(kSlot, static_cast<uint8_t>(i))) << i;
  EXPECT_EQ(tier->bytes_used(), 3 * kSlot);
  EXPECT_EQ(tier->num_chunks(), 3);
}

TEST_F(HostKvTierTest, PinnedChunksStayUntilTheirPinPasses) {
  auto tier = Open(2);
  ASSERT_NE(tier, nullptr);
  const int64_t pin = kT0 + 100;
  ASSERT_TRUE(tier->Put(KeyOf(1), ChunkBytes(kSlot, 1), pin).ok());  // the oldest, but pinned
  ASSERT_TRUE(tier->Put(KeyOf(2), ChunkBytes(kSlot, 2), 0).ok());
  EXPECT_EQ(tier->pinned_bytes(), kSlot);
  ASSERT_TRUE(tier->Put(KeyOf(3), ChunkBytes(kSlot, 3), 0).ok());  // evicts 2
  EXPECT_TRUE(Holds(*tier, 1));
  EXPECT_FALSE(Holds(*tier, 2));

  tier->Pin(KeyOf(3), pin + 50);
  tier->Pin(KeyOf(99), pin);  // not held: nothing
  EXPECT_EQ(tier->pinned_bytes(), 2 * kSlot);
  const Status full = tier->Put(KeyOf(4), ChunkBytes(kSlot, 4), 0);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_NE(full.message().find("pinned"), std::string::npos);
  EXPECT_TRUE(Holds(*tier, 1));
  EXPECT_TRUE(Holds(*tier, 3));
  EXPECT_EQ(Got(*tier, 3), ChunkBytes(kSlot, 3)) << "a refused Put leaves every slot as it was";

  now_ = pin + 1;  // 1's pin has passed, 3's has not
  EXPECT_EQ(tier->pinned_bytes(), kSlot);
  ASSERT_TRUE(tier->Put(KeyOf(4), ChunkBytes(kSlot, 4), 0).ok());
  EXPECT_FALSE(Holds(*tier, 1));
  EXPECT_TRUE(Holds(*tier, 3));
  // A Put of a held chunk extends its pin (a second retain_s of the same document).
  ASSERT_TRUE(tier->Put(KeyOf(4), ChunkBytes(kSlot, 4), pin + 500).ok());
  now_ = pin + 51;
  EXPECT_EQ(tier->pinned_bytes(), kSlot);
  ASSERT_TRUE(tier->Put(KeyOf(5), ChunkBytes(kSlot, 5), 0).ok());  // 3's pin is past: it goes
  EXPECT_FALSE(Holds(*tier, 3));
  EXPECT_TRUE(Holds(*tier, 4));
}

// Read holds no lock while its callback runs (a checksum and a DMA take a while): a chunk dropped
// or evicted meanwhile keeps its slot, and its bytes in the budget, until the read ends.
TEST_F(HostKvTierTest, AChunkDroppedOrEvictedWhileReadKeepsItsSlotUntilTheReadEnds) {
  auto tier = Open(2);
  ASSERT_NE(tier, nullptr);
  ASSERT_TRUE(tier->Put(KeyOf(1), ChunkBytes(kSlot, 1), 0).ok());
  ASSERT_TRUE(tier->Put(KeyOf(2), ChunkBytes(kSlot, 2), 0).ok());
  std::vector<uint8_t> scratch;
  const Status read = tier->Read(KeyOf(1), &scratch, [&](std::span<const uint8_t> bytes) {
    tier->Drop(KeyOf(1));
    EXPECT_FALSE(Holds(*tier, 1));
    EXPECT_EQ(tier->bytes_used(), 2 * kSlot) << "the slot being read is still spoken for";
    EXPECT_TRUE(tier->Put(KeyOf(3), ChunkBytes(kSlot, 3), 0).ok());  // evicts 2, takes its slot
    EXPECT_FALSE(Holds(*tier, 2));
    EXPECT_TRUE(tier->Put(KeyOf(4), ChunkBytes(kSlot, 4), kT0 + 100).ok());  // evicts 3, the same slot
    EXPECT_FALSE(Holds(*tier, 3));
    const Status full = tier->Put(KeyOf(5), ChunkBytes(kSlot, 5), 0);  // 4 pinned, 1's slot being read
    EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
    const auto want = ChunkBytes(kSlot, 1);
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), want.begin(), want.end())) << "the read's bytes never change";
    return OkStatus();
  });
  EXPECT_TRUE(read.ok()) << read.ToString();
  EXPECT_EQ(tier->bytes_used(), kSlot) << "the read's end freed the dropped chunk's slot";
  ASSERT_TRUE(tier->Put(KeyOf(5), ChunkBytes(kSlot, 5), 0).ok());
  EXPECT_EQ(Got(*tier, 4), ChunkBytes(kSlot, 4));
  EXPECT_EQ(Got(*tier, 5), ChunkBytes(kSlot, 5));
  EXPECT_EQ(tier->num_chunks(), 2);
}

// The loader reads while the storer writes, both on chunks the other may evict: every read sees
// a whole chunk, the one its key names, and the books end balanced.
TEST_F(HostKvTierTest, ConcurrentPutsAndReadsSeeWholeChunksAndCountEachOnce) {
  constexpr int kThreads = 6;
  constexpr uint64_t kKeys = 40;
  auto tier = Open(16);
  ASSERT_NE(tier, nullptr);
  std::atomic<int> ready{0}, torn{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();
      std::vector<uint8_t> scratch;
      for (int round = 0; round < 20; ++round)
        for (uint64_t k = 0; k < kKeys; ++k) {
          const uint64_t key = (k * 7 + static_cast<uint64_t>(t) * 13 + static_cast<uint64_t>(round)) % kKeys;
          if ((t + round) % 2 == 0) {
            if (!tier->Put(KeyOf(key), ChunkBytes(kSlot, static_cast<uint8_t>(key)), 0).ok()) ++failures;
            continue;
          }
          const Status s = tier->Read(KeyOf(key), &scratch, [&](std::span<const uint8_t> bytes) {
            const auto want = ChunkBytes(kSlot, static_cast<uint8_t>(key));
            if (!std::equal(bytes.begin(), bytes.end(), want.begin(), want.end())) ++torn;
            return OkStatus();
          });
          if (!s.ok() && s.code() != StatusCode::kNotFound) ++failures;
        }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(tier->num_chunks(), 16);
  EXPECT_EQ(tier->bytes_used(), 16 * kSlot);
  for (uint64_t k = 0; k < kKeys; ++k) tier->Drop(KeyOf(k));
  EXPECT_EQ(tier->bytes_used(), 0);
  // Every slot came back: the tier fills again to its budget with new chunks, each whole.
  for (uint64_t k = 100; k < 116; ++k) ASSERT_TRUE(tier->Put(KeyOf(k), ChunkBytes(kSlot, static_cast<uint8_t>(k)), 0).ok());
  for (uint64_t k = 100; k < 116; ++k) EXPECT_EQ(Got(*tier, k), ChunkBytes(kSlot, static_cast<uint8_t>(k))) << k;
}

}  // namespace
}  // namespace bpt
