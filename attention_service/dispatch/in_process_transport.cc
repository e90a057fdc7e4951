#include "attention_service/dispatch/in_process_transport.h"

#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace moe::attention {

namespace {

namespace v1 = ::moe::expert::v1;
namespace cv1 = ::moe::common::v1;

std::optional<DType> FromWire(int dtype) {
  switch (dtype) {
    case cv1::DTYPE_F32: return DType::kF32;
    case cv1::DTYPE_F16: return DType::kF16;
    case cv1::DTYPE_BF16: return DType::kBF16;
    case cv1::DTYPE_I32: return DType::kI32;
    case cv1::DTYPE_I64: return DType::kI64;
    default: return std::nullopt;
  }
}

expert::WireTensor Decode(bool present, const cv1::Tensor& t) {
  expert::WireTensor w;
  w.present = present;
  if (!present) return w;
  w.dtype = FromWire(t.dtype());
  w.shape.assign(t.shape().begin(), t.shape().end());
  w.data = std::string_view(t.data());
  return w;
}

// Views into `req`, which must outlive the result.
expert::ForwardRequest Decode(const v1::ComputeRequest& req) {
  expert::ForwardRequest r;
  r.layer = req.layer();
  r.epoch = req.epoch();
  r.combine = req.combine();
  r.combined_rows = req.combined_rows();
  for (const v1::Shard& s : req.shards()) {
    expert::ShardRequest& d = r.shards.emplace_back();
    d.expert = s.expert();
    d.hidden = Decode(s.has_hidden(), s.hidden());
    d.weights = Decode(s.has_weights(), s.weights());
    d.rows = Decode(s.has_rows(), s.rows());
  }
  return r;
}

void EncodeF32(const std::vector<float>& v, int64_t rows, int64_t cols, cv1::Tensor* out) {
  out->set_dtype(cv1::DTYPE_F32);
  out->add_shape(rows);
  out->add_shape(cols);
  out->set_data(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

}  // namespace

void InProcessExpertTransport::ForwardAll(absl::Span<ExpertCall> calls,
                                          absl::Duration /*timeout*/) {
  absl::MutexLock lock(&mu_);
  for (ExpertCall& call : calls) {
    call.response.Clear();
    auto it = executors_.find(call.instance);
    if (it == executors_.end()) {
      call.status = absl::UnavailableError(absl::StrCat("no instance ", call.instance));
      continue;
    }
    expert::ShardExecutor* ex = it->second;
    absl::StatusOr<expert::ForwardResult> r = ex->Forward(Decode(call.request));
    call.status = r.status();
    if (!r.ok()) continue;
    const int64_t hidden = ex->config().hidden;
    if (call.request.combine()) {
      EncodeF32(r->combined, call.request.combined_rows(), hidden,
                call.response.mutable_combined());
    } else {
      for (const std::vector<float>& o : r->outputs) {
        EncodeF32(o, static_cast<int64_t>(o.size()) / hidden, hidden,
                  call.response.add_outputs());
      }
    }
  }
}

}  // namespace moe::attention
