#include "model/kernels/onednn_matmul.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "model/kernels/thread_pool.h"

namespace moe::kernels::internal {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// The M used to ask oneDNN which weight layout it wants (on AVX512 machines brgemm matmul
// picks BA16a64b2a / BA16a64b whatever M is).
constexpr int64_t kProbeM = 64;
// Distinct primitives kept per matrix before the cache is flushed (oneDNN's own global
// primitive cache makes re-creation cheap).
constexpr size_t kMaxCachedPrimitives = 256;
// N-slices per thread: more balance the load when a core is busy elsewhere, fewer keep
// oneDNN's blocks large.
constexpr int64_t kSlicesPerThread = 2;
// Row slicing needs at least this many rows per slice: brgemm blocks rows by up to 32 and
// loses ~15% at 16-row slices (measured, 1 thread).
constexpr int64_t kMinRowsPerSlice = 32;

dnnl::engine& Engine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// Grows-only per-thread buffer (activations in BF16, oneDNN scratchpads).
struct ThreadBuffer {
  AlignedBuffer data;
  size_t size = 0;
  void* Get(size_t bytes) {
    if (bytes > size) {
      data = AllocateAligned(bytes);
      size = bytes;
    }
    return data.get();
  }
};

[[noreturn]] void DieOnDnnl(const dnnl::error& e, const char* what) {
  std::fprintf(stderr, "oneDNN failure in %s: %s (status %d)\n", what, e.what(),
               static_cast<int>(e.status));
  std::abort();
}

dnnl::stream& ThreadStream() {
  thread_local dnnl::stream* stream = new dnnl::stream(Engine());
  return *stream;
}

}  // namespace

struct OneDnnMatmul::Impl {
  dt weight_type = dt::bf16;
  int64_t n = 0;
  int64_t k = 0;
  dnnl::memory::desc weights_desc;  // of the whole matrix
  dnnl::memory weights;             // borrowed or owned
  size_t owned_bytes = 0;
  // Sliceable: the layout is BA16a64b(2a), so the columns of N-blocks [b0, b1) are one
  // contiguous run of block_bytes * (b1 - b0) bytes with the same layout.
  bool sliceable = false;
  tag blocked_tag = tag::undef;
  size_t block_bytes = 0;

  struct Entry {
    dnnl::matmul primitive;
    size_t scratchpad_bytes = 0;
  };
  mutable absl::Mutex mu;
  // (m, width, OpenMP threads, accumulate, bias)
  using Key = std::tuple<int64_t, int64_t, int, bool, bool>;
  mutable absl::flat_hash_map<Key, std::shared_ptr<const Entry>> cache ABSL_GUARDED_BY(mu);

  // dst[m, width] (dense) = x[m, k] * W^T[k, width] (+ epilogue).
  dnnl::matmul::primitive_desc MakeDesc(int64_t m, int64_t width, bool accumulate, bool bias,
                                        const dnnl::memory::desc& weights_md) const {
    dnnl::memory::desc src({m, k}, weight_type, tag::ab);
    // Dense: oneDNN 2.6's brgemm matmul rejects a strided dst (falls back to ref:any).
    dnnl::memory::desc dst({m, width}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    if (bias) {
      dnnl::memory::desc bias_md({1, width}, dt::f32, tag::ab);
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights_md, bias_md, dst),
                                          attr, Engine());
    }
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights_md, dst), attr,
                                        Engine());
  }

  dnnl::memory::desc SliceDesc(int64_t width) const {
    return width == n ? weights_desc : dnnl::memory::desc({k, width}, weight_type, blocked_tag);
  }

  // The primitive for (m, width, epilogue); created on first use by the calling thread (which
  // runs with OpenMP max threads 1 inside ParallelFor, so the primitive is single-threaded).
  std::shared_ptr<const Entry> Get(int64_t m, int64_t width, bool accumulate, bool bias) const {
    // oneDNN sizes a primitive's work split for the OpenMP threads at creation: key on them.
    const Key key{m, width, omp_get_max_threads(), accumulate, bias};
    {
      absl::MutexLock lock(&mu);
      auto it = cache.find(key);
      if (it != cache.end()) return it->second;
    }
    auto entry = std::make_shared<Entry>();
    try {
      dnnl::matmul::primitive_desc pd = MakeDesc(m, width, accumulate, bias, SliceDesc(width));
      entry->scratchpad_bytes = pd.scratchpad_desc().get_size();
      entry->primitive = dnnl::matmul(pd);
    } catch (const dnnl::error& e) {
      DieOnDnnl(e, "matmul primitive creation");
    }
    absl::MutexLock lock(&mu);
    if (cache.size() >= kMaxCachedPrimitives) cache.clear();
    cache.emplace(key, entry);
    return entry;
  }

  // dst[m, width] (dense) = src[m, k] * W^T columns [n0, n0 + width) (+ bias[n0...]);
  // n0 is a multiple of 64 when width < n.
  void Execute(const void* src_data, int64_t m, float* dst_data, bool accumulate,
               const float* bias, int64_t n0, int64_t width) const {
    thread_local ThreadBuffer scratchpad;
    std::shared_ptr<const Entry> entry = Get(m, width, accumulate, bias != nullptr);
    try {
      auto* w = static_cast<uint8_t*>(weights.get_data_handle()) +
                (width == n ? 0 : static_cast<size_t>(n0 / 64) * block_bytes);
      dnnl::memory wmem(SliceDesc(width), Engine(), w);
      dnnl::memory src({{m, k}, weight_type, tag::ab}, Engine(), const_cast<void*>(src_data));
      dnnl::memory dst({{m, width}, dt::f32, tag::ab}, Engine(), dst_data);
      std::unordered_map<int, dnnl::memory> args = {
          {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wmem}, {DNNL_ARG_DST, dst}};
      if (bias != nullptr) {
        args.emplace(DNNL_ARG_BIAS, dnnl::memory({{1, width}, dt::f32, tag::ab}, Engine(),
                                                 const_cast<float*>(bias + n0)));
      }
      if (entry->scratchpad_bytes > 0) {
        dnnl::memory::desc sp({static_cast<int64_t>(entry->scratchpad_bytes)}, dt::u8, tag::a);
        args.emplace(DNNL_ARG_SCRATCHPAD,
                     dnnl::memory(sp, Engine(), scratchpad.Get(entry->scratchpad_bytes)));
      }
      entry->primitive.execute(ThreadStream(), args);
      ThreadStream().wait();
    } catch (const dnnl::error& err) {
      DieOnDnnl(err, "matmul execution");
    }
  }

  // Columns [n0, n0 + width) of y for all m rows, through a dense per-thread buffer (the
  // epilogue is applied while copying into y's strided columns).
  void ExecuteColumns(const void* src, int64_t m, float* y, const LinearEpilogue& e, int64_t n0,
                      int64_t width) const {
    thread_local ThreadBuffer out;
    auto* tmp = static_cast<float*>(out.Get(static_cast<size_t>(m * width) * 4));
    Execute(src, m, tmp, false, nullptr, n0, width);
    for (int64_t r = 0; r < m; ++r) {
      float* dst = y + r * n + n0;
      const float* t = tmp + r * width;
      if (e.accumulate && e.bias != nullptr) {
        for (int64_t c = 0; c < width; ++c) dst[c] += t[c] + e.bias[n0 + c];
      } else if (e.accumulate) {
        for (int64_t c = 0; c < width; ++c) dst[c] += t[c];
      } else if (e.bias != nullptr) {
        for (int64_t c = 0; c < width; ++c) dst[c] = t[c] + e.bias[n0 + c];
      } else {
        std::memcpy(dst, t, static_cast<size_t>(width) * 4);
      }
    }
  }

  // Checks whether `wanted` is exactly the sliceable blocked layout.
  void DetectSlicing(const dnnl::memory::desc& wanted) {
    blocked_tag = weight_type == dt::bf16 ? tag::BA16a64b2a : tag::BA16a64b;
    sliceable = wanted == dnnl::memory::desc({k, n}, weight_type, blocked_tag);
    if (sliceable) {
      const int64_t k_pad = RoundUp(k, weight_type == dt::bf16 ? 32 : 16);
      block_bytes = static_cast<size_t>(k_pad * 64) * dnnl::memory::data_type_size(weight_type);
      sliceable = block_bytes * static_cast<size_t>(RoundUp(n, 64) / 64) == wanted.get_size();
    }
  }
};

OneDnnMatmul::OneDnnMatmul(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OneDnnMatmul::~OneDnnMatmul() = default;

absl::StatusOr<std::unique_ptr<OneDnnMatmul>> OneDnnMatmul::CreateBf16(
    const uint16_t* blocked, const BlockedShape& shape, bool* shares_blocked) {
  auto impl = std::make_unique<Impl>();
  impl->weight_type = dt::bf16;
  impl->n = shape.n;
  impl->k = shape.k;
  *shares_blocked = false;
  try {
    dnnl::memory::desc ours({shape.k, shape.n}, dt::bf16, tag::BA16a64b2a);
    dnnl::memory::desc any({shape.k, shape.n}, dt::bf16, tag::any);
    dnnl::memory::desc wanted = impl->MakeDesc(kProbeM, shape.n, false, false, any).weights_desc();
    dnnl::memory source(ours, Engine(), const_cast<uint16_t*>(blocked));
    impl->weights_desc = wanted;
    if (wanted == ours) {
      impl->weights = source;
      *shares_blocked = true;
    } else {
      impl->weights = dnnl::memory(wanted, Engine());
      impl->owned_bytes = wanted.get_size();
      dnnl::stream stream(Engine());
      dnnl::reorder(source, impl->weights).execute(stream, source, impl->weights);
      stream.wait();
    }
    impl->DetectSlicing(wanted);
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN bf16 weight packing failed: ", e.what()));
  }
  return std::unique_ptr<OneDnnMatmul>(new OneDnnMatmul(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<OneDnnMatmul>> OneDnnMatmul::CreateF32(const float* w,
                                                                     int64_t n, int64_t k) {
  auto impl = std::make_unique<Impl>();
  impl->weight_type = dt::f32;
  impl->n = n;
  impl->k = k;
  try {
    dnnl::memory::desc any({k, n}, dt::f32, tag::any);
    impl->weights_desc = impl->MakeDesc(kProbeM, n, false, false, any).weights_desc();
    // W [n, k] row-major is W^T [k, n] in "ba" order.
    dnnl::memory source({{k, n}, dt::f32, tag::ba}, Engine(), const_cast<float*>(w));
    impl->weights = dnnl::memory(impl->weights_desc, Engine());
    impl->owned_bytes = impl->weights_desc.get_size();
    dnnl::stream stream(Engine());
    dnnl::reorder(source, impl->weights).execute(stream, source, impl->weights);
    stream.wait();
    impl->DetectSlicing(impl->weights_desc);
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN f32 weight packing failed: ", e.what()));
  }
  return std::unique_ptr<OneDnnMatmul>(new OneDnnMatmul(std::move(impl)));
}

void OneDnnMatmul::Forward(const float* x, int64_t m, float* y,
                           const LinearEpilogue& epilogue) const {
  if (m <= 0) return;
  thread_local ThreadBuffer activations;
  const Impl& im = *impl_;
  const void* src = x;
  if (im.weight_type == dt::bf16) {
    auto* xb = static_cast<uint16_t*>(activations.Get(static_cast<size_t>(m * im.k) * 2));
    ConvertF32ToBf16(x, m * im.k, xb);
    src = xb;
  }
  const int64_t threads = KernelThreads();
  const size_t elem = im.weight_type == dt::bf16 ? 2 : 4;
  if (m >= kMinRowsPerSlice * 2 && threads > 1) {
    // Row slices: dense src and dst rows, the whole weight matrix per slice.
    const int64_t slices = std::min(threads * kSlicesPerThread, m / kMinRowsPerSlice);
    ParallelFor(slices, [&](int64_t i) {
      const int64_t r0 = m * i / slices, r1 = m * (i + 1) / slices;
      im.Execute(static_cast<const uint8_t*>(src) + r0 * im.k * elem, r1 - r0, y + r0 * im.n,
                 epilogue.accumulate, epilogue.bias, 0, im.n);
    });
    return;
  }
  if (!im.sliceable || threads == 1) {  // one call (on OpenMP's threads, if any)
    im.Execute(src, m, y, epilogue.accumulate, epilogue.bias, 0, im.n);
    return;
  }
  // Few rows: column slices of whole 64-wide blocks.
  const int64_t blocks = RoundUp(im.n, 64) / 64;
  const int64_t slices = std::min<int64_t>(blocks, threads * kSlicesPerThread);
  ParallelFor(slices, [&](int64_t i) {
    const int64_t b0 = blocks * i / slices;
    const int64_t b1 = blocks * (i + 1) / slices;
    const int64_t n0 = b0 * 64;
    im.ExecuteColumns(src, m, y, epilogue, n0, std::min(im.n, b1 * 64) - n0);
  });
}

size_t OneDnnMatmul::owned_bytes() const { return impl_->owned_bytes; }

}  // namespace moe::kernels::internal
