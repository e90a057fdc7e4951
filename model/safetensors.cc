#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace moe::model {
namespace {

using json = nlohmann::json;

// Debian's Abseil is built with its own string_view type.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MB, as the reference implementation

absl::Status Invalid(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(path), ": ", Sv(what)));
}
absl::Status InvalidTensor(std::string_view path, std::string_view tensor, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(Sv(path), ": tensor \"", Sv(tensor), "\": ", Sv(what)));
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// A non-negative integer that fits in int64 (JSON numbers like 3.0 are rejected, as in the
// reference implementation which reads them as usize).
bool ReadNonNegative(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return *out <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    *out = static_cast<uint64_t>(i);
    return true;
  }
  return false;
}

struct Parsed {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

// Validates one tensor entry of the header.
absl::Status ParseEntry(std::string_view path, const std::string& name, const json& v,
                        uint64_t data_size, Parsed* out) {
  if (!v.is_object()) return InvalidTensor(path, name, "entry must be an object");
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) return InvalidTensor(path, name, "missing string `dtype`");
  absl::StatusOr<DType> dtype = ParseDTypeName(dt->get<std::string>());
  if (!dtype.ok()) return InvalidTensor(path, name, std::string(dtype.status().message()));
  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) return InvalidTensor(path, name, "missing list `shape`");
  if (sh->size() > 64) return InvalidTensor(path, name, "shape has more than 64 dimensions");
  std::vector<int64_t> shape;
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : *sh) {
    uint64_t x = 0;
    if (!ReadNonNegative(d, &x)) {
      return InvalidTensor(
          path, name, absl::StrCat("shape entries must be non-negative integers, got ", d.dump()));
    }
    shape.push_back(static_cast<int64_t>(x));
    // The product of the non-zero dimensions must fit in int64 (so that TensorView::numel()
    // never overflows, even before it meets a zero dimension).
    if (x != 0) {
      if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / x) overflow = true;
      numel *= x;
    }
  }
  const uint64_t esize = DTypeSize(*dtype);
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) numel = 0;
  if (overflow || numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / esize) {
    return InvalidTensor(path, name, absl::StrCat("shape ", ShapeString(shape), " overflows"));
  }
  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2) {
    return InvalidTensor(path, name, "`data_offsets` must be [begin, end]");
  }
  uint64_t begin = 0, end = 0;
  if (!ReadNonNegative((*off)[0], &begin) || !ReadNonNegative((*off)[1], &end)) {
    return InvalidTensor(path, name, "`data_offsets` must be non-negative integers");
  }
  if (end < begin) {
    return InvalidTensor(path, name, absl::StrCat("data_offsets end ", end, " < begin ", begin));
  }
  if (end > data_size) {
    return InvalidTensor(path, name,
                         absl::StrCat("data_offsets [", begin, ", ", end,
                                      "] run past the data section (", data_size, " bytes)"));
  }
  if (end - begin != numel * esize) {
    return InvalidTensor(path, name,
                         absl::StrCat("holds ", end - begin, " bytes but ", Sv(DTypeName(*dtype)),
                                      ShapeString(shape), " needs ", numel * esize));
  }
  *out = Parsed{name, *dtype, std::move(shape), begin, end};
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::DebugString() const {
  return absl::StrCat(Sv(DTypeName(dtype)), ShapeString(shape));
}

absl::StatusOr<DType> ParseDTypeName(std::string_view name) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kI32, DType::kI64, DType::kU8}) {
    if (name == DTypeName(t)) return t;
  }
  std::string shown(name.substr(0, 32));
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported dtype \"", shown, "\" (supported: F32, F16, BF16, I32, I64, U8)"));
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Invalid(path, "not a regular file");
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ < 8) {
    ::close(fd);
    return Invalid(path, absl::StrCat("file of ", file->size_, " bytes is too short for a header"));
  }
  void* map = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mmap ", path, ": ", std::strerror(errno)));
  }
  file->map_ = map;
  const uint8_t* base = static_cast<const uint8_t*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];
  if (header_len > kMaxHeaderBytes) {
    return Invalid(path, absl::StrCat("header length ", header_len, " exceeds 100 MB"));
  }
  if (header_len > file->size_ - 8) {
    return Invalid(path, absl::StrCat("header length ", header_len, " runs past the end of the ",
                                      file->size_, "-byte file"));
  }
  const char* header = reinterpret_cast<const char*>(base + 8);
  const uint64_t data_size = file->size_ - 8 - header_len;
  const uint8_t* data = base + 8 + header_len;

  json root = json::parse(header, header + header_len, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Invalid(path, "header is not valid JSON");
  if (!root.is_object()) return Invalid(path, "header is not a JSON object");

  std::vector<Parsed> parsed;
  try {
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (it.key() == "__metadata__") {
        if (it->is_null()) continue;
        if (!it->is_object()) return Invalid(path, "`__metadata__` must be an object");
        for (auto m = it->begin(); m != it->end(); ++m) {
          if (!m->is_string()) {
            return Invalid(
                path, absl::StrCat("`__metadata__` value of \"", m.key(), "\" must be a string"));
          }
          file->metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      Parsed p;
      MOE_RETURN_IF_ERROR(ParseEntry(path, it.key(), *it, data_size, &p));
      parsed.push_back(std::move(p));
    }
  } catch (const std::exception& e) {
    return Invalid(path, absl::StrCat("header: ", e.what()));
  }

  // Tensors must not overlap (empty tensors occupy nothing).
  std::sort(parsed.begin(), parsed.end(), [](const Parsed& a, const Parsed& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.name < b.name;
  });
  uint64_t covered = 0;
  std::string previous;
  for (const Parsed& p : parsed) {
    if (p.end == p.begin) continue;
    if (p.begin < covered) {
      return InvalidTensor(path, p.name, absl::StrCat("overlaps tensor \"", previous, "\""));
    }
    covered = p.end;
    previous = p.name;
  }

  for (Parsed& p : parsed) {
    TensorView v;
    v.name = p.name;
    v.dtype = p.dtype;
    v.shape = std::move(p.shape);
    v.nbytes = static_cast<size_t>(p.end - p.begin);
    v.data = v.nbytes == 0 ? nullptr : data + p.begin;
    file->names_.push_back(p.name);
    file->tensors_.emplace(p.name, std::move(v));
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, size_);
}

const TensorView* SafetensorsFile::Find(std::string_view name) const {
  auto it = tensors_.find(std::string(name));
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::unique_ptr<WeightStore>> WeightStore::Open(
    const std::string& dir, std::function<bool(std::string_view name)> filter) {
  std::unique_ptr<WeightStore> store(new WeightStore());
  store->dir_ = dir;
  auto accept = [&filter](std::string_view n) { return !filter || filter(n); };

  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string single_path = dir + "/model.safetensors";
  if (FileExists(index_path)) {
    MOE_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(index_path));
    json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (root.is_discarded() || !root.is_object()) {
      return Invalid(index_path, "is not a JSON object");
    }
    auto wm = root.find("weight_map");
    if (wm == root.end() || !wm->is_object()) {
      return Invalid(index_path, "`weight_map` must be an object");
    }
    // shard file -> accepted tensor names, shards in order of first appearance (sorted keys).
    std::vector<std::string> shard_order;
    std::map<std::string, std::vector<std::string>> wanted;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string()) {
        return Invalid(index_path,
                       absl::StrCat("`weight_map` entry \"", it.key(), "\" must name a file"));
      }
      std::string shard = it->get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
        return Invalid(index_path,
                       absl::StrCat("`weight_map` entry \"", it.key(),
                                    "\" names a file outside the folder: \"", shard, "\""));
      }
      if (!accept(it.key())) continue;
      auto [w, inserted] = wanted.try_emplace(shard);
      if (inserted) shard_order.push_back(shard);
      w->second.push_back(it.key());
    }
    std::sort(shard_order.begin(), shard_order.end());
    for (const std::string& shard : shard_order) {
      MOE_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                           SafetensorsFile::Open(dir + "/" + shard));
      for (const std::string& name : wanted[shard]) {
        const TensorView* t = file->Find(name);
        if (t == nullptr) {
          return Invalid(index_path, absl::StrCat("maps tensor \"", name, "\" to ", shard,
                                                  ", which does not hold it"));
        }
        store->tensors_.emplace(name, t);
      }
      store->files_.push_back(std::move(file));
    }
    return store;
  }
  if (FileExists(single_path)) {
    MOE_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(single_path));
    for (const std::string& name : file->names()) {
      if (accept(name)) store->tensors_.emplace(name, file->Find(name));
    }
    store->files_.push_back(std::move(file));
    return store;
  }
  return absl::NotFoundError(
      absl::StrCat(dir, " has neither model.safetensors nor ", "model.safetensors.index.json"));
}

absl::StatusOr<TensorView> WeightStore::Get(std::string_view name) const {
  auto it = tensors_.find(std::string(name));
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat("tensor \"", Sv(name), "\" not found in ", dir_));
  }
  return *it->second;
}

bool WeightStore::Has(std::string_view name) const {
  return tensors_.find(std::string(name)) != tensors_.end();
}

std::vector<std::string> WeightStore::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, t] : tensors_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

size_t WeightStore::TotalBytes() const {
  size_t total = 0;
  for (const auto& [name, t] : tensors_) total += t->nbytes;
  return total;
}

std::vector<std::string> WeightStore::OpenedFiles() const {
  std::vector<std::string> paths;
  for (const auto& f : files_) paths.push_back(f->path());
  return paths;
}

absl::Status CheckShape(const TensorView& t, absl::Span<const int64_t> expected_shape) {
  if (absl::Span<const int64_t>(t.shape) != expected_shape) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", t.name, "\" has shape ",
                                                   ShapeString(t.shape), ", expected ",
                                                   ShapeString(expected_shape)));
  }
  return absl::OkStatus();
}

absl::Status CopyToF32(const TensorView& t, absl::Span<float> out) {
  const int64_t n = t.numel();
  if (static_cast<int64_t>(out.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", t.name, "\" has ", n,
                                                   " elements, destination holds ", out.size()));
  }
  if (t.nbytes != static_cast<size_t>(n) * DTypeSize(t.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", t.name, "\": ", t.nbytes,
                                                   " bytes do not match ", t.DebugString()));
  }
  switch (t.dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(out.data(), t.data, static_cast<size_t>(n) * 4);
      return absl::OkStatus();
    case DType::kBF16:
    case DType::kF16: {
      const bool bf16 = t.dtype == DType::kBF16;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = bf16 ? Bf16ToF32(h) : F16ToF32(h);
      }
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", t.name, "\" has integer dtype ",
                                                     Sv(DTypeName(t.dtype)), ", not a float"));
  }
}

absl::StatusOr<std::vector<float>> ToF32(const TensorView& t) {
  if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", t.name, "\" has integer dtype ",
                                                   Sv(DTypeName(t.dtype)), ", not a float"));
  }
  std::vector<float> out(static_cast<size_t>(t.numel()));
  MOE_RETURN_IF_ERROR(CopyToF32(t, absl::MakeSpan(out)));
  return out;
}

absl::StatusOr<std::vector<float>> ToF32(const TensorView& t,
                                         absl::Span<const int64_t> expected_shape) {
  MOE_RETURN_IF_ERROR(CheckShape(t, expected_shape));
  return ToF32(t);
}

}  // namespace moe::model
