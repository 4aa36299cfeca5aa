#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "checked_math.h"
#include "json_fields.h"

namespace bpt {
namespace {

using nlohmann::json;

// An index lists each tensor once: a few hundred KB for the largest published models.
constexpr size_t kMaxIndexBytes = 64 << 20;

// Every problem in a safetensors file is data loss, whatever the JSON reader called it.
template <typename T>
StatusOr<T> AsDataLoss(StatusOr<T> result) {
  if (result.ok()) return result;
  return DataLoss(result.status().message());
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

StatusOr<DType> ParseDType(const std::string& s, const std::string& where) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  return InvalidArgument(where + ": unsupported dtype '" + s + "' (supported: F32, F16, BF16)");
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalize
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
  }
  return "?";
}

size_t DTypeSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) munmap(mapping_, mapping_size_);
}

StatusOr<std::map<std::string, TensorView>> ParseSafetensors(const uint8_t* file, size_t file_size,
                                                             const std::string& path) {
  if (file_size < 8)
    return DataLoss(path + ": truncated file (" + std::to_string(file_size) + " bytes, no header)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, file, 8);  // little-endian on every platform we build for
  if (header_len < 2) return DataLoss(path + ": header length " + std::to_string(header_len) + " cannot hold a JSON object");
  if (header_len > file_size - 8)
    return DataLoss(path + ": header length " + std::to_string(header_len) + " runs beyond the file (" +
                    std::to_string(file_size) + " bytes)");
  if (header_len > kMaxSafetensorsHeaderBytes)
    return DataLoss(path + ": header length " + std::to_string(header_len) + " exceeds the limit of " +
                    std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
  const std::string_view header_text(reinterpret_cast<const char*>(file + 8), header_len);
  BPT_ASSIGN_OR_RETURN(const json header, AsDataLoss(ParseJsonObject(header_text, path + ": header")));

  const uint8_t* data = file + 8 + header_len;
  const uint64_t data_size = file_size - 8 - header_len;
  std::map<std::string, TensorView> tensors;
  struct Extent {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Extent> extents;
  BPT_ASSIGN_OR_RETURN(const JsonFields fields, AsDataLoss(JsonFields::Of(header, path)));
  for (const std::string& name : fields.Keys()) {
    if (name == "__metadata__") {
      // Nothing in it is used, but a header that breaks the format is not trusted.
      BPT_RETURN_IF_ERROR(AsDataLoss(fields.StringMap(name)).status());
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    BPT_ASSIGN_OR_RETURN(const JsonFields t, AsDataLoss(fields.Member(name, where)));
    TensorView view;
    BPT_ASSIGN_OR_RETURN(const std::string dtype, AsDataLoss(t.String("dtype")));
    BPT_ASSIGN_OR_RETURN(view.dtype, AsDataLoss(ParseDType(dtype, where)));
    BPT_ASSIGN_OR_RETURN(view.shape, AsDataLoss(t.IntList("shape", {0, std::numeric_limits<int64_t>::max()})));
    BPT_ASSIGN_OR_RETURN(const std::vector<int64_t> offsets,
                         AsDataLoss(t.IntList("data_offsets", {0, std::numeric_limits<int64_t>::max()})));
    if (offsets.size() != 2) return DataLoss(where + ": 'data_offsets' must be [begin, end]");
    const uint64_t begin = offsets[0], end = offsets[1];
    if (begin > end)
      return DataLoss(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] decrease");
    if (end > data_size)
      return DataLoss(path + ": truncated file: tensor '" + name + "' ends at byte " + std::to_string(end) +
                      " of a " + std::to_string(data_size) + "-byte data section");
    std::optional<int64_t> bytes = CheckedProduct({static_cast<int64_t>(DTypeSize(view.dtype))});
    for (int64_t d : view.shape) bytes = CheckedProduct({bytes, d});
    if (!bytes || static_cast<uint64_t>(*bytes) != end - begin)
      return DataLoss(where + ": " + std::to_string(end - begin) + " bytes do not match its shape " +
                      ShapeString(view.shape) + " and dtype " + dtype);
    view.data = data + begin;
    view.num_bytes = end - begin;
    view.file = path;
    auto placed = tensors.emplace(name, std::move(view)).first;
    extents.push_back({begin, end, &placed->first});
  }
  // The tensors tile the data section: a gap or an overlap means offsets were tampered with, and
  // bytes left over (or missing) mean the header length does not end where the data begins.
  std::sort(extents.begin(), extents.end(),
            [](const Extent& a, const Extent& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const Extent& e : extents) {
    if (e.begin < covered)
      return DataLoss(path + ": tensor '" + *e.name + "' (bytes " + std::to_string(e.begin) + " to " +
                      std::to_string(e.end) + ") overlaps tensor '" + *previous + "'");
    if (e.begin > covered)
      return DataLoss(path + ": bytes " + std::to_string(covered) + " to " + std::to_string(e.begin) +
                      " of the data section belong to no tensor (a gap before tensor '" + *e.name + "')");
    covered = e.end;
    previous = e.name;
  }
  if (covered != data_size)
    return DataLoss(path + ": the tensors cover " + std::to_string(covered) + " bytes of a " +
                    std::to_string(data_size) + "-byte data section: the header length (" +
                    std::to_string(header_len) + ") does not end where the data begins");
  return tensors;
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("cannot open weights file '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return Internal("cannot stat '" + path + "'");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument("weights file '" + path + "' is not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return DataLoss(path + ": truncated file (" + std::to_string(size) + " bytes, no header)");
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return Internal("cannot mmap '" + path + "': " + std::strerror(errno));

  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->mapping_ = map;
  file->mapping_size_ = size;
  BPT_ASSIGN_OR_RETURN(file->tensors_, ParseSafetensors(static_cast<const uint8_t*>(map), size, path));
  return file;
}

StatusOr<std::unique_ptr<SafetensorsModel>> SafetensorsModel::Open(const std::string& model_dir) {
  auto model = std::make_unique<SafetensorsModel>();
  const std::string index_path = model_dir + "/model.safetensors.index.json";
  struct stat st {};
  if (stat(index_path.c_str(), &st) != 0) {
    if (stat((model_dir + "/model.safetensors").c_str(), &st) != 0)
      return NotFound("model directory '" + model_dir +
                      "' has neither model.safetensors nor model.safetensors.index.json");
    BPT_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(model_dir + "/model.safetensors"));
    model->tensors_ = file->tensors();
    model->files_.push_back(std::move(file));
    return model;
  }

  BPT_ASSIGN_OR_RETURN(const json index, ReadJsonFile(index_path, kMaxIndexBytes));
  BPT_ASSIGN_OR_RETURN(const JsonFields fields, JsonFields::Of(index, index_path));
  BPT_ASSIGN_OR_RETURN(const JsonFields weight_map, fields.Object("weight_map"));
  std::map<std::string, std::string> shard_of;  // tensor name -> shard file name
  for (const std::string& tensor : weight_map.Keys()) {
    BPT_ASSIGN_OR_RETURN(std::string shard, weight_map.String(tensor));
    if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
        shard.find('\0') != std::string::npos)
      return InvalidArgument(index_path + ": tensor '" + tensor + "' names shard '" + shard +
                             "', which is not a file name in the model directory");
    shard_of.emplace(tensor, std::move(shard));
  }
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : shard_of) shards.insert(shard);
  for (const std::string& shard : shards) {
    BPT_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(model_dir + "/" + shard));
    for (const auto& [name, view] : file->tensors()) {
      auto listed = shard_of.find(name);
      if (listed == shard_of.end() || listed->second != shard)
        return InvalidArgument(index_path + ": shard '" + shard + "' holds tensor '" + name + "', which the index " +
                               (listed == shard_of.end() ? std::string("does not list")
                                                         : "places in '" + listed->second + "'"));
      model->tensors_.emplace(name, view);
    }
    model->files_.push_back(std::move(file));
  }
  for (const auto& [tensor, shard] : shard_of)
    if (model->tensors_.count(tensor) == 0)
      return DataLoss(index_path + ": tensor '" + tensor + "' is not in shard '" + shard + "', where the index places it");
  return model;
}

StatusOr<TensorView> SafetensorsModel::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return NotFound("missing tensor '" + name + "' in the model weights");
  return it->second;
}

void ConvertToF32(const TensorView& view, float* out) {
  if (view.num_bytes == 0) return;  // an empty tensor's `out` may be null, which memcpy must not see
  const size_t n = view.num_bytes / DTypeSize(view.dtype);
  switch (view.dtype) {
    case DType::kF32:
      std::memcpy(out, view.data, view.num_bytes);
      break;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, view.data + 2 * i, 2);
        const uint32_t bits = static_cast<uint32_t>(b) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      break;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, view.data + 2 * i, 2);
        out[i] = HalfToFloat(h);
      }
      break;
  }
}

void ReleaseFilePages(const TensorView& view) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(view.data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(view.data) + view.num_bytes) / page * page;
  // Pages shared with a neighbouring tensor are kept; a later read would fault them back anyway.
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace bpt
