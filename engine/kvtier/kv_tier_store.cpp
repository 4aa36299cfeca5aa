#include "kv_tier_store.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "check.h"

namespace bpt {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Durations kept for the metrics between two TakeStats; past it they are not recorded (a
// server without metrics never takes them).
constexpr size_t kMaxDurationsKept = 4096;

void Record(std::vector<double>& durations, double seconds) {
  if (durations.size() < kMaxDurationsKept) durations.push_back(seconds);
}

}  // namespace

// A probe, then perhaps a load, for one sequence: chunks [first_chunk, ...) of its prompt.
struct KvTierStore::LoadJob {
  int64_t seq_id = 0;
  int64_t matched = 0;      // the pool's match: blocks before it are the sequence's already
  int64_t first_chunk = 0;  // the chunk holding position `matched`
  std::vector<ChunkKey> keys;    // chunks first_chunk, first_chunk + 1, ...
  std::vector<int32_t> tokens;   // their tokens, chunk after chunk
  Clock::time_point started;
  bool probed = false;           // false: to probe; true: probed, then (if asked) to load
  std::vector<int> holder;       // the tier first found holding each probed chunk
  int64_t available_end = 0;
  int64_t load_end = 0;
  std::vector<int32_t> blocks;   // pool block per block from first_chunk's first; -1: matched already
  int64_t loaded_end = 0;
  KvLoadOutcome outcome;
};

// A write of one chunk of a sequence, holding the chunk's blocks.
struct KvTierStore::StoreJob {
  int64_t seq_id = 0;
  int64_t failure_scope = 0;     // the writes a tier's failure here skips (failed_scope_)
  int64_t chunk = 0;             // its index in the sequence
  ChunkKey key;
  std::shared_ptr<const std::vector<int32_t>> prompt;  // keeps `tokens` alive
  std::span<const int32_t> tokens;                     // [chunk_tokens] the chunk's, in *prompt
  BlockTable held;
  int64_t pin_until_s = 0;
  bool in_some_tier = false;     // the result
  bool retry = false;            // a tier was down (or the write was skipped): worth writing again
};

KvTierStore::KvTierStore(KvTierStoreOptions options, std::vector<std::unique_ptr<KvTier>> tiers, KvBlockManager& blocks,
                         KvBlockCopier copier)
    : options_(std::move(options)),
      tiers_(std::move(tiers)),
      blocks_(blocks),
      copier_(std::move(copier)),
      local_codec_(""),
      shared_codec_(options_.hmac_key),
      blocks_per_chunk_(options_.chunk_tokens / options_.block_size) {
  BPT_CHECK(options_.chunk_tokens % options_.block_size == 0 && blocks_per_chunk_ > 0,
            "chunk_tokens must be a multiple of the block size");
  if (!options_.now_s) options_.now_s = WallSeconds;
  for (const auto& t : tiers_) {
    KvTierStats::Tier tier;
    tier.name = t->name();
    stats_.tiers.push_back(std::move(tier));
  }
  failed_scope_.assign(tiers_.size(), kNoFailureScope);
  failed_code_.assign(tiers_.size(), StatusCode::kOk);
  for (const char* name : {"disk", "host"})
    for (size_t t = 0; t < tiers_.size() && pin_tier_ < 0; ++t)
      if (std::string_view(tiers_[t]->name()) == name) pin_tier_ = static_cast<int>(t);
  loader_ = std::thread([this] { LoaderLoop(); });
  storer_ = std::thread([this] { StorerLoop(); });
}

KvTierStore::~KvTierStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  loader_.join();
  storer_.join();
  // Blocks still held by writes go back, so the pool's books balance when the engine checks.
  for (auto& job : store_queue_) blocks_.Release(&job->held);
  for (auto& job : store_results_) blocks_.Release(&job->held);
}

int64_t KvTierStore::chunk_bytes() const {
  return static_cast<int64_t>(local_codec_.EncodedBytes(options_.chunk_tokens, blocks_per_chunk_ * options_.block_payload_bytes));
}

const KvTier* KvTierStore::tier(const char* name) const {
  for (const auto& t : tiers_)
    if (std::string_view(t->name()) == name) return t.get();
  return nullptr;
}

KvTierLink::ProbeStart KvTierStore::StartProbe(int64_t seq_id, const std::string& cache_salt,
                                               std::span<const int32_t> tokens, int64_t matched, int64_t end) {
  const int64_t chunk = options_.chunk_tokens;
  const std::vector<ChunkKey> keys =
      ChainChunkKeys(RootChunkKey(options_.model_fingerprint, cache_salt), tokens, options_.chunk_tokens, end / chunk);
  auto job = std::make_unique<LoadJob>();
  job->seq_id = seq_id;
  job->matched = matched;
  job->first_chunk = matched / chunk;
  if (loading_keys_.count(keys[job->first_chunk]) != 0) return ProbeStart::kWaitForOther;
  job->keys.assign(keys.begin() + job->first_chunk, keys.end());
  job->tokens.assign(tokens.begin() + job->first_chunk * chunk, tokens.begin() + end);
  job->started = Clock::now();
  for (const ChunkKey& k : job->keys) loading_keys_.insert(k);
  LoadJob* raw = job.get();
  loads_[seq_id] = std::move(job);
  {
    std::lock_guard<std::mutex> lock(mu_);
    load_queue_.push_back(raw);
  }
  work_cv_.notify_all();
  return ProbeStart::kStarted;
}

void KvTierStore::StartLoad(int64_t seq_id, int64_t end, const BlockTable& table) {
  const auto it = loads_.find(seq_id);
  BPT_CHECK(it != loads_.end(), "no probe of sequence " + std::to_string(seq_id));
  LoadJob& job = *it->second;
  if (end <= job.matched) {  // nothing to load: the probe ends here
    for (const ChunkKey& k : job.keys) loading_keys_.erase(k);
    loads_.erase(it);
    return;
  }
  job.load_end = end;
  // The blocks reserved for the load may have been freed (a preemption, a removal) while a step
  // that writes them was still running on the device: it must end before the loader overwrites
  // them. A device that failed loads nothing, and the sequence computes its whole prompt.
  if (copier_.wait_for_steps && !copier_.wait_for_steps().ok()) {
    job.loaded_end = job.matched;
    std::lock_guard<std::mutex> lock(mu_);
    load_results_.push_back(&job);
    result_cv_.notify_all();
    return;
  }
  const int64_t block = options_.block_size;
  for (int64_t b = job.first_chunk * blocks_per_chunk_; b < end / block; ++b)
    job.blocks.push_back(b * block >= job.matched ? table[b] : -1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    load_queue_.push_back(&job);
  }
  work_cv_.notify_all();
}

void KvTierStore::Store(int64_t seq_id, const std::string& cache_salt, std::span<const int32_t> tokens,
                        int64_t num_computed, const BlockTable& table, int64_t retain_s) {
  const int64_t pin_until_s = retain_s > 0 ? options_.now_s() + retain_s : 0;
  StoreChunks(seq_id, seq_id, cache_salt, tokens, num_computed, table, pin_until_s, options_.max_held_blocks);
}

int64_t KvTierStore::StoreChunks(int64_t seq_id, int64_t failure_scope, const std::string& cache_salt,
                                 std::span<const int32_t> tokens, int64_t num_computed, const BlockTable& table,
                                 int64_t pin_until_s, int64_t max_held_blocks) {
  const int64_t chunk = options_.chunk_tokens;
  const int64_t num_chunks = std::min<int64_t>(num_computed, static_cast<int64_t>(table.size()) * options_.block_size) / chunk;
  if (num_chunks == 0) return 0;
  const std::vector<ChunkKey> keys =
      ChainChunkKeys(RootChunkKey(options_.model_fingerprint, cache_salt), tokens, options_.chunk_tokens, num_chunks);
  // Without it a copy could read KV a step has not finished writing. A device that failed here
  // fails that step's requests too; this write is skipped, as one over the cap is.
  const bool steps_done = !copier_.wait_for_steps || copier_.wait_for_steps().ok();
  SequenceStore& pending = stores_pending_[seq_id];
  pending.in_some_tier.resize(std::max<size_t>(pending.in_some_tier.size(), static_cast<size_t>(num_chunks)), 0);
  auto prompt = std::make_shared<const std::vector<int32_t>>(tokens.begin(), tokens.begin() + num_chunks * chunk);
  if (pending.prefix.tokens == nullptr || pending.prefix.tokens->size() < prompt->size())
    pending.prefix = {cache_salt, prompt, keys.back(), pin_until_s};
  std::vector<std::unique_ptr<StoreJob>> jobs;
  int64_t skipped = 0;
  for (int64_t c = 0; c < num_chunks; ++c) {
    // No memory of what was written before: a tier may have evicted it since (Redis by its own
    // LRU), so the storer asks each tier, which costs a lookup (disk) or a round trip (Redis).
    if (!steps_done || held_blocks_ + blocks_per_chunk_ > max_held_blocks) {
      ++skipped;
      continue;
    }
    auto job = std::make_unique<StoreJob>();
    job->seq_id = seq_id;
    job->failure_scope = failure_scope;
    job->chunk = c;
    job->key = keys[c];
    job->prompt = prompt;
    job->tokens = std::span<const int32_t>(*prompt).subspan(c * chunk, chunk);
    job->held.assign(table.begin() + c * blocks_per_chunk_, table.begin() + (c + 1) * blocks_per_chunk_);
    job->pin_until_s = pin_until_s;
    blocks_.Retain(job->held);
    held_blocks_ += blocks_per_chunk_;
    jobs.push_back(std::move(job));
  }
  if (skipped > 0) pending.retry = true;
  if (jobs.empty()) {
    if (pending.pending == 0) {  // nothing to write: the result is ready at the next Poll
      auto done = std::make_unique<StoreJob>();
      done->seq_id = seq_id;
      done->chunk = -1;
      std::lock_guard<std::mutex> lock(mu_);
      stats_.store_skipped += skipped;
      store_results_.push_back(std::move(done));
      ++pending.pending;
      result_cv_.notify_all();
      return 0;
    }
  }
  const int64_t queued = static_cast<int64_t>(jobs.size());
  pending.pending += static_cast<int>(queued);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.store_skipped += skipped;
    for (auto& job : jobs) store_queue_.push_back(std::move(job));
  }
  work_cv_.notify_all();
  return queued;
}

void KvTierStore::QueueRetry(StoredPrefix prefix) {
  for (const StoredPrefix& queued : retries_)
    if (queued.last_key == prefix.last_key) return;  // the same chunks: one retry writes them
  retry_tokens_ += static_cast<int64_t>(prefix.tokens->size());
  retries_.push_back(std::move(prefix));
  // More than the pool holds cannot all be matched there at the drain: the oldest go first.
  while (retries_.size() > 1 && retry_tokens_ > blocks_.capacity_tokens()) {
    retry_tokens_ -= static_cast<int64_t>(retries_.front().tokens->size());
    retries_.pop_front();
  }
}

int64_t KvTierStore::RetryIncompleteStores() {
  std::deque<StoredPrefix> retries;
  retries.swap(retries_);
  retry_tokens_ = 0;
  // One scope for the round: a tier still down costs one timeout, not one per sequence.
  const int64_t round = next_retry_id_--;
  int64_t queued = 0;
  for (StoredPrefix& retry : retries) {
    // One token more than the chunks, so MatchPrefix (which leaves one to compute) can match them all.
    std::vector<int32_t> tokens(retry.tokens->begin(), retry.tokens->end());
    tokens.push_back(0);
    BlockTable table;
    const int64_t matched = blocks_.MatchPrefix(tokens, &table, PoolSaltSeed(retry.cache_salt));
    tokens.pop_back();
    if (matched >= options_.chunk_tokens) {
      // No cap on the blocks held: at the drain no request needs the pool.
      queued += StoreChunks(next_retry_id_--, round, retry.cache_salt, tokens, matched, table, retry.pin_until_s,
                            blocks_.num_blocks());
    }
    blocks_.Release(&table);
  }
  return queued;
}

bool KvTierStore::StorePending(int64_t seq_id) const { return stores_pending_.count(seq_id) != 0; }

bool KvTierStore::busy() const { return !loads_.empty() || !stores_pending_.empty(); }

void KvTierStore::WaitForResult(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  result_cv_.wait_for(lock, timeout, [&] { return !load_results_.empty() || !store_results_.empty(); });
}

bool KvTierStore::FlushStores(Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return result_cv_.wait_until(lock, deadline, [&] { return store_queue_.empty() && !storing_; });
}

void KvTierStore::Poll(Scheduler& scheduler, const std::function<void(int64_t, const KvLoadOutcome&)>& on_loaded,
                       const std::function<void(int64_t, int64_t)>& on_stored) {
  std::deque<LoadJob*> loads;
  std::deque<std::unique_ptr<StoreJob>> stores;
  {
    std::lock_guard<std::mutex> lock(mu_);
    loads.swap(load_results_);
    stores.swap(store_results_);
  }
  // Writes first: the blocks they give back are there for the loads reserved below.
  for (auto& job : stores) {
    if (!job->held.empty()) {
      blocks_.Release(&job->held);
      held_blocks_ -= blocks_per_chunk_;
    }
    const auto pending = stores_pending_.find(job->seq_id);
    if (pending == stores_pending_.end()) continue;
    SequenceStore& store = pending->second;
    if (job->chunk >= 0 && job->in_some_tier) store.in_some_tier[job->chunk] = 1;
    if (job->retry) store.retry = true;
    if (--store.pending > 0) continue;
    const auto gap = std::find(store.in_some_tier.begin(), store.in_some_tier.end(), 0);
    const int64_t leading = gap - store.in_some_tier.begin();
    if (store.retry) QueueRetry(std::move(store.prefix));
    stores_pending_.erase(pending);
    on_stored(job->seq_id, leading * options_.chunk_tokens);
  }
  for (LoadJob* job : loads) {
    const int64_t seq_id = job->seq_id;
    if (job->load_end == 0) {  // a probe answered
      const int64_t end = scheduler.OnTierProbed(seq_id, job->available_end);
      StartLoad(seq_id, end, end > 0 ? scheduler.block_table(seq_id) : BlockTable{});
      continue;
    }
    const KvLoadOutcome outcome = job->outcome;
    const int64_t loaded_end = job->loaded_end;
    for (const ChunkKey& k : job->keys) loading_keys_.erase(k);
    loads_.erase(seq_id);
    scheduler.OnTierLoaded(seq_id, loaded_end);
    on_loaded(seq_id, outcome);
  }
}

void KvTierStore::LoaderLoop() {
  for (;;) {
    LoadJob* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || !load_queue_.empty(); });
      if (stop_) return;
      job = load_queue_.front();
      load_queue_.pop_front();
    }
    if (!job->probed) {
      Probe(*job);
    } else {
      Load(*job);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      load_results_.push_back(job);
    }
    result_cv_.notify_all();
  }
}

void KvTierStore::Probe(LoadJob& job) {
  const int64_t chunk = options_.chunk_tokens;
  job.probed = true;
  job.available_end = job.matched;
  for (size_t c = 0; c < job.keys.size(); ++c) {
    int found = -1;
    for (size_t t = 0; t < tiers_.size() && found < 0; ++t) {
      const StatusOr<bool> has = tiers_[t]->Contains(job.keys[c]);
      std::lock_guard<std::mutex> lock(mu_);
      if (!has.ok()) {
        ++stats_.tiers[t].load_errors;
      } else if (*has) {
        found = static_cast<int>(t);
      } else {
        stats_.tiers[t].miss_tokens += chunk;
      }
    }
    if (found < 0) break;
    job.holder.push_back(found);
    job.available_end = (job.first_chunk + static_cast<int64_t>(c) + 1) * chunk;
  }
}

void KvTierStore::Load(LoadJob& job) {
  const int64_t chunk = options_.chunk_tokens;
  const size_t payload_bytes = static_cast<size_t>(blocks_per_chunk_ * options_.block_payload_bytes);
  std::vector<uint8_t> bytes;
  job.loaded_end = job.matched;
  const int64_t num_chunks = (job.load_end / chunk) - job.first_chunk;
  for (int64_t c = 0; c < num_chunks; ++c) {
    const std::span<const int32_t> tokens(job.tokens.data() + c * chunk, static_cast<size_t>(chunk));
    const ChunkIdentity identity = IdentityOf(job.keys[c], tokens);
    bool loaded = false;
    // The tier the probe found first, then the others: a chunk dropped by one may be whole in another.
    std::vector<size_t> order;
    if (c < static_cast<int64_t>(job.holder.size())) order.push_back(static_cast<size_t>(job.holder[c]));
    for (size_t t = 0; t < tiers_.size(); ++t)
      if (order.empty() || t != order[0]) order.push_back(t);
    bool copy_failed = false;
    for (size_t t : order) {
      const Clock::time_point start = Clock::now();
      std::optional<ChunkDropReason> dropped;
      const Status got = tiers_[t]->Read(job.keys[c], &bytes, [&](std::span<const uint8_t> encoded) {
        ChunkDropReason reason;
        const StatusOr<std::span<const uint8_t>> payload = CodecOf(*tiers_[t]).Open(encoded, identity, payload_bytes, &reason);
        if (!payload.ok()) {
          dropped = reason;
          return payload.status();
        }
        const std::span<const int32_t> chunk_blocks(job.blocks.data() + c * blocks_per_chunk_,
                                                    static_cast<size_t>(blocks_per_chunk_));
        const Status copied = copier_.write(chunk_blocks, payload->data());
        copy_failed = !copied.ok();
        return copied;
      });
      if (dropped) {
        // A chunk that fails its HMAC may be whole for the replicas holding the right key (this
        // one may be misconfigured): it stays. Damaged or foreign chunks are no one's: removed.
        if (*dropped != ChunkDropReason::kUnauthenticated) {
          tiers_[t]->Drop(job.keys[c]);
        } else {
          std::lock_guard<std::mutex> lock(mu_);
          unauthenticated_.insert(job.keys[c]);  // the next write replaces it (a rotated key)
        }
        CountDrop(*dropped);
        continue;
      }
      if (copy_failed) break;
      if (!got.ok()) {
        if (got.code() != StatusCode::kNotFound) {
          std::lock_guard<std::mutex> lock(mu_);
          ++stats_.tiers[t].load_errors;
        }
        continue;
      }
      loaded = true;
      std::lock_guard<std::mutex> lock(mu_);
      // The pool's share of the first chunk is not this tier's.
      const int64_t tokens_new = std::min<int64_t>(chunk, (job.first_chunk + c + 1) * chunk - job.matched);
      stats_.tiers[t].hit_tokens += tokens_new;
      Record(stats_.tiers[t].load_seconds, SecondsSince(start));
      const std::string_view name = tiers_[t]->name();
      (name == "host" ? job.outcome.host_tokens : name == "disk" ? job.outcome.disk_tokens : job.outcome.remote_tokens) +=
          tokens_new;
      break;
    }
    if (!loaded) break;
    job.loaded_end = (job.first_chunk + c + 1) * chunk;
  }
  job.outcome.seconds = SecondsSince(job.started);
}

void KvTierStore::CountDrop(ChunkDropReason reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.dropped[static_cast<size_t>(reason)];
}

void KvTierStore::StorerLoop() {
  for (;;) {
    std::unique_ptr<StoreJob> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || !store_queue_.empty(); });
      if (stop_) return;
      job = std::move(store_queue_.front());
      store_queue_.pop_front();
      storing_ = true;
    }
    Write(*job);
    {
      std::lock_guard<std::mutex> lock(mu_);
      store_results_.push_back(std::move(job));
      storing_ = false;
    }
    result_cv_.notify_all();
  }
}

void KvTierStore::Write(StoreJob& job) {
  const size_t payload_bytes = static_cast<size_t>(blocks_per_chunk_ * options_.block_payload_bytes);
  const KvChunkCodec* encoded_with = nullptr;  // the codec encoded_ holds a chunk of, if any
  for (size_t t = 0; t < tiers_.size(); ++t) {
    KvTier& tier = *tiers_[t];
    const int64_t pin_until_s = static_cast<int>(t) == pin_tier_ ? job.pin_until_s : 0;
    Status put;
    if (failed_scope_[t] == job.failure_scope) {
      put = Status(failed_code_[t], "failed earlier for this sequence");
    } else {
      bool forged = false;
      if (tier.shared()) {
        std::lock_guard<std::mutex> lock(mu_);
        forged = unauthenticated_.erase(job.key) != 0;
      }
      const StatusOr<bool> has = forged ? StatusOr<bool>(false) : tier.Contains(job.key);
      if (has.ok() && *has) {
        if (pin_until_s > 0) tier.Pin(job.key, pin_until_s);
        job.in_some_tier = true;
        continue;
      }
      put = has.status();
    }
    const Clock::time_point start = Clock::now();
    const KvChunkCodec& codec = CodecOf(tier);
    if (put.ok() && encoded_with != &codec) {
      codec.BeginEncode(IdentityOf(job.key, job.tokens), payload_bytes, &encoded_);
      put = copier_.read(job.held, encoded_.data() + codec.PayloadOffset(job.tokens.size()));
      if (put.ok()) codec.Seal(&encoded_);
      encoded_with = put.ok() ? &codec : nullptr;
    }
    if (put.ok()) put = tier.Put(job.key, encoded_, pin_until_s);
    if (!put.ok()) {
      failed_scope_[t] = job.failure_scope;
      failed_code_[t] = put.code();
      // A tier that was down may answer later; one that refused (a budget, a size) will again.
      if (put.code() == StatusCode::kUnavailable) job.retry = true;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (put.ok()) {
      Record(stats_.tiers[t].store_seconds, SecondsSince(start));
      job.in_some_tier = true;
    } else {
      ++stats_.tiers[t].store_errors;
    }
  }
}

KvTierStats KvTierStore::TakeStats() {
  std::lock_guard<std::mutex> lock(mu_);
  KvTierStats taken = stats_;
  for (size_t t = 0; t < tiers_.size(); ++t) {
    taken.tiers[t].bytes_used = tiers_[t]->bytes_used();
    taken.tiers[t].budget_bytes = tiers_[t]->budget_bytes();
    KvTierStats::Tier fresh;
    fresh.name = tiers_[t]->name();
    stats_.tiers[t] = std::move(fresh);
  }
  stats_.dropped.fill(0);
  stats_.store_skipped = 0;
  return taken;
}

}  // namespace bpt
