// Robustness of SafetensorsFile::Open against truncated, corrupted and malicious files: every
// input must give an error or a self-consistent file, never a crash or an out-of-bounds view.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "model/safetensors.h"
#include "model/safetensors_writer.h"

namespace moe::model {
namespace {

using ::testing::HasSubstr;

class FuzzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "moe_stfuzz_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/f.safetensors";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A valid file with one tensor of every dtype.
  std::string ValidFile() {
    std::vector<TensorData> ts;
    uint8_t v = 1;
    auto add = [&](std::string name, DType dt, std::vector<int64_t> shape) {
      TensorData t;
      t.name = std::move(name);
      t.dtype = dt;
      t.shape = std::move(shape);
      size_t n = DTypeSize(dt);
      for (int64_t d : t.shape) n *= static_cast<size_t>(d);
      t.bytes.assign(n, 0);
      for (auto& b : t.bytes) b = v++;
      ts.push_back(std::move(t));
    };
    add("model.embed_tokens.weight", DType::kBF16, {8, 4});
    add("a.f32", DType::kF32, {3, 2});
    add("b.f16", DType::kF16, {5});
    add("c.i32", DType::kI32, {2, 2});
    add("d.i64", DType::kI64, {2});
    add("e.u8", DType::kU8, {7});
    add("f.empty", DType::kF32, {0, 3});
    EXPECT_TRUE(WriteSafetensors(path_, ts, {{"format", "pt"}}).ok());
    std::ifstream in(path_, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  // Writes `bytes`, opens them, and checks the result is an error or consistent. Returns
  // whether Open succeeded.
  bool OpenAndCheck(const std::string& bytes) {
    {
      std::ofstream out(path_, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> f = SafetensorsFile::Open(path_);
    if (!f.ok()) {
      EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << f.status();
      EXPECT_THAT(std::string(f.status().message()), HasSubstr(path_));
      return false;
    }
    // Consistent: each view lies inside the file's data, has the size its shape needs, and
    // views do not overlap. Reading every byte would fault if a view ran past the mapping.
    std::vector<std::pair<const uint8_t*, size_t>> spans;
    uint64_t checksum = 0;
    size_t total = 0;
    for (const std::string& name : (*f)->names()) {
      const TensorView* t = (*f)->Find(name);
      EXPECT_NE(t, nullptr);
      if (t == nullptr) continue;
      EXPECT_EQ(static_cast<size_t>(t->numel()) * DTypeSize(t->dtype), t->nbytes) << name;
      for (size_t i = 0; i < t->nbytes; ++i) checksum += t->data[i];
      if (t->nbytes > 0) spans.emplace_back(t->data, t->nbytes);
      total += t->nbytes;
    }
    EXPECT_LE(total, bytes.size());
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i) {
      EXPECT_LE(spans[i - 1].first + spans[i - 1].second, spans[i].first);
    }
    (void)checksum;
    return true;
  }

  std::string dir_, path_;
};

TEST_F(FuzzTest, ValidFileOpens) { EXPECT_TRUE(OpenAndCheck(ValidFile())); }

TEST_F(FuzzTest, TruncatedAtEveryLength) {
  const std::string valid = ValidFile();
  int ok = 0;
  for (size_t n = 0; n < valid.size(); ++n) ok += OpenAndCheck(valid.substr(0, n)) ? 1 : 0;
  // Every truncation cuts either the header or the data the header describes.
  EXPECT_EQ(ok, 0);
  // Trailing bytes after the data section are tolerated (the reference implementation too).
  EXPECT_TRUE(OpenAndCheck(valid + std::string(16, '\0')));
}

TEST_F(FuzzTest, RandomHeaderByteFlips) {
  const std::string valid = ValidFile();
  uint64_t header_len = 0;
  std::memcpy(&header_len, valid.data(), 8);
  const size_t header_end = 8 + static_cast<size_t>(header_len);
  std::mt19937_64 rng(20240601);  // std::mt19937_64's sequence is fixed by the standard
  int opened = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string m = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t pos = static_cast<size_t>(rng() % header_end);
      switch (rng() % 3) {
        case 0:
          m[pos] = static_cast<char>(m[pos] ^ (1u << (rng() % 8)));
          break;
        case 1:
          m[pos] = static_cast<char>(rng() & 0xff);
          break;
        default:
          m[pos] = "0123456789[]{},:\"-e."[rng() % 20];
          break;  // JSON-ish bytes
      }
    }
    opened += OpenAndCheck(m) ? 1 : 0;
  }
  // Some mutations only touch padding, metadata or produce another consistent header.
  std::printf("header mutations accepted as consistent: %d of 4000\n", opened);
  EXPECT_LT(opened, 4000);
}

TEST_F(FuzzTest, RandomDataSectionBytesNeverMatter) {
  // The data section is opaque: any bytes there give a valid file.
  std::string valid = ValidFile();
  uint64_t header_len = 0;
  std::memcpy(&header_len, valid.data(), 8);
  std::mt19937_64 rng(7);
  for (size_t i = 8 + header_len; i < valid.size(); ++i) valid[i] = static_cast<char>(rng());
  EXPECT_TRUE(OpenAndCheck(valid));
}

std::string WithHeader(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);  // little-endian host
  out += header;
  out.append(data_bytes, '\x11');
  return out;
}

TEST_F(FuzzTest, MaliciousHeaders) {
  struct Case {
    const char* what;
    std::string bytes;
    const char* needle;  // expected in the error message
  };
  std::string hundred_ones = "1";
  for (int i = 1; i < 100; ++i) hundred_ones += ",1";
  std::vector<Case> cases = {
      {"offsets past end",
       WithHeader(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), "\"t\""},
      {"begin past end",
       WithHeader(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[100,100]}})", 8), "\"t\""},
      {"end < begin", WithHeader(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 8),
       "\"t\""},
      {"overlap",
       WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  16),
       "overlaps"},
      {"same range twice",
       WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
                  8),
       "overlaps"},
      {"negative shape",
       WithHeader(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 8), "\"t\""},
      {"float shape", WithHeader(R"({"t":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", 8),
       "\"t\""},
      {"string shape", WithHeader(R"({"t":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", 8),
       "\"t\""},
      {"shape product overflow",
       WithHeader(
           R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})", 8),
       "overflow"},
      {"shape overflow times dtype",
       WithHeader(R"({"t":{"dtype":"I64","shape":[2305843009213693952],"data_offsets":[0,0]}})", 8),
       "overflow"},
      {"huge dim with a zero",
       WithHeader(
           R"({"t":{"dtype":"F32","shape":[9223372036854775807,9223372036854775807,0],"data_offsets":[0,0]}})",
           8),
       "overflow"},
      {"dim above int64",
       WithHeader(R"({"t":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,0]}})",
                  8),
       "\"t\""},
      {"wrong byte length",
       WithHeader(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 16), "needs 12"},
      {"negative offset",
       WithHeader(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", 8), "\"t\""},
      {"three offsets", WithHeader(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", 8),
       "\"t\""},
      {"missing offsets", WithHeader(R"({"t":{"dtype":"U8","shape":[1]}})", 8), "\"t\""},
      {"missing dtype", WithHeader(R"({"t":{"shape":[1],"data_offsets":[0,1]}})", 8), "\"t\""},
      {"unknown dtype",
       WithHeader(R"({"t":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", 8), "F8_E4M3"},
      {"dtype not string", WithHeader(R"({"t":{"dtype":4,"shape":[1],"data_offsets":[0,1]}})", 8),
       "\"t\""},
      {"entry not object", WithHeader(R"({"t":[1,2,3]})", 8), "\"t\""},
      {"non-object JSON (array)", WithHeader(R"([1,2,3])", 8), "JSON object"},
      {"non-object JSON (string)", WithHeader(R"("hello")", 8), "JSON object"},
      {"not JSON", WithHeader("{not json", 8), "JSON"},
      {"empty header", WithHeader("", 8), "JSON"},
      {"metadata not object", WithHeader(R"({"__metadata__":[1]})", 0), "__metadata__"},
      {"metadata value not string", WithHeader(R"({"__metadata__":{"a":1}})", 0), "__metadata__"},
      {"too many dims",
       WithHeader(R"({"t":{"dtype":"U8","shape":[)" + hundred_ones + R"(],"data_offsets":[0,1]}})",
                  8),
       "64 dimensions"},
      {"deep nesting", WithHeader(std::string(100000, '[') + std::string(100000, ']'), 0),
       "JSON object"},
  };
  for (const Case& c : cases) {
    {
      std::ofstream out(path_, std::ios::binary | std::ios::trunc);
      out.write(c.bytes.data(), static_cast<std::streamsize>(c.bytes.size()));
    }
    auto f = SafetensorsFile::Open(path_);
    ASSERT_FALSE(f.ok()) << c.what;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(f.status().message()), HasSubstr(c.needle))
        << c.what << ": " << f.status();
    EXPECT_THAT(std::string(f.status().message()), HasSubstr(path_)) << c.what;
  }
}

TEST_F(FuzzTest, HugeAndShortHeaderLengths) {
  const std::string valid = ValidFile();
  for (uint64_t len : {uint64_t{100} << 20 | 1, uint64_t{1} << 40, ~uint64_t{0},
                       uint64_t{valid.size()}, uint64_t{valid.size() - 7}}) {
    std::string m = valid;
    std::memcpy(m.data(), &len, 8);
    EXPECT_FALSE(OpenAndCheck(m)) << len;
  }
  for (std::string tiny : {std::string(), std::string(3, '\0'), std::string(8, '\0')}) {
    EXPECT_FALSE(OpenAndCheck(tiny));
  }
}

TEST_F(FuzzTest, ZeroSizedTensorsMayShareOffsets) {
  std::string bytes = WithHeader(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("c":{"dtype":"BF16","shape":[2,0],"data_offsets":[4,4]}})",
                                 8);
  EXPECT_TRUE(OpenAndCheck(bytes));
}

}  // namespace
}  // namespace moe::model
