#include "model/kernels/onednn_matmul.h"

#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/base/thread_annotations.h"

namespace moe::kernels::internal {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// The M used to ask oneDNN which weight layout it wants; checked to be the same for every M
// on AVX512 machines (brgemm matmul picks BA16a64b2a / BA16a64b whatever M is).
constexpr int64_t kProbeM = 64;
// Distinct (M, epilogue) primitives kept per matrix before the cache is flushed (oneDNN's
// own global primitive cache makes re-creation cheap).
constexpr size_t kMaxCachedPrimitives = 128;

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

}  // namespace

struct OneDnnMatmul::Impl {
  dt weight_type = dt::bf16;
  int64_t n = 0;
  int64_t k = 0;
  dnnl::memory::desc weights_desc;
  dnnl::memory weights;  // borrowed or owned handle
  size_t owned_bytes = 0;

  struct Entry {
    dnnl::matmul primitive;
    size_t scratchpad_bytes = 0;
  };
  mutable absl::Mutex mu;
  mutable absl::flat_hash_map<int64_t, std::shared_ptr<const Entry>> cache ABSL_GUARDED_BY(mu);

  dnnl::matmul::primitive_desc MakeDesc(int64_t m, bool accumulate, bool bias,
                                        const dnnl::memory::desc& weights_md) const {
    dnnl::memory::desc src({m, k}, weight_type, tag::ab);
    dnnl::memory::desc dst({m, n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    if (bias) {
      dnnl::memory::desc bias_md({1, n}, dt::f32, tag::ab);
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights_md, bias_md, dst),
                                          attr, Engine());
    }
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights_md, dst), attr,
                                        Engine());
  }

  std::shared_ptr<const Entry> Get(int64_t m, bool accumulate, bool bias) const {
    const int64_t key = m * 4 + (accumulate ? 2 : 0) + (bias ? 1 : 0);
    {
      absl::MutexLock lock(&mu);
      auto it = cache.find(key);
      if (it != cache.end()) return it->second;
    }
    auto entry = std::make_shared<Entry>();
    try {
      dnnl::matmul::primitive_desc pd = MakeDesc(m, accumulate, bias, weights_desc);
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
    dnnl::memory::desc wanted = impl->MakeDesc(kProbeM, false, false, any).weights_desc();
    dnnl::memory source(ours, Engine(), const_cast<uint16_t*>(blocked));
    if (wanted == ours) {
      impl->weights_desc = ours;
      impl->weights = source;
      *shares_blocked = true;
    } else {
      impl->weights_desc = wanted;
      impl->weights = dnnl::memory(wanted, Engine());
      impl->owned_bytes = wanted.get_size();
      dnnl::stream stream(Engine());
      dnnl::reorder(source, impl->weights).execute(stream, source, impl->weights);
      stream.wait();
    }
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
    impl->weights_desc = impl->MakeDesc(kProbeM, false, false, any).weights_desc();
    // W [n, k] row-major is W^T [k, n] in "ba" order.
    dnnl::memory source({{k, n}, dt::f32, tag::ba}, Engine(), const_cast<float*>(w));
    impl->weights = dnnl::memory(impl->weights_desc, Engine());
    impl->owned_bytes = impl->weights_desc.get_size();
    dnnl::stream stream(Engine());
    dnnl::reorder(source, impl->weights).execute(stream, source, impl->weights);
    stream.wait();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN f32 weight packing failed: ", e.what()));
  }
  return std::unique_ptr<OneDnnMatmul>(new OneDnnMatmul(std::move(impl)));
}

void OneDnnMatmul::Forward(const float* x, int64_t m, float* y,
                           const LinearEpilogue& epilogue) const {
  if (m <= 0) return;
  thread_local ThreadBuffer activations;
  thread_local ThreadBuffer scratchpad;
  thread_local dnnl::stream* stream = new dnnl::stream(Engine());
  const Impl& im = *impl_;
  std::shared_ptr<const Impl::Entry> entry = im.Get(m, epilogue.accumulate, epilogue.bias != nullptr);
  void* src_data = const_cast<float*>(x);
  if (im.weight_type == dt::bf16) {
    auto* xb = static_cast<uint16_t*>(activations.Get(static_cast<size_t>(m * im.k) * 2));
    ConvertF32ToBf16(x, m * im.k, xb);
    src_data = xb;
  }
  try {
    dnnl::memory src({{m, im.k}, im.weight_type, tag::ab}, Engine(), src_data);
    dnnl::memory dst({{m, im.n}, dt::f32, tag::ab}, Engine(), y);
    std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, im.weights}, {DNNL_ARG_DST, dst}};
    if (epilogue.bias != nullptr) {
      args.emplace(DNNL_ARG_BIAS, dnnl::memory({{1, im.n}, dt::f32, tag::ab}, Engine(),
                                               const_cast<float*>(epilogue.bias)));
    }
    if (entry->scratchpad_bytes > 0) {
      dnnl::memory::desc sp({static_cast<int64_t>(entry->scratchpad_bytes)}, dt::u8, tag::a);
      args.emplace(DNNL_ARG_SCRATCHPAD,
                   dnnl::memory(sp, Engine(), scratchpad.Get(entry->scratchpad_bytes)));
    }
    entry->primitive.execute(*stream, args);
    stream->wait();
  } catch (const dnnl::error& e) {
    DieOnDnnl(e, "matmul execution");
  }
}

size_t OneDnnMatmul::owned_bytes() const { return impl_->owned_bytes; }

}  // namespace moe::kernels::internal
