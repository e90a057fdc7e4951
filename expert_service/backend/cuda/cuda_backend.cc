#include "expert_service/backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "expert_service/backend/expert_map.h"
#include "expert_service/backend/cuda/cuda_kernels.h"

namespace moe::expert {
namespace {


absl::Status CudaError(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cuda backend: ", what, ": ", cudaGetErrorString(e)));
}

absl::Status CublasError(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cuda backend: ", what, ": cuBLAS status ",
                                          static_cast<int>(s)));
}

#define MOE_CUDA(call) MOE_RETURN_IF_ERROR(CudaError((call), #call))
#define MOE_CUBLAS(call) MOE_RETURN_IF_ERROR(CublasError((call), #call))

// Device memory owned by one object; freed with the device made current first.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { Reset(); }

  absl::Status Allocate(int device, size_t bytes) {
    Reset();
    device_ = device;
    MOE_CUDA(cudaSetDevice(device));
    MOE_CUDA(cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes));
    bytes_ = bytes;
    return absl::OkStatus();
  }
  // Grow-only reallocation (contents are not kept).
  absl::Status Reserve(int device, size_t bytes) {
    if (bytes <= bytes_ && ptr_ != nullptr) return absl::OkStatus();
    return Allocate(device, bytes);
  }
  void Reset() {
    if (ptr_ != nullptr) {
      cudaSetDevice(device_);
      cudaFree(ptr_);
    }
    ptr_ = nullptr;
    bytes_ = 0;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  int device_ = 0;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

struct CudaExpert {
  int64_t hidden = 0;
  int64_t inter = 0;
  DeviceBuffer gate_up;  // BF16 [2*inter, hidden] row-major
  DeviceBuffer down;     // BF16 [hidden, inter] row-major
  int64_t bytes() const { return static_cast<int64_t>(gate_up.bytes() + down.bytes()); }
};

// Converts `count` weights of F32/BF16/F16 into BF16 at dst.
void ToBf16(const WeightRef& w, int64_t count, uint16_t* dst) {
  if (w.dtype == DType::kBF16) {
    std::memcpy(dst, w.data, static_cast<size_t>(count) * 2);
    return;
  }
  const auto* f32 = static_cast<const float*>(w.data);
  const auto* f16 = static_cast<const uint16_t*>(w.data);
  for (int64_t i = 0; i < count; ++i) {
    dst[i] = F32ToBf16(w.dtype == DType::kF32 ? f32[i] : F16ToF32(f16[i]));
  }
}

// One GEMM of a group: C[n, m] (row-major, F32) = B[n, k] (BF16) * A[m, k]^T (BF16).
struct GemmProblem {
  const void* a;  // weights [m, k] row-major
  const void* b;  // activations [n, k] row-major
  float* c;       // output [n, m] row-major
  int m, n, k;
};

class CudaBackend final : public ExpertBackend {
 public:
  CudaBackend(const BackendOptions& options, std::string device_name, int64_t device_memory)
      : options_(options), device_name_(std::move(device_name)), device_memory_(device_memory) {}

  ~CudaBackend() override {
    cudaSetDevice(options_.device_ordinal);
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  absl::Status Init() {
    MOE_CUDA(cudaSetDevice(options_.device_ordinal));
    MOE_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    MOE_CUBLAS(cublasCreate(&cublas_));
    MOE_CUBLAS(cublasSetStream(cublas_, stream_));
    return absl::OkStatus();
  }

  absl::Status Load(absl::Span<const ExpertWeights> experts) override {
    std::vector<ExpertMap<CudaExpert>::Entry> loaded;
    int64_t added = 0;
    std::vector<uint16_t> host;
    for (const ExpertWeights& w : experts) {
      int64_t hidden = 0, inter = 0;
      MOE_RETURN_IF_ERROR(ValidateExpertWeights(w, &hidden, &inter));
      auto e = std::make_shared<CudaExpert>();
      e->hidden = hidden;
      e->inter = inter;
      const int64_t block = inter * hidden;
      host.resize(2 * block);
      ToBf16(w.gate, block, host.data());
      ToBf16(w.up, block, host.data() + block);
      MOE_RETURN_IF_ERROR(e->gate_up.Allocate(options_.device_ordinal, 2 * block * 2));
      MOE_CUDA(cudaMemcpy(e->gate_up.as<void>(), host.data(), 2 * block * 2,
                          cudaMemcpyHostToDevice));
      ToBf16(w.down, block, host.data());
      MOE_RETURN_IF_ERROR(e->down.Allocate(options_.device_ordinal, block * 2));
      MOE_CUDA(cudaMemcpy(e->down.as<void>(), host.data(), block * 2, cudaMemcpyHostToDevice));
      added += e->bytes();
      loaded.emplace_back(std::make_pair(w.layer, w.expert), std::move(e));
    }
    return map_.Install(std::move(loaded));
  }

  absl::Status Unload(absl::Span<const std::pair<int, int>> layer_expert) override {
    map_.Remove(layer_expert);
    return absl::OkStatus();
  }

  bool Has(int layer, int expert) const override { return map_.Contains(layer, expert); }

  absl::Status Run(int layer, absl::Span<const ExpertShard> shards) override {
    MOE_ASSIGN_OR_RETURN(std::vector<std::shared_ptr<const CudaExpert>> experts,
                         map_.Acquire(layer, shards));
    // Offsets (in elements) of every shard inside the staging buffers.
    int64_t x_elems = 0, gu_elems = 0, h_elems = 0;
    std::vector<int64_t> x_off(shards.size()), gu_off(shards.size()), h_off(shards.size());
    for (size_t i = 0; i < shards.size(); ++i) {
      const ExpertShard& s = shards[i];
      if (s.tokens < 0) return absl::InvalidArgumentError("cuda backend: negative token count");
      if (s.tokens > 0 && (s.input == nullptr || s.output == nullptr)) {
        return absl::InvalidArgumentError("cuda backend: null shard buffer");
      }
      x_off[i] = x_elems;
      gu_off[i] = gu_elems;
      h_off[i] = h_elems;
      x_elems += s.tokens * experts[i]->hidden;
      gu_elems += s.tokens * 2 * experts[i]->inter;
      h_elems += s.tokens * experts[i]->inter;
    }
    if (x_elems == 0) return absl::OkStatus();
    const int dev = options_.device_ordinal;
    MOE_CUDA(cudaSetDevice(dev));
    // x and out share sizes ([tokens, hidden] F32).
    MOE_RETURN_IF_ERROR(x_f32_.Reserve(dev, x_elems * 4));
    MOE_RETURN_IF_ERROR(x_bf16_.Reserve(dev, x_elems * 2));
    MOE_RETURN_IF_ERROR(gate_up_.Reserve(dev, gu_elems * 4));
    MOE_RETURN_IF_ERROR(h_bf16_.Reserve(dev, h_elems * 2));
    MOE_RETURN_IF_ERROR(out_.Reserve(dev, x_elems * 4));

    std::vector<GemmProblem> first, second;
    for (size_t i = 0; i < shards.size(); ++i) {
      const ExpertShard& s = shards[i];
      if (s.tokens == 0) continue;
      const CudaExpert& e = *experts[i];
      MOE_CUDA(cudaMemcpyAsync(x_f32_.as<float>() + x_off[i], s.input,
                               s.tokens * e.hidden * 4, cudaMemcpyHostToDevice, stream_));
      first.push_back({e.gate_up.as<void>(), x_bf16_.as<uint16_t>() + x_off[i],
                       gate_up_.as<float>() + gu_off[i], static_cast<int>(2 * e.inter),
                       s.tokens, static_cast<int>(e.hidden)});
      second.push_back({e.down.as<void>(), h_bf16_.as<uint16_t>() + h_off[i],
                        out_.as<float>() + x_off[i], static_cast<int>(e.hidden), s.tokens,
                        static_cast<int>(e.inter)});
    }
    MOE_CUDA(cuda::LaunchF32ToBf16(x_f32_.as<float>(), x_bf16_.as<uint16_t>(), x_elems, stream_));
    MOE_RETURN_IF_ERROR(GroupedGemm(first));
    for (size_t i = 0; i < shards.size(); ++i) {
      if (shards[i].tokens == 0) continue;
      MOE_CUDA(cuda::LaunchSiluMulToBf16(gate_up_.as<float>() + gu_off[i], shards[i].tokens,
                                         experts[i]->inter, h_bf16_.as<uint16_t>() + h_off[i],
                                         stream_));
    }
    MOE_RETURN_IF_ERROR(GroupedGemm(second));

    // Outputs back: straight into the caller's buffer, or into host scratch for combine.
    host_out_.resize(x_elems);
    for (size_t i = 0; i < shards.size(); ++i) {
      const ExpertShard& s = shards[i];
      if (s.tokens == 0) continue;
      float* dst = s.combine_weight == nullptr ? s.output : host_out_.data() + x_off[i];
      MOE_CUDA(cudaMemcpyAsync(dst, out_.as<float>() + x_off[i],
                               s.tokens * experts[i]->hidden * 4, cudaMemcpyDeviceToHost,
                               stream_));
    }
    MOE_CUDA(cudaStreamSynchronize(stream_));
    for (size_t i = 0; i < shards.size(); ++i) {
      const ExpertShard& s = shards[i];
      if (s.tokens == 0 || s.combine_weight == nullptr) continue;
      const int64_t hidden = experts[i]->hidden;
      for (int64_t r = 0; r < s.tokens; ++r) {
        const int64_t row = s.combine_row != nullptr ? s.combine_row[r] : r;
        const float w = s.combine_weight[r];
        const float* src = host_out_.data() + x_off[i] + r * hidden;
        float* dst = s.output + row * hidden;
        for (int64_t c = 0; c < hidden; ++c) dst[c] += w * src[c];
      }
    }
    return absl::OkStatus();
  }

  BackendInfo Describe() const override {
    BackendInfo info;
    info.name = "cuda";
    info.device = absl::StrCat(device_name_, " (", options_.device_ordinal, ")");
    info.memory_bytes = device_memory_;
    std::tie(info.weight_bytes, info.experts_loaded) = map_.Totals();
    return info;
  }

 private:
  // All problems as one cublasGemmGroupedBatchedEx call (one group per problem); a loop of
  // cublasGemmEx where the grouped call is not supported. In cuBLAS' column-major terms the
  // row-major C[n, m] = B[n, k] A[m, k]^T is C^T[m, n] = op_T(A)[m, k] * B^T[k, n].
  absl::Status GroupedGemm(const std::vector<GemmProblem>& problems) {
    if (problems.empty()) return absl::OkStatus();
    const int count = static_cast<int>(problems.size());
    const float one = 1.0f, zero = 0.0f;
    if (use_grouped_) {
      std::vector<cublasOperation_t> ta(count, CUBLAS_OP_T), tb(count, CUBLAS_OP_N);
      std::vector<int> m(count), n(count), k(count), group_size(count, 1);
      std::vector<float> alpha(count, one), beta(count, zero);
      std::vector<const void*> host_ptrs(3 * count);
      for (int i = 0; i < count; ++i) {
        m[i] = problems[i].m;
        n[i] = problems[i].n;
        k[i] = problems[i].k;
        host_ptrs[i] = problems[i].a;
        host_ptrs[count + i] = problems[i].b;
        host_ptrs[2 * count + i] = problems[i].c;
      }
      // The pointer arrays must be in device memory; m/n/k/ld/alpha/beta are host arrays.
      MOE_RETURN_IF_ERROR(pointers_.Reserve(options_.device_ordinal, host_ptrs.size() * 8));
      MOE_CUDA(cudaMemcpyAsync(pointers_.as<void>(), host_ptrs.data(), host_ptrs.size() * 8,
                               cudaMemcpyHostToDevice, stream_));
      const void* const* a = pointers_.as<const void*>();
      const void* const* b = a + count;
      void* const* c = pointers_.as<void*>() + 2 * count;
      const cublasStatus_t status = cublasGemmGroupedBatchedEx(
          cublas_, ta.data(), tb.data(), m.data(), n.data(), k.data(), alpha.data(), a,
          CUDA_R_16BF, k.data(), b, CUDA_R_16BF, k.data(), beta.data(), c, CUDA_R_32F, m.data(),
          count, group_size.data(), CUBLAS_COMPUTE_32F);
      // No sync needed for the host arrays: a copy from pageable memory has staged host_ptrs
      // when cudaMemcpyAsync returns, and cuBLAS reads its host arrays during the call. The
      // next Reserve of pointers_ (cudaFree) synchronises the device before reusing it.
      if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
      if (status != CUBLAS_STATUS_NOT_SUPPORTED && status != CUBLAS_STATUS_ARCH_MISMATCH) {
        return CublasError(status, "cublasGemmGroupedBatchedEx");
      }
      use_grouped_ = false;  // fall through to the loop from now on
    }
    for (const GemmProblem& p : problems) {
      MOE_CUBLAS(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, p.m, p.n, p.k, &one, p.a,
                              CUDA_R_16BF, p.k, p.b, CUDA_R_16BF, p.k, &zero, p.c, CUDA_R_32F,
                              p.m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    return absl::OkStatus();
  }

  const BackendOptions options_;
  const std::string device_name_;
  const int64_t device_memory_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;

  ExpertMap<CudaExpert> map_{"cuda backend", options_.memory_limit_bytes};

  // Run's state (one Run at a time): grow-only device staging buffers.
  bool use_grouped_ = true;
  DeviceBuffer x_f32_, x_bf16_, gate_up_, h_bf16_, out_, pointers_;
  std::vector<float> host_out_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExpertBackend>> CreateCudaBackend(const BackendOptions& options) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    return absl::UnavailableError(
        absl::StrCat("cuda backend: no usable CUDA device: ", cudaGetErrorString(e)));
  }
  if (count == 0) return absl::UnavailableError("cuda backend: no CUDA device present");
  if (options.device_ordinal < 0 || options.device_ordinal >= count) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cuda backend: device ", options.device_ordinal, " requested, ", count, " present"));
  }
  cudaDeviceProp prop;
  MOE_CUDA(cudaGetDeviceProperties(&prop, options.device_ordinal));
  auto backend = std::make_unique<CudaBackend>(options, std::string(prop.name),
                                               static_cast<int64_t>(prop.totalGlobalMem));
  MOE_RETURN_IF_ERROR(backend->Init());
  return std::unique_ptr<ExpertBackend>(std::move(backend));
}

}  // namespace moe::expert
