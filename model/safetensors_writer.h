// Writes safetensors files, either from buffers in memory or streamed tensor by tensor.
//
//   SafetensorsWriter w;
//   MOE_RETURN_IF_ERROR(w.Add("a", DType::kBF16, {8, 64}));
//   MOE_RETURN_IF_ERROR(w.Open(path));                    // header written, file sized
//   MOE_RETURN_IF_ERROR(w.Write("a", bytes.data(), bytes.size()));  // any order, any thread
//   MOE_RETURN_IF_ERROR(w.Close());                       // fails if a tensor was not written
//
// Layout as the reference implementation writes it: the JSON header (`__metadata__` first, then
// the tensors in the order they were added, data laid out in that order without gaps) is padded
// with spaces so that 8 + header length is a multiple of 8. The output is a pure function of the
// declared tensors, metadata and data: the same inputs give byte-identical files.
#ifndef MOE_MODEL_SAFETENSORS_WRITER_H_
#define MOE_MODEL_SAFETENSORS_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "model/dtype.h"

namespace moe::model {

// Thread-safety: Add/SetMetadata/Open/Close from one thread; Write may be called concurrently
// from several threads (for different tensors) between Open and Close.
class SafetensorsWriter {
 public:
  SafetensorsWriter() = default;
  ~SafetensorsWriter();  // closes the file if still open (without the completeness check)
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Declares a tensor. INVALID_ARGUMENT on a duplicate or empty name, a negative dimension,
  // the reserved name "__metadata__", or after Open.
  absl::Status Add(std::string name, DType dtype, std::vector<int64_t> shape);
  void SetMetadata(std::string key, std::string value);

  // Creates (truncates) `path`, writes the header and sizes the file.
  absl::Status Open(const std::string& path);
  // Writes the whole data of tensor `name`; nbytes must be numel * dtype size.
  absl::Status Write(std::string_view name, const void* data, size_t nbytes);
  // Checks every tensor was written once, then closes the file.
  absl::Status Close();

  // The header bytes (without the 8-byte length) for the tensors declared so far.
  std::string HeaderJson() const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0;
    uint64_t end = 0;
    bool written = false;
  };

  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  uint64_t data_bytes_ = 0;
  uint64_t data_start_ = 0;  // 8 + padded header length
  int fd_ = -1;
  std::string path_;
  std::mutex mu_;  // guards Entry::written
};

// A tensor held in memory, for WriteSafetensors.
struct TensorData {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // numel * DTypeSize(dtype) bytes, little-endian
};

// Writes `tensors` (in this order) and `metadata` to `path` in one go.
absl::Status WriteSafetensors(const std::string& path, absl::Span<const TensorData> tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Builds TensorData from floats: F32 is copied, BF16/F16 rounded to nearest even. `dtype` must
// be a float dtype (MOE_CHECK).
TensorData MakeTensorData(std::string name, DType dtype, std::vector<int64_t> shape,
                          absl::Span<const float> values);

}  // namespace moe::model

#endif  // MOE_MODEL_SAFETENSORS_WRITER_H_
