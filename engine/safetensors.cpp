#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace bpt {
namespace {

using nlohmann::json;

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

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("cannot open weights file '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return Internal("cannot stat '" + path + "'");
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
  const auto* bytes = static_cast<const uint8_t*>(map);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes, 8);  // little-endian on every platform we build for
  if (header_len > size - 8)
    return DataLoss(path + ": header length " + std::to_string(header_len) +
                    " runs beyond the file (" + std::to_string(size) + " bytes)");
  json header = json::parse(bytes + 8, bytes + 8 + header_len, nullptr, false);
  if (header.is_discarded() || !header.is_object()) return DataLoss(path + ": header is not a JSON object");

  const uint8_t* data = bytes + 8 + header_len;
  const size_t data_size = size - 8 - header_len;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string where = path + ": tensor '" + it.key() + "'";
    const json& t = it.value();
    if (!t.is_object() || !t.contains("dtype") || !t["dtype"].is_string() || !t.contains("shape") ||
        !t["shape"].is_array() || !t.contains("data_offsets") || !t["data_offsets"].is_array() ||
        t["data_offsets"].size() != 2)
      return DataLoss(where + ": malformed header entry");
    TensorView view;
    BPT_ASSIGN_OR_RETURN(view.dtype, ParseDType(t["dtype"].get<std::string>(), where));
    uint64_t elements = 1;
    for (const auto& d : t["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) return DataLoss(where + ": bad shape");
      view.shape.push_back(d.get<int64_t>());
      elements *= static_cast<uint64_t>(d.get<int64_t>());
    }
    const auto& off = t["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) return DataLoss(where + ": bad data_offsets");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end) return DataLoss(where + ": data_offsets decrease");
    if (end > data_size)
      return DataLoss(path + ": truncated file: tensor '" + it.key() + "' ends at byte " +
                      std::to_string(end) + " of a " + std::to_string(data_size) + "-byte data section");
    if (end - begin != elements * DTypeSize(view.dtype))
      return DataLoss(where + ": " + std::to_string(end - begin) + " bytes do not match its shape and dtype");
    view.data = data + begin;
    view.num_bytes = end - begin;
    view.file = path;
    file->tensors_.emplace(it.key(), std::move(view));
  }
  return file;
}

StatusOr<std::unique_ptr<SafetensorsModel>> SafetensorsModel::Open(const std::string& model_dir) {
  auto model = std::make_unique<SafetensorsModel>();
  std::vector<std::string> shard_names;
  const std::string index_path = model_dir + "/model.safetensors.index.json";
  std::ifstream index(index_path);
  if (index) {
    std::stringstream ss;
    ss << index.rdbuf();
    json j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object())
      return InvalidArgument(index_path + ": missing 'weight_map'");
    std::set<std::string> unique;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) return InvalidArgument(index_path + ": weight_map values must be file names");
      const std::string shard = it->get<std::string>();
      if (shard.find('/') != std::string::npos)
        return InvalidArgument(index_path + ": shard name '" + shard + "' must not contain '/'");
      unique.insert(shard);
    }
    shard_names.assign(unique.begin(), unique.end());
  } else {
    shard_names.push_back("model.safetensors");
    struct stat st {};
    if (stat((model_dir + "/model.safetensors").c_str(), &st) != 0)
      return NotFound("model directory '" + model_dir +
                      "' has neither model.safetensors nor model.safetensors.index.json");
  }
  for (const auto& shard : shard_names) {
    BPT_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(model_dir + "/" + shard));
    for (const auto& [name, view] : file->tensors()) {
      if (!model->tensors_.emplace(name, view).second)
        return InvalidArgument("tensor '" + name + "' appears in more than one shard");
    }
    model->files_.push_back(std::move(file));
  }
  return model;
}

StatusOr<TensorView> SafetensorsModel::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return NotFound("missing tensor '" + name + "' in the model weights");
  return it->second;
}

void ConvertToF32(const TensorView& view, float* out) {
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
