// Memory-mapped, read-only safetensors reader, and the weights of a Hugging Face model folder.
//
//   // every tensor an expert service owns, nothing else is opened
//   MOE_ASSIGN_OR_RETURN(auto store, WeightStore::Open(dir, [](std::string_view n) {
//     return n.find(".experts.") != std::string_view::npos;
//   }));
//   MOE_ASSIGN_OR_RETURN(TensorView w1,
//   store->Get("model.layers.0.block_sparse_moe.experts.3.w1.weight"));
//   MOE_ASSIGN_OR_RETURN(std::vector<float> f, ToF32(w1, {128, 64}));
//
// File format (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
// N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section; offsets are relative to the start of the data section.
//
// Every header is validated before any tensor is exposed: header length within the file and
// < 100 MB, a JSON object, known dtype, non-negative shape whose element count does not overflow,
// 0 <= begin <= end <= data size, end - begin == numel * dtype size, no two tensors overlapping.
// Any violation is INVALID_ARGUMENT naming the file (and the tensor); never a crash.
//
// Lifetime: TensorView::data points into a read-only private mapping owned by the
// SafetensorsFile (and so by the WeightStore); it stays valid while that object lives.
// Data pointers are not aligned beyond 1 byte in general: read through memcpy or the helpers.
// Thread-safety: both classes are immutable after Open; const methods may be called from any
// thread concurrently.
#ifndef MOE_MODEL_SAFETENSORS_H_
#define MOE_MODEL_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/dtype.h"

namespace moe::model {

// A tensor inside a mapped file. Cheap to copy; does not own its data.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // nbytes bytes, row-major; nullptr only when nbytes == 0
  size_t nbytes = 0;

  int64_t numel() const;
  // "BF16[8, 64]"
  std::string DebugString() const;
};

// Parses dtype names as safetensors writes them ("F32", "F16", "BF16", "I32", "I64", "U8").
// INVALID_ARGUMENT for any other name (e.g. "F8_E4M3", "F64", "BOOL": not supported yet).
absl::StatusOr<DType> ParseDTypeName(std::string_view name);

// One safetensors file, memory-mapped read-only (MAP_PRIVATE).
class SafetensorsFile {
 public:
  // Maps and validates `path`. NOT_FOUND if it cannot be opened, INVALID_ARGUMENT if the
  // header is invalid (message names the file and the tensor).
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensor names in order of their data offset (deterministic).
  const std::vector<std::string>& names() const { return names_; }
  // nullptr if the file holds no tensor of that name.
  const TensorView* Find(std::string_view name) const;
  // `__metadata__` (string to string), empty if absent.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Size of the file in bytes.
  size_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::vector<std::string> names_;
  std::unordered_map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All weights of a model folder: `model.safetensors`, or the shards listed in the `weight_map`
// of `model.safetensors.index.json` (which wins when both exist).
class WeightStore {
 public:
  // `filter` (nullptr = accept all) selects tensor names. Only the shard files containing at
  // least one accepted tensor are opened (and mapped), and only accepted tensors are exposed.
  // For a single-file model the file is opened (its header says which tensors it holds).
  // Errors: NOT_FOUND if the folder has neither file; INVALID_ARGUMENT for a malformed index
  // (names the index file) or a shard; INVALID_ARGUMENT if the index names a tensor its shard
  // does not hold.
  static absl::StatusOr<std::unique_ptr<WeightStore>> Open(
      const std::string& dir, std::function<bool(std::string_view name)> filter = nullptr);

  // NOT_FOUND naming the tensor and the folder if absent (or filtered out).
  absl::StatusOr<TensorView> Get(std::string_view name) const;
  bool Has(std::string_view name) const;
  // Sorted names of the exposed tensors.
  std::vector<std::string> Names() const;
  // Sum of nbytes over the exposed tensors.
  size_t TotalBytes() const;
  // Paths of the safetensors files that were opened, in opening order.
  std::vector<std::string> OpenedFiles() const;
  const std::string& dir() const { return dir_; }

 private:
  WeightStore() = default;

  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, const TensorView*> tensors_;
};

// INVALID_ARGUMENT naming the tensor and both shapes unless t.shape == expected_shape.
absl::Status CheckShape(const TensorView& t, absl::Span<const int64_t> expected_shape);

// Copies a floating-point tensor (F32, F16, BF16) into F32, widening exactly. Checks the shape
// first (see CheckShape); INVALID_ARGUMENT for integer dtypes.
absl::StatusOr<std::vector<float>> ToF32(const TensorView& t,
                                         absl::Span<const int64_t> expected_shape);
// Same without a shape check.
absl::StatusOr<std::vector<float>> ToF32(const TensorView& t);
// Widens into caller memory: `out.size()` must equal t.numel() (INVALID_ARGUMENT otherwise).
absl::Status CopyToF32(const TensorView& t, absl::Span<float> out);

}  // namespace moe::model

#endif  // MOE_MODEL_SAFETENSORS_H_
