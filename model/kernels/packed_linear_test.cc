#include "model/kernels/packed_linear.h"

#include <cmath>
#include <cstdint>
#include <iterator>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "model/kernels/cpu_features.h"

namespace moe::kernels {
namespace {

// A random weight matrix in its source dtype, plus the values the packed matrix holds.
struct Weights {
  DType dtype;
  int64_t out, in;
  std::vector<float> f32;      // source when F32
  std::vector<uint16_t> u16;   // source when BF16 / F16
  std::vector<double> source;  // exact source values
  const void* data() const {
    return dtype == DType::kF32 ? static_cast<const void*>(f32.data()) : u16.data();
  }
};

Weights MakeWeights(DType dtype, int64_t out, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  Weights w{dtype, out, in, {}, {}, {}};
  const int64_t count = out * in;
  w.source.resize(count);
  if (dtype == DType::kF32) w.f32.resize(count);
  else w.u16.resize(count);
  for (int64_t i = 0; i < count; ++i) {
    const float v = dist(rng);
    if (dtype == DType::kF32) {
      w.f32[i] = v;
      w.source[i] = v;
    } else if (dtype == DType::kBF16) {
      w.u16[i] = F32ToBf16(v);
      w.source[i] = Bf16ToF32(w.u16[i]);
    } else {
      w.u16[i] = F32ToF16(v);
      w.source[i] = F16ToF32(w.u16[i]);
    }
  }
  return w;
}

std::vector<float> RandomVector(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

double RoundBf16(double v) { return Bf16ToF32(F32ToBf16(static_cast<float>(v))); }

// Double-precision reference of y = x W^T over the values the kernel multiplies: BF16-packed
// weights and BF16-rounded activations when `bf16`, exact F32 otherwise. Also returns
// sum_k |x_k w_k| per element (the scale of the rounding error).
// With `split`, activations are hi + lo BF16 pairs (PackedLinearOptions::
// split_activation_max_rows).
void Reference(const Weights& w, const std::vector<float>& x, int64_t m, bool bf16,
               std::vector<double>* y, std::vector<double>* magnitude, bool split = false) {
  y->assign(m * w.out, 0.0);
  magnitude->assign(m * w.out, 0.0);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t o = 0; o < w.out; ++o) {
      double sum = 0, mag = 0;
      for (int64_t c = 0; c < w.in; ++c) {
        double a = x[r * w.in + c];
        double b = w.source[o * w.in + c];
        if (bf16) {
          double hi = RoundBf16(a);
          a = split ? hi + RoundBf16(static_cast<float>(a) - static_cast<float>(hi)) : hi;
          b = RoundBf16(b);
        }
        sum += a * b;
        mag += std::fabs(a * b);
      }
      (*y)[r * w.out + o] = sum;
      (*magnitude)[r * w.out + o] = mag;
    }
  }
}

struct Case {
  DType dtype;
  F16Packing f16;
  LinearImpl impl;
};

std::string CaseName(const Case& c) {
  std::string name = std::string(DTypeName(c.dtype));
  if (c.dtype == DType::kF16) name += c.f16 == F16Packing::kF32 ? "_asF32" : "_asBF16";
  return name + "_" + LinearImplName(c.impl);
}

void PrintTo(const Case& c, std::ostream* os) { *os << CaseName(c); }

class PackedLinearTest : public ::testing::TestWithParam<Case> {};

TEST_P(PackedLinearTest, MatchesDoubleReferenceForOddSizes) {
  const Case c = GetParam();
  if (c.impl == LinearImpl::kAvx512Bf16 && !HasAvx512Bf16()) GTEST_SKIP() << "no avx512_bf16";
  const int64_t shapes[][2] = {{37, 53}, {130, 97}, {64, 32}, {5, 1}, {200, 300}};
  uint32_t seed = 1;
  for (const auto& shape : shapes) {
    const Weights w = MakeWeights(c.dtype, shape[0], shape[1], seed++);
    PackedLinearOptions options;
    options.impl = c.impl;
    options.f16_packing = c.f16;
    absl::StatusOr<PackedLinear> lin = PackedLinear::Create(w.dtype, w.data(), w.out, w.in, options);
    if (c.impl == LinearImpl::kAvx512Bf16 && c.dtype != DType::kBF16 &&
        !(c.dtype == DType::kF16 && c.f16 == F16Packing::kBF16)) {
      EXPECT_EQ(lin.status().code(), absl::StatusCode::kFailedPrecondition);
      return;
    }
    ASSERT_TRUE(lin.ok()) << lin.status();
    const bool bf16 = lin->packed_dtype() == DType::kBF16;
    EXPECT_EQ(lin->out_features(), w.out);
    EXPECT_EQ(lin->in_features(), w.in);
    for (int64_t m : {1, 2, 7, 64, 300}) {
      SCOPED_TRACE(testing::Message() << "out=" << w.out << " in=" << w.in << " m=" << m);
      const std::vector<float> x = RandomVector(m * w.in, seed++);
      std::vector<float> y(m * w.out, 12345.0f);
      lin->Forward(x.data(), m, y.data());
      std::vector<double> ref, mag;
      const bool split = lin->ImplFor(m) == LinearImpl::kAvx512Bf16 &&
                         m <= options.split_activation_max_rows;
      Reference(w, x, m, bf16, &ref, &mag, split);
      // F32 math: error <= a few ulps of the magnitude; BF16 products are exact in F32, so
      // only the F32 accumulation order differs there too.
      const double tol = 1e-5;
      int bad = 0;
      for (int64_t i = 0; i < m * w.out && bad < 5; ++i) {
        if (std::fabs(y[i] - ref[i]) > tol * mag[i] + 1e-6) {
          ADD_FAILURE() << "i=" << i << " got " << y[i] << " want " << ref[i];
          ++bad;
        }
      }
    }
  }
}

// Splitting BF16 activations into hi + lo pairs brings small-M products much closer to exact
// F32 activations than plain bf16 rounding.
TEST(PackedLinearSplit, SplitActivationsAreMoreAccurate) {
  if (!HasAvx512Bf16()) GTEST_SKIP() << "no avx512_bf16";
  const Weights w = MakeWeights(DType::kBF16, 128, 256, 5);
  PackedLinearOptions split_opts, plain_opts;
  split_opts.impl = plain_opts.impl = LinearImpl::kAvx512Bf16;
  split_opts.split_activation_max_rows = 16;
  plain_opts.split_activation_max_rows = 0;
  auto split = PackedLinear::Create(w.dtype, w.data(), w.out, w.in, split_opts);
  auto plain = PackedLinear::Create(w.dtype, w.data(), w.out, w.in, plain_opts);
  ASSERT_TRUE(split.ok() && plain.ok());
  const int64_t m = 4;
  const std::vector<float> x = RandomVector(m * w.in, 11);
  // Exact-activation reference: BF16 weights, F32 activations, double sums.
  std::vector<double> exact(m * w.out, 0.0);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t o = 0; o < w.out; ++o) {
      for (int64_t c = 0; c < w.in; ++c) {
        exact[r * w.out + o] += double{x[r * w.in + c]} * RoundBf16(w.source[o * w.in + c]);
      }
    }
  }
  std::vector<float> ys(m * w.out), yp(m * w.out);
  split->Forward(x.data(), m, ys.data());
  plain->Forward(x.data(), m, yp.data());
  double err_split = 0, err_plain = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    err_split = std::max(err_split, std::fabs(ys[i] - exact[i]));
    err_plain = std::max(err_plain, std::fabs(yp[i] - exact[i]));
  }
  EXPECT_GT(err_plain, 1e-3);
  EXPECT_LT(err_split, err_plain / 50);
}

TEST_P(PackedLinearTest, BiasAndAccumulate) {
  const Case c = GetParam();
  if (c.impl == LinearImpl::kAvx512Bf16 &&
      (!HasAvx512Bf16() || c.dtype == DType::kF32 ||
       (c.dtype == DType::kF16 && c.f16 == F16Packing::kF32))) {
    GTEST_SKIP();
  }
  const Weights w = MakeWeights(c.dtype, 70, 45, 99);
  PackedLinearOptions options{c.impl, c.f16};
  absl::StatusOr<PackedLinear> lin = PackedLinear::Create(w.dtype, w.data(), w.out, w.in, options);
  ASSERT_TRUE(lin.ok()) << lin.status();
  const bool bf16 = lin->packed_dtype() == DType::kBF16;
  const std::vector<float> bias = RandomVector(w.out, 7);
  for (int64_t m : {1, 3, 9}) {
    const std::vector<float> x = RandomVector(m * w.in, 8);
    const std::vector<float> y0 = RandomVector(m * w.out, 9);
    std::vector<double> ref, mag;
    const bool split =
        lin->ImplFor(m) == LinearImpl::kAvx512Bf16 && m <= options.split_activation_max_rows;
    Reference(w, x, m, bf16, &ref, &mag, split);

    std::vector<float> y = y0;
    lin->Forward(x.data(), m, y.data(), {.bias = bias.data(), .accumulate = true});
    for (int64_t i = 0; i < m * w.out; ++i) {
      EXPECT_NEAR(y[i], ref[i] + bias[i % w.out] + y0[i], 1e-5 * mag[i] + 1e-5) << i;
    }
    y = y0;
    lin->Forward(x.data(), m, y.data(), {.bias = bias.data(), .accumulate = false});
    for (int64_t i = 0; i < m * w.out; ++i) {
      EXPECT_NEAR(y[i], ref[i] + bias[i % w.out], 1e-5 * mag[i] + 1e-5) << i;
    }
    y = y0;
    lin->Forward(x.data(), m, y.data(), {.bias = nullptr, .accumulate = true});
    for (int64_t i = 0; i < m * w.out; ++i) {
      EXPECT_NEAR(y[i], ref[i] + y0[i], 1e-5 * mag[i] + 1e-5) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, PackedLinearTest,
    ::testing::Values(Case{DType::kF32, F16Packing::kF32, LinearImpl::kAuto},
                      Case{DType::kF32, F16Packing::kF32, LinearImpl::kOneDnn},
                      Case{DType::kF32, F16Packing::kF32, LinearImpl::kReference},
                      Case{DType::kF32, F16Packing::kF32, LinearImpl::kAvx512Bf16},
                      Case{DType::kBF16, F16Packing::kF32, LinearImpl::kAuto},
                      Case{DType::kBF16, F16Packing::kF32, LinearImpl::kOneDnn},
                      Case{DType::kBF16, F16Packing::kF32, LinearImpl::kAvx512Bf16},
                      Case{DType::kBF16, F16Packing::kF32, LinearImpl::kReference},
                      Case{DType::kF16, F16Packing::kF32, LinearImpl::kAuto},
                      Case{DType::kF16, F16Packing::kF32, LinearImpl::kReference},
                      Case{DType::kF16, F16Packing::kBF16, LinearImpl::kAuto},
                      Case{DType::kF16, F16Packing::kBF16, LinearImpl::kAvx512Bf16},
                      Case{DType::kF16, F16Packing::kBF16, LinearImpl::kOneDnn}),
    [](const ::testing::TestParamInfo<Case>& info) { return CaseName(info.param); });

TEST(PackedLinear, F32WeightsKeepF32Precision) {
  // Large dot products where BF16 rounding would be visible: F32 weights must not go through it.
  const Weights w = MakeWeights(DType::kF32, 33, 1027, 5);
  absl::StatusOr<PackedLinear> lin = PackedLinear::Create(w.dtype, w.data(), w.out, w.in);
  ASSERT_TRUE(lin.ok()) << lin.status();
  EXPECT_EQ(lin->packed_dtype(), DType::kF32);
  const std::vector<float> x = RandomVector(w.in, 6);
  std::vector<float> y(w.out);
  lin->Forward(x.data(), 1, y.data());
  std::vector<double> ref, mag;
  Reference(w, x, 1, false, &ref, &mag);
  for (int64_t i = 0; i < w.out; ++i) {
    EXPECT_LE(std::fabs(y[i] - ref[i]), 1e-5 * std::fabs(ref[i]) + 1e-6 * mag[i]) << i;
  }
}

TEST(PackedLinear, Bf16ErrorAgainstUnroundedReferenceIsSmall) {
  const Weights w = MakeWeights(DType::kBF16, 256, 512, 11);
  absl::StatusOr<PackedLinear> lin = PackedLinear::Create(w.dtype, w.data(), w.out, w.in);
  ASSERT_TRUE(lin.ok()) << lin.status();
  for (int64_t m : {1, 64}) {
    const std::vector<float> x = RandomVector(m * w.in, 12);
    std::vector<float> y(m * w.out);
    lin->Forward(x.data(), m, y.data());
    std::vector<double> ref, mag;
    Reference(w, x, m, /*bf16=*/false, &ref, &mag);  // activations not rounded
    double err = 0, norm = 0;
    for (int64_t i = 0; i < m * w.out; ++i) {
      err += (y[i] - ref[i]) * (y[i] - ref[i]);
      norm += ref[i] * ref[i];
    }
    EXPECT_LT(err / norm, 1e-4);
    EXPECT_GT(err / norm, 0.0);  // activations really were rounded to BF16
  }
}

TEST(PackedLinear, StackedEqualsSeparate) {
  const Weights gate = MakeWeights(DType::kBF16, 96, 80, 21);
  const Weights up = MakeWeights(DType::kBF16, 96, 80, 22);
  const MatrixView parts[] = {{gate.dtype, gate.data(), gate.out, gate.in},
                              {up.dtype, up.data(), up.out, up.in}};
  for (LinearImpl impl : {LinearImpl::kAuto, LinearImpl::kOneDnn, LinearImpl::kReference}) {
    absl::StatusOr<PackedLinear> stacked = PackedLinear::CreateStacked(parts, {.impl = impl});
    absl::StatusOr<PackedLinear> g = PackedLinear::Create(parts[0], {.impl = impl});
    absl::StatusOr<PackedLinear> u = PackedLinear::Create(parts[1], {.impl = impl});
    ASSERT_TRUE(stacked.ok() && g.ok() && u.ok());
    EXPECT_EQ(stacked->out_features(), 192);
    const int64_t m = 5;
    const std::vector<float> x = RandomVector(m * 80, 23);
    std::vector<float> ys(m * 192), yg(m * 96), yu(m * 96);
    stacked->Forward(x.data(), m, ys.data());
    g->Forward(x.data(), m, yg.data());
    u->Forward(x.data(), m, yu.data());
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t i = 0; i < 96; ++i) {
        EXPECT_FLOAT_EQ(ys[r * 192 + i], yg[r * 96 + i]);
        EXPECT_FLOAT_EQ(ys[r * 192 + 96 + i], yu[r * 96 + i]);
      }
    }
  }
}

TEST(PackedLinear, AutoPicksCustomKernelForSmallM) {
  const Weights w = MakeWeights(DType::kBF16, 128, 64, 31);
  absl::StatusOr<PackedLinear> lin = PackedLinear::Create(w.dtype, w.data(), w.out, w.in);
  ASSERT_TRUE(lin.ok());
  EXPECT_EQ(lin->ImplFor(512), LinearImpl::kOneDnn);
  if (HasAvx512Bf16()) {
    EXPECT_EQ(lin->ImplFor(1), LinearImpl::kAvx512Bf16);
    // One shared copy: oneDNN borrows the blocked buffer the custom kernel reads.
    EXPECT_EQ(lin->packed_bytes(), size_t{128 * 64 * 2});
  }
  const Weights f = MakeWeights(DType::kF32, 128, 64, 32);
  absl::StatusOr<PackedLinear> lf = PackedLinear::Create(f.dtype, f.data(), f.out, f.in);
  ASSERT_TRUE(lf.ok());
  EXPECT_EQ(lf->ImplFor(1), LinearImpl::kOneDnn);
}

TEST(PackedLinear, RejectsBadInput) {
  const Weights w = MakeWeights(DType::kBF16, 4, 4, 1);
  EXPECT_EQ(PackedLinear::Create(DType::kI32, w.data(), 4, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PackedLinear::Create(DType::kBF16, w.data(), 0, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PackedLinear::Create(DType::kBF16, nullptr, 4, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  const MatrixView mismatched[] = {{DType::kBF16, w.data(), 2, 4}, {DType::kBF16, w.data(), 2, 3}};
  EXPECT_EQ(PackedLinear::CreateStacked(mismatched).status().code(),
            absl::StatusCode::kInvalidArgument);
  const MatrixView mixed[] = {{DType::kBF16, w.data(), 2, 4}, {DType::kF16, w.data(), 2, 4}};
  EXPECT_EQ(PackedLinear::CreateStacked(mixed).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PackedLinear::CreateStacked({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PackedLinear, DoesNotKeepPointersIntoSource) {
  Weights w = MakeWeights(DType::kBF16, 40, 24, 41);
  for (LinearImpl impl : {LinearImpl::kAuto, LinearImpl::kOneDnn, LinearImpl::kReference}) {
    Weights copy = w;
    absl::StatusOr<PackedLinear> lin =
        PackedLinear::Create(copy.dtype, copy.data(), copy.out, copy.in, {.impl = impl});
    ASSERT_TRUE(lin.ok());
    const std::vector<float> x = RandomVector(2 * 24, 42);
    std::vector<float> before(2 * 40), after(2 * 40);
    lin->Forward(x.data(), 2, before.data());
    std::fill(copy.u16.begin(), copy.u16.end(), uint16_t{0x7fc0});  // NaN everywhere
    copy.u16.clear();
    copy.u16.shrink_to_fit();
    lin->Forward(x.data(), 2, after.data());
    EXPECT_EQ(before, after);
  }
}

TEST(PackedLinear, ConcurrentForwardCallsAgree) {
  const Weights w = MakeWeights(DType::kBF16, 300, 200, 51);
  absl::StatusOr<PackedLinear> lin = PackedLinear::Create(w.dtype, w.data(), w.out, w.in);
  ASSERT_TRUE(lin.ok());
  const std::vector<int64_t> ms = {1, 3, 17, 64};
  std::vector<std::vector<float>> expected;
  std::vector<std::vector<float>> inputs;
  for (int64_t m : ms) {
    inputs.push_back(RandomVector(m * 200, static_cast<uint32_t>(m)));
    expected.emplace_back(m * 300);
    lin->Forward(inputs.back().data(), m, expected.back().data());
  }
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int iter = 0; iter < 20; ++iter) {
        const size_t i = (t + iter) % ms.size();
        std::vector<float> y(ms[i] * 300);
        lin->Forward(inputs[i].data(), ms[i], y.data());
        if (y != expected[i]) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(PackedLinear, PartsTogetherEqualForwardBitForBit) {
  // 300 outputs = 5 blocks of 64 (the last one partial); bias and accumulate per part.
  const Weights w = MakeWeights(DType::kBF16, 300, 200, 61);
  const std::vector<float> bias = RandomVector(300, 62);
  for (const PackedLinearOptions options :
       {PackedLinearOptions{.impl = LinearImpl::kAuto},
        PackedLinearOptions{.impl = LinearImpl::kReference},
        PackedLinearOptions{.impl = LinearImpl::kOneDnn},
        PackedLinearOptions{.impl = LinearImpl::kAuto, .coded_bf16 = true}}) {
    const LinearImpl impl = options.impl;
    absl::StatusOr<PackedLinear> lin =
        PackedLinear::Create(w.dtype, w.data(), w.out, w.in, options);
    ASSERT_TRUE(lin.ok()) << lin.status();
    for (int64_t m : {1, 2, 3, 17, 80}) {
      const bool per_block =
          lin->ImplFor(m) == LinearImpl::kAvx512Bf16 || lin->ImplFor(m) == LinearImpl::kReference;
      EXPECT_EQ(lin->MaxParts(m), per_block ? 5 : 1) << LinearImplName(impl) << " m=" << m;
      const std::vector<float> x = RandomVector(m * 200, static_cast<uint32_t>(63 + m));
      const std::vector<float> y0 = RandomVector(m * 300, 64);
      const LinearEpilogue epilogue{.bias = bias.data(), .accumulate = true};
      std::vector<float> whole = y0;
      lin->Forward(x.data(), m, whole.data(), epilogue);
      for (int64_t parts = 1; parts <= lin->MaxParts(m); ++parts) {
        std::vector<float> pieced = y0;
        // Parts in reverse order, on separate threads: each writes only its own columns.
        std::vector<std::thread> threads;
        for (int64_t p = parts - 1; p >= 0; --p) {
          threads.emplace_back(
              [&, p] { lin->ForwardPart(x.data(), m, pieced.data(), p, parts, epilogue); });
        }
        for (auto& t : threads) t.join();
        EXPECT_EQ(pieced, whole) << LinearImplName(impl) << " m=" << m << " parts=" << parts;
      }
    }
  }
}

// BF16 weights whose high bytes (sign + 7 exponent MSBs) take 6 values: magnitudes in
// [0.25, 4) (exponents 125-128) with random signs, so exponent coding needs no exception.
Weights NarrowExponentWeights(int64_t out, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mag(0.25f, 4.0f);
  Weights w{DType::kBF16, out, in, {}, {}, {}};
  w.u16.resize(out * in);
  w.source.resize(out * in);
  for (int64_t i = 0; i < out * in; ++i) {
    const float v = (rng() & 1) ? mag(rng) : -mag(rng);
    w.u16[i] = F32ToBf16(v);
    w.source[i] = Bf16ToF32(w.u16[i]);
  }
  return w;
}

TEST(CodedBf16, EqualsPlainKernelBitForBitWithoutExceptions) {
  if (!HasAvx512Bf16()) GTEST_SKIP() << "no avx512_bf16";
  // 300 outputs (a partial last block) x 200 inputs (k padded to 224).
  const Weights w = NarrowExponentWeights(300, 200, 71);
  absl::StatusOr<PackedLinear> plain =
      PackedLinear::Create(w.dtype, w.data(), w.out, w.in, {.impl = LinearImpl::kAvx512Bf16});
  absl::StatusOr<PackedLinear> coded = PackedLinear::Create(
      w.dtype, w.data(), w.out, w.in, {.impl = LinearImpl::kAuto, .coded_bf16 = true});
  ASSERT_TRUE(plain.ok() && coded.ok());
  EXPECT_FALSE(plain->coded());
  ASSERT_TRUE(coded->coded());
  EXPECT_EQ(coded->coded_exceptions(), 0);
  // 12 bits per weight (plus the per-block exception offsets) against 16.
  EXPECT_LT(coded->packed_bytes(), plain->packed_bytes() * 3 / 4 + 64);
  const std::vector<float> bias = RandomVector(300, 72);
  // Rows 1-3 (2-6 split rows) decode in registers; the others decode whole blocks.
  for (int64_t m : {1, 2, 3, 4, 7, 17, 80}) {
    EXPECT_EQ(coded->ImplFor(m), LinearImpl::kAvx512Bf16) << m;
    const std::vector<float> x = RandomVector(m * 200, static_cast<uint32_t>(73 + m));
    const std::vector<float> y0 = RandomVector(m * 300, 74);
    const LinearEpilogue epilogue{.bias = bias.data(), .accumulate = true};
    std::vector<float> want = y0, got = y0;
    plain->Forward(x.data(), m, want.data(), epilogue);
    coded->Forward(x.data(), m, got.data(), epilogue);
    EXPECT_EQ(got, want) << "m=" << m;
  }
}

TEST(CodedBf16, ExceptionsAreAddedBack) {
  if (!HasAvx512Bf16()) GTEST_SKIP() << "no avx512_bf16";
  Weights w = MakeWeights(DType::kBF16, 130, 97, 81);
  // Outliers far above and below the common binades: each must come back exactly.
  const int64_t picks[] = {0, 5, 96, 97 * 3 + 1, 97 * 64, 97 * 129 + 96, 4000, 7777};
  for (size_t i = 0; i < std::size(picks); ++i) {
    const float v = (i % 2 == 0 ? 1.0f : -1.0f) * (i < 4 ? 3000.0f : 3e-20f);
    w.u16[picks[i]] = F32ToBf16(v);
    w.source[picks[i]] = Bf16ToF32(w.u16[picks[i]]);
  }
  absl::StatusOr<PackedLinear> lin =
      PackedLinear::Create(w.dtype, w.data(), w.out, w.in, {.coded_bf16 = true});
  ASSERT_TRUE(lin.ok()) << lin.status();
  ASSERT_TRUE(lin->coded());
  EXPECT_GE(lin->coded_exceptions(), static_cast<int64_t>(std::size(picks)));
  for (int64_t m : {1, 3, 9, 70}) {
    const std::vector<float> x = RandomVector(m * w.in, static_cast<uint32_t>(82 + m));
    std::vector<float> y(m * w.out, 12345.0f);
    lin->Forward(x.data(), m, y.data());
    std::vector<double> ref, mag;
    Reference(w, x, m, /*bf16=*/true, &ref, &mag, /*split=*/m <= 16);
    int bad = 0;
    for (int64_t i = 0; i < m * w.out && bad < 5; ++i) {
      if (std::fabs(y[i] - ref[i]) > 1e-5 * mag[i] + 1e-6) {
        ADD_FAILURE() << "m=" << m << " i=" << i << " got " << y[i] << " want " << ref[i];
        ++bad;
      }
    }
  }
}

TEST(CodedBf16, OnlyTheHandWrittenKernelCodes) {
  if (!HasAvx512Bf16()) GTEST_SKIP() << "no avx512_bf16";
  const Weights w = NarrowExponentWeights(70, 40, 95);
  for (LinearImpl impl : {LinearImpl::kOneDnn, LinearImpl::kReference}) {
    absl::StatusOr<PackedLinear> lin =
        PackedLinear::Create(w.dtype, w.data(), w.out, w.in, {.impl = impl, .coded_bf16 = true});
    ASSERT_TRUE(lin.ok()) << lin.status();
    EXPECT_FALSE(lin->coded()) << LinearImplName(impl);
    EXPECT_EQ(lin->ImplFor(2), impl);
    const std::vector<float> x = RandomVector(2 * 40, 96);
    std::vector<float> y(2 * 70);
    lin->Forward(x.data(), 2, y.data());
    std::vector<double> ref, mag;
    Reference(w, x, 2, /*bf16=*/true, &ref, &mag);
    for (int i = 0; i < 2 * 70; ++i) EXPECT_NEAR(y[i], ref[i], 1e-5 * mag[i] + 1e-6) << i;
  }
}

TEST(CodedBf16, SpreadExponentsStayPlain) {
  if (!HasAvx512Bf16()) GTEST_SKIP() << "no avx512_bf16";
  // Magnitudes over 2^-40 .. 2^40: far more than 16 high bytes are common.
  std::mt19937 rng(91);
  Weights w{DType::kBF16, 64, 64, {}, {}, {}};
  for (int i = 0; i < 64 * 64; ++i) {
    const float v = std::ldexp(1.0f + (rng() % 128) / 128.0f, static_cast<int>(rng() % 81) - 40);
    w.u16.push_back(F32ToBf16((rng() & 1) ? v : -v));
    w.source.push_back(Bf16ToF32(w.u16.back()));
  }
  absl::StatusOr<PackedLinear> lin =
      PackedLinear::Create(w.dtype, w.data(), w.out, w.in, {.coded_bf16 = true});
  ASSERT_TRUE(lin.ok()) << lin.status();
  EXPECT_FALSE(lin->coded());
  EXPECT_EQ(lin->coded_exceptions(), 0);
  const std::vector<float> x = RandomVector(2 * 64, 92);
  std::vector<float> y(2 * 64);
  lin->Forward(x.data(), 2, y.data());
  std::vector<double> ref, mag;
  Reference(w, x, 2, /*bf16=*/true, &ref, &mag, /*split=*/true);
  for (int i = 0; i < 2 * 64; ++i) EXPECT_NEAR(y[i], ref[i], 1e-5 * mag[i] + 1e-6) << i;
}

}  // namespace
}  // namespace moe::kernels
