#include "model/arch/router.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace moe::model {

absl::Status ValidateRouterSpec(const RouterSpec& spec) {
  if (spec.num_experts <= 0) return absl::InvalidArgumentError("router: num_experts must be > 0");
  if (spec.top_k <= 0 || spec.top_k > spec.num_experts) {
    return absl::InvalidArgumentError(absl::StrCat("router: top_k ", spec.top_k,
                                                   " must be in [1, ", spec.num_experts, "]"));
  }
  if (spec.n_group <= 0 || spec.num_experts % spec.n_group != 0) {
    return absl::InvalidArgumentError("router: n_group must divide num_experts");
  }
  if (spec.topk_group <= 0 || spec.topk_group > spec.n_group) {
    return absl::InvalidArgumentError("router: topk_group must be in [1, n_group]");
  }
  if (spec.top_k > spec.topk_group * (spec.num_experts / spec.n_group)) {
    return absl::InvalidArgumentError("router: top_k exceeds the experts of the kept groups");
  }
  return absl::OkStatus();
}

namespace {

// Indices of the k largest values of `v` among `allowed` (all when empty), best first,
// ties by lower index.
void TopK(const std::vector<float>& v, int k, const std::vector<char>& allowed,
          std::vector<int>* idx) {
  idx->clear();
  for (int i = 0; i < static_cast<int>(v.size()); ++i) {
    if (allowed.empty() || allowed[i]) idx->push_back(i);
  }
  auto better = [&](int a, int b) { return v[a] > v[b] || (v[a] == v[b] && a < b); };
  k = std::min<int>(k, idx->size());
  std::partial_sort(idx->begin(), idx->begin() + k, idx->end(), better);
  idx->resize(k);
}

}  // namespace

void Route(const RouterSpec& spec, const float* logits, int tokens,
           absl::Span<const float> correction_bias, Routing* out) {
  const int e = spec.num_experts;
  const int k = spec.top_k;
  out->tokens = tokens;
  out->top_k = k;
  out->experts.resize(static_cast<size_t>(tokens) * k);
  out->weights.resize(static_cast<size_t>(tokens) * k);
  std::vector<float> scores(e), choice(e);
  std::vector<int> idx;
  std::vector<char> allowed;
  for (int t = 0; t < tokens; ++t) {
    const float* row = logits + static_cast<size_t>(t) * e;
    if (spec.scoring == RouterScoring::kSoftmax) {
      float mx = *std::max_element(row, row + e);
      float sum = 0;
      for (int i = 0; i < e; ++i) sum += (scores[i] = std::exp(row[i] - mx));
      for (int i = 0; i < e; ++i) scores[i] /= sum;
      choice = scores;
    } else {
      for (int i = 0; i < e; ++i) {
        scores[i] = 1.0f / (1.0f + std::exp(-row[i]));
        choice[i] = scores[i] + (correction_bias.empty() ? 0.0f : correction_bias[i]);
      }
    }
    allowed.clear();
    if (spec.n_group > 1) {
      // Group score: sum of the two best choice scores in the group.
      const int per = e / spec.n_group;
      std::vector<float> gscore(spec.n_group);
      for (int g = 0; g < spec.n_group; ++g) {
        float a = -INFINITY, b = -INFINITY;
        for (int i = g * per; i < (g + 1) * per; ++i) {
          if (choice[i] > a) {
            b = a;
            a = choice[i];
          } else if (choice[i] > b) {
            b = choice[i];
          }
        }
        gscore[g] = a + (per > 1 ? b : 0.0f);
      }
      std::vector<int> gidx;
      TopK(gscore, spec.topk_group, {}, &gidx);
      allowed.assign(e, 0);
      for (int g : gidx) std::fill(allowed.begin() + g * per, allowed.begin() + (g + 1) * per, 1);
    }
    TopK(choice, k, allowed, &idx);
    float sum = 0;
    for (int j = 0; j < k; ++j) sum += scores[idx[j]];
    for (int j = 0; j < k; ++j) {
      float w = scores[idx[j]];
      if (spec.renormalize) w /= (spec.scoring == RouterScoring::kSigmoid ? sum + 1e-20f : sum);
      out->experts[static_cast<size_t>(t) * k + j] = idx[j];
      out->weights[static_cast<size_t>(t) * k + j] = w * spec.scaling;
    }
  }
}

}  // namespace moe::model
