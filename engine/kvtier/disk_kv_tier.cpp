#include "disk_kv_tier.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

namespace bpt {
namespace {

constexpr char kSuffix[] = ".kv";
constexpr char kTempSuffix[] = ".tmp";

bool EndsWith(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool ParseHexKey(const std::string& hex, ChunkKey* key) {
  if (hex.size() != 32) return false;
  uint64_t words[2] = {0, 0};
  for (size_t i = 0; i < 32; ++i) {
    const char c = hex[i];
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else return false;
    words[i / 16] = words[i / 16] << 4 | static_cast<uint64_t>(v);
  }
  *key = {words[0], words[1]};
  return true;
}

std::string ErrnoText(const std::string& what, int err) { return what + ": " + std::strerror(err); }

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A file's mtime is its last use, or its pin's end while that is in the future.
void SetMtime(const std::string& path, int64_t seconds) {
  const timespec times[2] = {{0, UTIME_OMIT}, {static_cast<time_t>(seconds), 0}};
  utimensat(AT_FDCWD, path.c_str(), times, 0);
}

// Best effort: a directory that cannot be synced costs the chunk at a power loss, not now.
void SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

}  // namespace

StatusOr<std::unique_ptr<DiskKvTier>> DiskKvTier::Open(DiskKvTierOptions options) {
  if (options.dir.empty()) return InvalidArgument("kv_disk_dir is empty");
  if (options.budget_bytes <= 0) return InvalidArgument("kv_disk_gib must be > 0 with kv_disk_dir");
  if (!options.now_s) options.now_s = WallSeconds;
  if (mkdir(options.dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Unavailable(ErrnoText("kv_disk_dir '" + options.dir + "' cannot be created", errno));
  DIR* dir = opendir(options.dir.c_str());
  if (dir == nullptr) return Unavailable(ErrnoText("kv_disk_dir '" + options.dir + "' cannot be read", errno));
  std::unique_ptr<DiskKvTier> tier(new DiskKvTier(std::move(options)));
  const int64_t now = tier->options_.now_s();
  struct Found {
    ChunkKey key;
    int64_t bytes;
    int64_t mtime;
  };
  std::vector<Found> found;
  while (const dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    const std::string path = tier->options_.dir + "/" + name;
    if (EndsWith(name, kTempSuffix)) {  // a write that never reached its rename
      unlink(path.c_str());
      continue;
    }
    ChunkKey key;
    if (!EndsWith(name, kSuffix) || !ParseHexKey(name.substr(0, name.size() - std::strlen(kSuffix)), &key)) continue;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    found.push_back({key, static_cast<int64_t>(st.st_size), static_cast<int64_t>(st.st_mtim.tv_sec)});
  }
  closedir(dir);
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.mtime < b.mtime; });
  std::lock_guard<std::mutex> lock(tier->mu_);
  for (const Found& f : found) tier->books_.Insert(f.key, f.bytes, f.mtime > now ? f.mtime : 0);
  tier->MakeRoomLocked(0);  // a smaller budget than the last run's
  return tier;
}

std::string DiskKvTier::PathOf(const ChunkKey& key) const { return options_.dir + "/" + key.Hex() + kSuffix; }

void DiskKvTier::RemoveLocked(const ChunkKey& key) {
  if (!books_.Contains(key)) return;
  unlink(PathOf(key).c_str());
  books_.Remove(key);
}

bool DiskKvTier::MakeRoomLocked(int64_t incoming) {
  std::vector<ChunkKey> evicted;
  const bool fits = books_.MakeRoom(incoming, &evicted);
  for (const ChunkKey& key : evicted) unlink(PathOf(key).c_str());
  return fits;
}

bool DiskKvTier::TouchLocked(const ChunkKey& key, int64_t pin_until_s) {
  const int64_t pin = books_.Touch(key, pin_until_s);
  if (pin < 0) return false;
  SetMtime(PathOf(key), std::max(options_.now_s(), pin));
  return true;
}

Status DiskKvTier::Get(const ChunkKey& key, std::vector<uint8_t>* out) {
  int64_t expected;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!TouchLocked(key, 0)) return NotFound("not on disk");
    expected = books_.bytes_of(key);
  }
  // Read outside the lock: the other thread's writes go on meanwhile. A chunk evicted during
  // the read is unlinked, but the open descriptor still reads the whole file.
  const int fd = open(PathOf(key).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      std::lock_guard<std::mutex> lock(mu_);
      RemoveLocked(key);
      return NotFound("not on disk");
    }
    return Unavailable(ErrnoText("disk tier read of " + key.Hex(), err));
  }
  out->resize(static_cast<size_t>(expected));
  size_t done = 0;
  while (done < out->size()) {
    const ssize_t n = read(fd, out->data() + done, out->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  out->resize(done);  // short: the codec calls it truncated
  return OkStatus();
}

StatusOr<bool> DiskKvTier::Contains(const ChunkKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  return books_.Contains(key);
}

Status DiskKvTier::Put(const ChunkKey& key, std::span<const uint8_t> bytes, int64_t pin_until_s) {
  const int64_t size = static_cast<int64_t>(bytes.size());
  std::string temp;
  DiskWriteFault fault;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (TouchLocked(key, pin_until_s)) return OkStatus();
    if (!MakeRoomLocked(size))
      return ResourceExhausted("disk tier budget of " + std::to_string(options_.budget_bytes) +
                               " bytes cannot take a chunk of " + std::to_string(size) + " bytes (" +
                               std::to_string(books_.bytes_used()) + " used, pinned chunks cannot be evicted)");
    books_.Reserve(size);
    temp = options_.dir + "/" + key.Hex() + "." + std::to_string(getpid()) + "." + std::to_string(next_temp_++) + kTempSuffix;
    fault = fault_;
    fault_ = DiskWriteFault::kNone;
  }
  const auto fail = [&](Status status, bool remove_temp) {
    if (remove_temp) unlink(temp.c_str());
    std::lock_guard<std::mutex> lock(mu_);
    books_.Unreserve(size);
    return status;
  };
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return fail(Unavailable(ErrnoText("disk tier cannot create " + temp, errno)), false);
  if (fault == DiskWriteFault::kCrashAfterCreate) {
    close(fd);
    return fail(Internal("injected crash after create"), false);
  }
  size_t done = 0;
  const size_t stop_at = fault == DiskWriteFault::kCrashMidWrite ? bytes.size() / 2 : bytes.size();
  int write_errno = fault == DiskWriteFault::kNoSpace ? ENOSPC : 0;
  while (write_errno == 0 && done < stop_at) {
    const ssize_t n = write(fd, bytes.data() + done, stop_at - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) write_errno = errno;
    else done += static_cast<size_t>(n);
  }
  if (fault == DiskWriteFault::kCrashMidWrite) {
    close(fd);
    return fail(Internal("injected crash mid-write"), false);
  }
  // The mtime (last use, or the pin's end) and the bytes are on disk before the rename makes
  // the chunk visible: after a power loss a chunk is whole or absent, and keeps its pin.
  const int64_t now = options_.now_s();
  const timespec times[2] = {{0, UTIME_OMIT}, {static_cast<time_t>(std::max(now, pin_until_s)), 0}};
  if (write_errno == 0 && futimens(fd, times) != 0) write_errno = errno;
  if (write_errno == 0 && fsync(fd) != 0) write_errno = errno;
  if (close(fd) != 0 && write_errno == 0) write_errno = errno;
  if (write_errno != 0) return fail(Unavailable(ErrnoText("disk tier write of " + key.Hex(), write_errno)), true);
  if (fault == DiskWriteFault::kCrashBeforeRename) return fail(Internal("injected crash before rename"), false);
  if (rename(temp.c_str(), PathOf(key).c_str()) != 0)
    return fail(Unavailable(ErrnoText("disk tier rename to " + PathOf(key), errno)), true);
  SyncDirectory(options_.dir);  // the rename itself, so the chunk survives a power loss
  std::lock_guard<std::mutex> lock(mu_);
  books_.Unreserve(size);
  // Another thread's Put of the same chunk may have got here first: one copy, counted once.
  if (!TouchLocked(key, pin_until_s)) books_.Insert(key, size, pin_until_s);
  return OkStatus();
}

void DiskKvTier::Pin(const ChunkKey& key, int64_t pin_until_s) {
  std::lock_guard<std::mutex> lock(mu_);
  TouchLocked(key, pin_until_s);
}

void DiskKvTier::Drop(const ChunkKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  RemoveLocked(key);
}

int64_t DiskKvTier::bytes_used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return books_.bytes_used();
}

int64_t DiskKvTier::pinned_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return books_.pinned_bytes();
}

int64_t DiskKvTier::num_chunks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return books_.num_chunks();
}

void DiskKvTier::SetWriteFaultForTest(DiskWriteFault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  fault_ = fault;
}

}  // namespace bpt
