#include "model/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace moe::model {
namespace {

// Debian's Abseil is built with its own string_view type.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

uint64_t NumBytes(DType dtype, const std::vector<int64_t>& shape) {
  uint64_t n = DTypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

absl::Status WriteAll(int fd, const void* data, size_t n, uint64_t offset,
                      const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("write ", path, ": ", std::strerror(errno)));
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return absl::OkStatus();
}

}  // namespace

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status SafetensorsWriter::Add(std::string name, DType dtype, std::vector<int64_t> shape) {
  if (fd_ >= 0) return absl::FailedPreconditionError("SafetensorsWriter::Add after Open");
  if (name.empty() || name == "__metadata__") {
    return absl::InvalidArgumentError(absl::StrCat("invalid tensor name \"", name, "\""));
  }
  if (index_.count(name) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("duplicate tensor \"", name, "\""));
  }
  for (int64_t d : shape) {
    if (d < 0)
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\": negative dim"));
  }
  Entry e;
  e.name = std::move(name);
  e.dtype = dtype;
  e.shape = std::move(shape);
  e.begin = data_bytes_;
  e.end = data_bytes_ + NumBytes(dtype, e.shape);
  data_bytes_ = e.end;
  index_.emplace(e.name, entries_.size());
  entries_.push_back(std::move(e));
  return absl::OkStatus();
}

void SafetensorsWriter::SetMetadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

std::string SafetensorsWriter::HeaderJson() const {
  // ordered_json keeps insertion order: __metadata__ first, then tensors in data order.
  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    root["__metadata__"] = std::move(meta);
  }
  for (const Entry& e : entries_) {
    nlohmann::ordered_json t = nlohmann::ordered_json::object();
    t["dtype"] = std::string(DTypeName(e.dtype));
    t["shape"] = e.shape;
    t["data_offsets"] = {e.begin, e.end};
    root[e.name] = std::move(t);
  }
  std::string header = root.dump();
  // Pad with spaces so the data section starts at a multiple of 8 (8-byte length prefix + header).
  header.append((8 - header.size() % 8) % 8, ' ');
  return header;
}

absl::Status SafetensorsWriter::Open(const std::string& path) {
  if (fd_ >= 0) return absl::FailedPreconditionError("SafetensorsWriter already open");
  std::string header = HeaderJson();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  fd_ = fd;
  path_ = path;
  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  MOE_RETURN_IF_ERROR(WriteAll(fd_, len, 8, 0, path_));
  MOE_RETURN_IF_ERROR(WriteAll(fd_, header.data(), header.size(), 8, path_));
  data_start_ = 8 + header.size();
  if (::ftruncate(fd_, static_cast<off_t>(data_start_ + data_bytes_)) != 0) {
    return absl::InternalError(absl::StrCat("cannot size ", path_, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Write(std::string_view name, const void* data, size_t nbytes) {
  if (fd_ < 0) return absl::FailedPreconditionError("SafetensorsWriter::Write before Open");
  auto it = index_.find(std::string(name));
  if (it == index_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", Sv(name), "\" was not declared"));
  }
  Entry& e = entries_[it->second];
  if (nbytes != e.end - e.begin) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", Sv(name), "\": ", nbytes,
                                                   " bytes given, ", e.end - e.begin, " expected"));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (e.written) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", Sv(name), "\" written twice"));
    }
    e.written = true;
  }
  return WriteAll(fd_, data, nbytes, data_start_ + e.begin, path_);
}

absl::Status SafetensorsWriter::Close() {
  if (fd_ < 0) return absl::FailedPreconditionError("SafetensorsWriter::Close before Open");
  int fd = fd_;
  fd_ = -1;
  for (const Entry& e : entries_) {
    if (!e.written) {
      ::close(fd);
      return absl::FailedPreconditionError(
          absl::StrCat(path_, ": tensor \"", e.name, "\" was never written"));
    }
  }
  if (::close(fd) != 0) {
    return absl::InternalError(absl::StrCat("close ", path_, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status WriteSafetensors(const std::string& path, absl::Span<const TensorData> tensors,
                              const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter w;
  for (const auto& [k, v] : metadata) w.SetMetadata(k, v);
  for (const TensorData& t : tensors) MOE_RETURN_IF_ERROR(w.Add(t.name, t.dtype, t.shape));
  MOE_RETURN_IF_ERROR(w.Open(path));
  for (const TensorData& t : tensors) {
    MOE_RETURN_IF_ERROR(w.Write(t.name, t.bytes.data(), t.bytes.size()));
  }
  return w.Close();
}

TensorData MakeTensorData(std::string name, DType dtype, std::vector<int64_t> shape,
                          absl::Span<const float> values) {
  TensorData t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.resize(values.size() * DTypeSize(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::kF32:
        std::memcpy(&t.bytes[4 * i], &values[i], 4);
        break;
      case DType::kBF16: {
        uint16_t h = F32ToBf16(values[i]);
        std::memcpy(&t.bytes[2 * i], &h, 2);
        break;
      }
      case DType::kF16: {
        uint16_t h = F32ToF16(values[i]);
        std::memcpy(&t.bytes[2 * i], &h, 2);
        break;
      }
      default:
        MOE_CHECK(false && "MakeTensorData: float values need a float dtype");
    }
  }
  return t;
}

}  // namespace moe::model
