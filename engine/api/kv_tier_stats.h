// What the KV tiers below the pool did since the last look, for the server's metrics: counters
// as increments, sizes as they are now, durations one per chunk moved.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace bpt {

// The dropped-chunk reasons, in the order of KvTierStats::dropped (the metric's label values).
inline constexpr std::array<const char*, 4> kKvChunkDropReasons = {"truncated", "corrupt", "foreign", "hmac"};

struct KvTierStats {
  struct Tier {
    std::string name;  // host, disk or remote
    int64_t hit_tokens = 0;
    int64_t miss_tokens = 0;
    int64_t load_errors = 0;   // the tier failed a read (down, timeout, I/O error)
    int64_t store_errors = 0;  // the tier failed a write (ENOSPC, budget, down, timeout)
    int64_t bytes_used = -1;   // now; -1: the tier does not say (Redis's own maxmemory)
    int64_t budget_bytes = -1;
    std::vector<double> load_seconds;   // one per chunk read
    std::vector<double> store_seconds;  // one per chunk written
  };
  std::vector<Tier> tiers;  // the configured ones: host, disk, then remote
  std::array<int64_t, kKvChunkDropReasons.size()> dropped{};  // chunks failing their checks, by reason
  // Chunks not written: the blocks they would hold are over the cap, or the device failed the
  // steps that wrote them.
  int64_t store_skipped = 0;
};

}  // namespace bpt
