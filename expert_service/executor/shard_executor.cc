#include "expert_service/executor/shard_executor.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace moe::expert {

namespace {

absl::Status Invalid(size_t shard, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("shard ", shard, ": ", what));
}

// Checks a 1-D [tokens] tensor of dtype `want`.
absl::Status CheckVector(const WireTensor& t, DType want, int64_t tokens, size_t shard,
                         const char* name) {
  if (!t.dtype.has_value() || *t.dtype != want) {
    return Invalid(shard, absl::StrCat(name, " must have dtype ", std::string(DTypeName(want))));
  }
  if (t.shape.size() != 1 || t.shape[0] != tokens) {
    return Invalid(shard, absl::StrCat(name, " must have shape [", tokens, "]"));
  }
  if (t.data.size() != static_cast<size_t>(tokens) * DTypeSize(want)) {
    return Invalid(shard, absl::StrCat(name, " has ", t.data.size(), " bytes, expected ",
                                       tokens * DTypeSize(want)));
  }
  return absl::OkStatus();
}

// Returns F32 values of `data` (F32 or BF16), without a copy when F32 and aligned.
const float* AsF32(DType dtype, std::string_view data, std::vector<float>* scratch) {
  const size_t n = data.size() / DTypeSize(dtype);
  if (dtype == DType::kF32 && reinterpret_cast<uintptr_t>(data.data()) % alignof(float) == 0) {
    return reinterpret_cast<const float*>(data.data());
  }
  scratch->resize(n);
  if (dtype == DType::kF32) {
    std::memcpy(scratch->data(), data.data(), data.size());
  } else {
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, data.data() + 2 * i, 2);
      (*scratch)[i] = Bf16ToF32(h);
    }
  }
  return scratch->data();
}

const int32_t* AsI32(std::string_view data, std::vector<int32_t>* scratch) {
  if (reinterpret_cast<uintptr_t>(data.data()) % alignof(int32_t) == 0) {
    return reinterpret_cast<const int32_t*>(data.data());
  }
  scratch->resize(data.size() / 4);
  std::memcpy(scratch->data(), data.data(), data.size());
  return scratch->data();
}

}  // namespace

ShardExecutor::ShardExecutor(ShardExecutorConfig config, std::unique_ptr<ExpertBackend> backend)
    : config_(config), backend_(std::move(backend)) {
  MOE_CHECK(backend_ != nullptr);
  MOE_CHECK(config_.hidden > 0 && config_.num_layers > 0 && config_.num_experts > 0);
}

absl::Status ShardExecutor::LoadExperts(absl::Span<const ExpertWeights> experts, int64_t epoch) {
  for (const ExpertWeights& w : experts) {
    if (w.layer < 0 || w.layer >= config_.num_layers || w.expert < 0 ||
        w.expert >= config_.num_experts) {
      return absl::InvalidArgumentError(
          absl::StrCat("expert ", w.layer, ":", w.expert, " out of range"));
    }
    int64_t hidden = 0, inter = 0;
    MOE_RETURN_IF_ERROR(ValidateExpertWeights(w, &hidden, &inter));
    if (hidden != config_.hidden) {
      return absl::InvalidArgumentError(absl::StrCat("expert ", w.layer, ":", w.expert,
                                                     " hidden ", hidden, " != ", config_.hidden));
    }
  }
  MOE_RETURN_IF_ERROR(backend_->Load(experts));
  {
    absl::MutexLock lock(&mu_);
    for (const ExpertWeights& w : experts) loaded_.insert({w.layer, w.expert});
  }
  int64_t cur = applied_epoch_.load();
  while (epoch > cur && !applied_epoch_.compare_exchange_weak(cur, epoch)) {
  }
  return absl::OkStatus();
}

absl::Status ShardExecutor::DropExperts(absl::Span<const std::pair<int, int>> layer_expert) {
  {
    // Forget first so new requests are refused before the weights go.
    absl::MutexLock lock(&mu_);
    for (const auto& p : layer_expert) loaded_.erase(p);
  }
  return backend_->Unload(layer_expert);
}

std::vector<std::pair<int, int>> ShardExecutor::Loaded() const {
  absl::MutexLock lock(&mu_);
  return {loaded_.begin(), loaded_.end()};
}

absl::Status ShardExecutor::ValidateShard(const ForwardRequest& request, size_t i,
                                          int64_t* tokens) const {
  const ShardRequest& s = request.shards[i];
  if (s.expert < 0 || s.expert >= config_.num_experts) {
    return Invalid(i, absl::StrCat("expert ", s.expert, " out of range [0, ",
                                   config_.num_experts, ")"));
  }
  const WireTensor& h = s.hidden;
  if (!h.present) return Invalid(i, "hidden is missing");
  if (!h.dtype.has_value() || (*h.dtype != DType::kF32 && *h.dtype != DType::kBF16)) {
    return Invalid(i, "hidden dtype must be F32 or BF16");
  }
  if (h.shape.size() != 2 || h.shape[1] != config_.hidden) {
    return Invalid(i, absl::StrCat("hidden must have shape [tokens, ", config_.hidden, "]"));
  }
  const int64_t t = h.shape[0];
  if (t < 0 || t > config_.max_tokens) {
    return Invalid(i, absl::StrCat("token count ", t, " outside [0, ", config_.max_tokens, "]"));
  }
  const size_t want = static_cast<size_t>(t * config_.hidden) * DTypeSize(*h.dtype);
  if (h.data.size() != want) {
    return Invalid(i, absl::StrCat("hidden has ", h.data.size(), " bytes, expected ", want,
                                   " (tokens x hidden x dtype size)"));
  }
  if (request.combine) {
    if (!s.weights.present) return Invalid(i, "combine needs weights");
    MOE_RETURN_IF_ERROR(CheckVector(s.weights, DType::kF32, t, i, "weights"));
    if (s.rows.present) {
      MOE_RETURN_IF_ERROR(CheckVector(s.rows, DType::kI32, t, i, "rows"));
      for (int64_t k = 0; k < t; ++k) {
        int32_t r;
        std::memcpy(&r, s.rows.data.data() + 4 * k, 4);
        if (r < 0 || r >= request.combined_rows) {
          return Invalid(i, absl::StrCat("row ", r, " outside [0, ", request.combined_rows, ")"));
        }
      }
    } else if (t > request.combined_rows) {
      return Invalid(i, "without rows, tokens must not exceed combined_rows");
    }
  } else if (s.weights.present || s.rows.present) {
    return Invalid(i, "weights and rows are only accepted with combine");
  }
  *tokens = t;
  return absl::OkStatus();
}

absl::Status ShardExecutor::Validate(const ForwardRequest& request) const {
  if (request.layer < 0 || request.layer >= config_.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", request.layer, " out of range [0, ", config_.num_layers, ")"));
  }
  if (request.shards.empty()) return absl::InvalidArgumentError("request has no shards");
  if (request.shards.size() > static_cast<size_t>(config_.max_shards)) {
    return absl::InvalidArgumentError(absl::StrCat("more than ", config_.max_shards, " shards"));
  }
  if (request.combine && (request.combined_rows < 0 || request.combined_rows > config_.max_tokens)) {
    return absl::InvalidArgumentError(absl::StrCat("combined_rows ", request.combined_rows,
                                                   " outside [0, ", config_.max_tokens, "]"));
  }
  if (request.epoch < min_epoch_.load()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "placement epoch ", request.epoch, " is older than ", min_epoch_.load()));
  }
  int64_t total = 0;
  for (size_t i = 0; i < request.shards.size(); ++i) {
    int64_t t = 0;
    MOE_RETURN_IF_ERROR(ValidateShard(request, i, &t));
    total += t;
    if (total > config_.max_tokens) {
      return absl::InvalidArgumentError(
          absl::StrCat("more than ", config_.max_tokens, " tokens in one request"));
    }
  }
  absl::MutexLock lock(&mu_);
  for (const ShardRequest& s : request.shards) {
    if (!loaded_.count({static_cast<int>(request.layer), static_cast<int>(s.expert)})) {
      return absl::FailedPreconditionError(
          absl::StrCat("expert ", request.layer, ":", s.expert, " is not loaded here"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ForwardResult> ShardExecutor::Forward(const ForwardRequest& request) {
  MOE_RETURN_IF_ERROR(Validate(request));
  const size_t n = request.shards.size();
  const int64_t hidden = config_.hidden;
  ForwardResult result;
  std::vector<std::vector<float>> in_scratch(n), w_scratch(n);
  std::vector<std::vector<int32_t>> r_scratch(n);
  std::vector<ExpertShard> shards;
  shards.reserve(n);
  if (request.combine) {
    result.combined.assign(static_cast<size_t>(request.combined_rows * hidden), 0.0f);
  } else {
    result.outputs.resize(n);
  }
  for (size_t i = 0; i < n; ++i) {
    const ShardRequest& s = request.shards[i];
    const int64_t t = s.hidden.shape[0];
    if (t == 0) continue;  // nothing to compute; outputs[i] stays empty
    ExpertShard& e = shards.emplace_back();
    e.expert = static_cast<int>(s.expert);
    e.tokens = static_cast<int>(t);
    e.input = AsF32(*s.hidden.dtype, s.hidden.data, &in_scratch[i]);
    if (request.combine) {
      e.output = result.combined.data();
      e.combine_weight = AsF32(DType::kF32, s.weights.data, &w_scratch[i]);
      e.combine_row = s.rows.present ? AsI32(s.rows.data, &r_scratch[i]) : nullptr;
    } else {
      result.outputs[i].resize(static_cast<size_t>(t * hidden));
      e.output = result.outputs[i].data();
    }
    result.tokens += t;
  }
  if (!shards.empty()) {
    MOE_RETURN_IF_ERROR(backend_->Run(static_cast<int>(request.layer), shards));
  }
  return result;
}

}  // namespace moe::expert
