#include "expert_service/backend/expert_backend.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace moe::expert {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status Bad(const ExpertWeights& w, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("expert (layer ", w.layer, ", expert ", w.expert, "): ", what));
}

}  // namespace

absl::Status ValidateExpertWeights(const ExpertWeights& w, int64_t* hidden, int64_t* inter) {
  for (const WeightRef* r : {&w.gate, &w.up, &w.down}) {
    if (r->dtype != DType::kF32 && r->dtype != DType::kBF16 && r->dtype != DType::kF16) {
      return Bad(w, absl::StrCat("unsupported dtype ", std::string(DTypeName(r->dtype))));
    }
    if (r->dtype != w.gate.dtype) return Bad(w, "gate, up and down differ in dtype");
    if (r->data == nullptr) return Bad(w, "null weight data");
    if (r->shape.size() != 2 || r->shape[0] <= 0 || r->shape[1] <= 0) {
      return Bad(w, absl::StrCat("weights must be 2-D and non-empty, got ", ShapeString(r->shape)));
    }
  }
  const int64_t i = w.gate.shape[0];
  const int64_t h = w.gate.shape[1];
  if (w.up.shape != w.gate.shape || w.down.shape[0] != h || w.down.shape[1] != i) {
    return Bad(w, absl::StrCat("want gate/up [inter, hidden] and down [hidden, inter], got gate ",
                               ShapeString(w.gate.shape), " up ", ShapeString(w.up.shape),
                               " down ", ShapeString(w.down.shape)));
  }
  if (w.layer < 0 || w.expert < 0) return Bad(w, "negative layer or expert id");
  *hidden = h;
  *inter = i;
  return absl::OkStatus();
}

}  // namespace moe::expert
