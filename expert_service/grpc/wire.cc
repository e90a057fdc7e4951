#include "expert_service/grpc/wire.h"

#include <optional>
#include <string_view>
#include <vector>

namespace moe::expert {
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

WireTensor DecodeTensor(bool present, const cv1::Tensor& t) {
  WireTensor w;
  w.present = present;
  if (!present) return w;
  w.dtype = FromWire(t.dtype());
  w.shape.assign(t.shape().begin(), t.shape().end());
  w.data = std::string_view(t.data());
  return w;
}

void EncodeF32(const std::vector<float>& v, int64_t rows, int64_t cols, cv1::Tensor* out) {
  out->set_dtype(cv1::DTYPE_F32);
  out->add_shape(rows);
  out->add_shape(cols);
  out->set_data(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

}  // namespace

ForwardRequest DecodeForwardRequest(const v1::ComputeRequest& req) {
  ForwardRequest r;
  r.layer = req.layer();
  r.epoch = req.epoch();
  r.combine = req.combine();
  r.combined_rows = req.combined_rows();
  r.shards.reserve(req.shards_size());
  for (const v1::Shard& s : req.shards()) {
    ShardRequest& d = r.shards.emplace_back();
    d.expert = s.expert();
    d.hidden = DecodeTensor(s.has_hidden(), s.hidden());
    d.weights = DecodeTensor(s.has_weights(), s.weights());
    d.rows = DecodeTensor(s.has_rows(), s.rows());
  }
  return r;
}

void EncodeForwardResult(const ForwardResult& result, bool combine, int64_t combined_rows,
                         int64_t hidden, v1::ComputeResponse* out) {
  if (combine) {
    EncodeF32(result.combined, combined_rows, hidden, out->mutable_combined());
    return;
  }
  for (const std::vector<float>& o : result.outputs) {
    EncodeF32(o, static_cast<int64_t>(o.size()) / hidden, hidden, out->add_outputs());
  }
}

}  // namespace moe::expert
