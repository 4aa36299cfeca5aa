// Memory-mapped safetensors files, single or sharded through model.safetensors.index.json.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "status.h"

namespace bpt {

enum class DType { kF32, kF16, kBF16 };
const char* DTypeName(DType dtype);
size_t DTypeSize(DType dtype);

struct TensorView {
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;  // points into a mapping owned by the SafetensorsFile
  size_t num_bytes;
  std::string file;     // for messages
};

// The largest header accepted; the reference implementation's limit too.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Parses a whole safetensors file held in memory: the 8-byte little-endian header length, the
// JSON header, then the data section, which the tensors must tile exactly (no overlap, no gap,
// nothing left over) with byte counts that match their dtype and shape. The views point into
// `file`; `path` names it in messages. Every problem is a DataLoss Status.
StatusOr<std::map<std::string, TensorView>> ParseSafetensors(const uint8_t* file, size_t file_size,
                                                             const std::string& path);

class SafetensorsFile {
 public:
  static StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }

 private:
  SafetensorsFile() = default;
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  std::map<std::string, TensorView> tensors_;
};

// All tensors of a model directory: model.safetensors, or the shards its index names. The index
// and the shards must agree on which shard holds each tensor.
class SafetensorsModel {
 public:
  static StatusOr<std::unique_ptr<SafetensorsModel>> Open(const std::string& model_dir);

  // NotFound naming the tensor when absent.
  StatusOr<TensorView> Find(const std::string& name) const;
  bool Has(const std::string& name) const { return tensors_.count(name) != 0; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, TensorView> tensors_;
};

// Converts any supported dtype to fp32. out: [view.num_bytes / DTypeSize(view.dtype)]
void ConvertToF32(const TensorView& view, float* out);

// Drops the tensor's file pages from this process's resident memory (they stay in the page
// cache), so converting a model holds the fp32 weights plus one tensor, not the file as well.
void ReleaseFilePages(const TensorView& view);

}  // namespace bpt
