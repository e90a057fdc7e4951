// ModelRunner against an independent, naive float64 forward pass written from the Hugging Face
// semantics (no KV cache, no packing, no batching), on tiny F32 demo models of every
// architecture: Mixtral, Qwen3Moe (q/k norm) and Qwen2Moe (qkv bias, sigmoid-gated shared
// expert, no top-k renormalisation). Also checks that prefill and token-by-token decode agree.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "attention_service/engine/local_model.h"
#include "model/demo_model.h"

namespace moe::attention {
namespace {

using Mat = std::vector<double>;

class Ref {
 public:
  Ref(const model::ModelConfig& c, const model::ModelArchitecture& arch,
      const model::WeightStore& w)
      : c_(c), arch_(arch), w_(w) {}

  Mat Get(const std::string& name) {
    auto t = w_.Get(name);
    EXPECT_TRUE(t.ok()) << t.status();
    auto f = model::ToF32(*t);
    return Mat(f->begin(), f->end());
  }
  // y[out] = W[out, in] x[in] (+ b)
  static std::vector<double> MatVec(const Mat& w, const std::vector<double>& x, size_t out,
                                    const Mat* b = nullptr) {
    std::vector<double> y(out, 0.0);
    const size_t in = x.size();
    for (size_t o = 0; o < out; ++o) {
      double s = b ? (*b)[o] : 0.0;
      for (size_t i = 0; i < in; ++i) s += w[o * in + i] * x[i];
      y[o] = s;
    }
    return y;
  }
  std::vector<double> Norm(const std::vector<double>& x, const Mat& w, size_t off = 0,
                           size_t n = 0) {
    if (n == 0) n = x.size();
    std::vector<double> y(x);
    double ss = 0;
    for (size_t i = 0; i < n; ++i) ss += x[off + i] * x[off + i];
    double inv = 1.0 / std::sqrt(ss / n + c_.rms_norm_eps);
    for (size_t i = 0; i < n; ++i) y[off + i] = w[i] * x[off + i] * inv;
    return y;
  }
  void Rope(std::vector<double>* v, int heads, int pos) {
    const int d = c_.head_dim, half = d / 2;
    for (int h = 0; h < heads; ++h) {
      double* x = v->data() + h * d;
      for (int i = 0; i < half; ++i) {
        double ang = pos * std::pow(c_.rope_theta, -2.0 * i / d);
        double a = x[i], b = x[i + half];
        x[i] = a * std::cos(ang) - b * std::sin(ang);
        x[i + half] = b * std::cos(ang) + a * std::sin(ang);
      }
    }
  }
  std::vector<double> Ffn(const std::string& g, const std::string& u, const std::string& d,
                          const std::vector<double>& x, size_t inter) {
    std::vector<double> gv = MatVec(Get(g), x, inter), uv = MatVec(Get(u), x, inter);
    for (size_t i = 0; i < inter; ++i) gv[i] = gv[i] / (1 + std::exp(-gv[i])) * uv[i];
    return MatVec(Get(d), gv, c_.hidden_size);
  }

  // Log-softmax of the last position's logits.
  std::vector<double> LastLogprobs(const std::vector<int32_t>& tokens) {
    const int hid = c_.hidden_size, hd = c_.head_dim, nh = c_.num_attention_heads,
              nkv = c_.num_key_value_heads, T = tokens.size();
    Mat embed = Get("model.embed_tokens.weight");
    std::vector<std::vector<double>> h(T);
    for (int t = 0; t < T; ++t) {
      h[t].assign(embed.begin() + tokens[t] * hid, embed.begin() + (tokens[t] + 1) * hid);
    }
    for (int l = 0; l < c_.num_hidden_layers; ++l) {
      model::LayerTensorNames n = arch_.LayerNames(l);
      Mat in_norm = Get(n.input_norm), post_norm = Get(n.post_attention_norm);
      Mat wq = Get(n.q), wk = Get(n.k), wv = Get(n.v), wo = Get(n.o);
      Mat bq, bk, bv;
      if (!n.q_bias.empty()) bq = Get(n.q_bias), bk = Get(n.k_bias), bv = Get(n.v_bias);
      std::vector<std::vector<double>> q(T), k(T), v(T);
      for (int t = 0; t < T; ++t) {
        auto x = Norm(h[t], in_norm);
        q[t] = MatVec(wq, x, nh * hd, bq.empty() ? nullptr : &bq);
        k[t] = MatVec(wk, x, nkv * hd, bk.empty() ? nullptr : &bk);
        v[t] = MatVec(wv, x, nkv * hd, bv.empty() ? nullptr : &bv);
        if (!n.q_norm.empty()) {
          Mat qn = Get(n.q_norm), kn = Get(n.k_norm);
          for (int hh = 0; hh < nh; ++hh) q[t] = Norm(q[t], qn, hh * hd, hd);
          for (int hh = 0; hh < nkv; ++hh) k[t] = Norm(k[t], kn, hh * hd, hd);
        }
        Rope(&q[t], nh, t);
        Rope(&k[t], nkv, t);
      }
      for (int t = 0; t < T; ++t) {
        std::vector<double> attn(nh * hd, 0.0);
        for (int hh = 0; hh < nh; ++hh) {
          int kvh = hh / (nh / nkv);
          std::vector<double> s(t + 1);
          double mx = -1e300;
          for (int u = 0; u <= t; ++u) {
            double dot = 0;
            for (int i = 0; i < hd; ++i) dot += q[t][hh * hd + i] * k[u][kvh * hd + i];
            s[u] = dot / std::sqrt(double(hd));
            mx = std::max(mx, s[u]);
          }
          double z = 0;
          for (double& x : s) z += (x = std::exp(x - mx));
          for (int u = 0; u <= t; ++u) {
            for (int i = 0; i < hd; ++i) attn[hh * hd + i] += s[u] / z * v[u][kvh * hd + i];
          }
        }
        auto o = MatVec(wo, attn, hid);
        for (int i = 0; i < hid; ++i) h[t][i] += o[i];
      }
      for (int t = 0; t < T; ++t) {
        auto x = Norm(h[t], post_norm);
        std::vector<double> out(hid, 0.0);
        if (!n.router.empty()) {
          auto logits = MatVec(Get(n.router), x, c_.num_experts);
          double mx = *std::max_element(logits.begin(), logits.end()), z = 0;
          for (double& p : logits) z += (p = std::exp(p - mx));
          for (double& p : logits) p /= z;
          std::vector<int> idx(c_.num_experts);
          std::iota(idx.begin(), idx.end(), 0);
          std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return logits[a] > logits[b]; });
          double sum = 0;
          for (int j = 0; j < c_.num_experts_per_tok; ++j) sum += logits[idx[j]];
          // HF: Mixtral always renormalises; Qwen MoE only with norm_topk_prob.
          const bool renormalize =
              c_.architecture == model::Architecture::kMixtral || c_.norm_topk_prob;
          for (int j = 0; j < c_.num_experts_per_tok; ++j) {
            double wgt = logits[idx[j]] / (renormalize ? sum : 1.0);
            model::ExpertTensorNames en = arch_.ExpertNames(l, idx[j]);
            auto y = Ffn(en.gate, en.up, en.down, x, c_.expert_intermediate_size);
            for (int i = 0; i < hid; ++i) out[i] += wgt * y[i];
          }
          if (!n.shared_gate.empty()) {
            auto y = Ffn(n.shared_gate, n.shared_up, n.shared_down, x,
                         c_.shared_expert_intermediate_size);
            double g = MatVec(Get(n.shared_expert_gate), x, 1)[0];
            g = 1 / (1 + std::exp(-g));
            for (int i = 0; i < hid; ++i) out[i] += g * y[i];
          }
        } else {
          out = Ffn(n.mlp_gate, n.mlp_up, n.mlp_down, x, c_.intermediate_size);
        }
        for (int i = 0; i < hid; ++i) h[t][i] += out[i];
      }
    }
    auto x = Norm(h[T - 1], Get("model.norm.weight"));
    auto logits = MatVec(Get("lm_head.weight"), x, c_.vocab_size);
    double mx = *std::max_element(logits.begin(), logits.end()), z = 0;
    for (double p : logits) z += std::exp(p - mx);
    for (double& p : logits) p = p - mx - std::log(z);
    return logits;
  }

 private:
  const model::ModelConfig& c_;
  const model::ModelArchitecture& arch_;
  const model::WeightStore& w_;
};

class ModelRunnerTest : public testing::TestWithParam<model::Architecture> {};

TEST_P(ModelRunnerTest, MatchesNaiveFloat64Forward) {
  std::string dir = testing::TempDir() + "/runner_" +
                    std::string(model::ArchitectureName(GetParam()));
  model::DemoModelParams p;
  p.out_dir = dir;
  p.arch = GetParam();
  p.dtype = DType::kF32;
  p.seed = 77;
  ASSERT_TRUE(model::WriteDemoModel(p).ok());
  auto m = LocalModel::Open(dir);
  ASSERT_TRUE(m.ok()) << m.status();
  auto arch = model::CreateArchitecture((*m)->config());
  auto store = model::WeightStore::Open(dir);
  ASSERT_TRUE(arch.ok() && store.ok());
  Ref ref((*m)->config(), **arch, **store);

  std::vector<int32_t> prompt = {3, 77, 200, 14, 15, 92, 65, 300, 301, 7, 11};
  // Prefill the whole prompt, scoring every position (teacher forcing), then compare the last
  // position's full distribution via its top-20.
  auto engine = (*m)->NewEngine({});
  ASSERT_TRUE(engine.ok());
  SequenceRequest req;
  req.prompt = prompt;
  req.max_tokens = 1;
  req.sampling.temperature = 0;
  req.sampling.top_logprobs = kMaxTopLogprobs;
  ASSERT_TRUE((*engine)->Add(1, req).ok());
  std::vector<GeneratedToken> got;
  while ((*engine)->HasWork()) {
    auto ups = (*engine)->Step();
    ASSERT_TRUE(ups.ok());
    for (auto& u : *ups) got.insert(got.end(), u.tokens.begin(), u.tokens.end());
  }
  ASSERT_EQ(got.size(), 1u);
  std::vector<double> want = ref.LastLogprobs(prompt);
  int argmax = std::max_element(want.begin(), want.end()) - want.begin();
  EXPECT_EQ(got[0].id, argmax);
  ASSERT_EQ(got[0].top.size(), static_cast<size_t>(kMaxTopLogprobs));
  for (const auto& t : got[0].top) EXPECT_NEAR(t.logprob, want[t.id], 1e-4) << "id " << t.id;

  // Token-by-token: prefill one token, then decode the rest as forced prompt tokens (chunked
  // prefill with budget 1 takes the decode-shaped path through the cache).
  EngineOptions one;
  one.max_batch_tokens = 1;
  auto e2 = (*m)->NewEngine(one);
  ASSERT_TRUE(e2.ok());
  SequenceRequest r2 = req;
  ASSERT_TRUE((*e2)->Add(2, r2).ok());
  std::vector<GeneratedToken> got2;
  while ((*e2)->HasWork()) {
    auto ups = (*e2)->Step();
    ASSERT_TRUE(ups.ok());
    for (auto& u : *ups) got2.insert(got2.end(), u.tokens.begin(), u.tokens.end());
  }
  ASSERT_EQ(got2.size(), 1u);
  EXPECT_EQ(got2[0].id, got[0].id);
  for (size_t i = 0; i < got2[0].top.size(); ++i) {
    EXPECT_NEAR(got2[0].top[i].logprob, got[0].top[i].logprob, 1e-5);
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, ModelRunnerTest,
                         testing::Values(model::Architecture::kMixtral,
                                         model::Architecture::kQwen3Moe,
                                         model::Architecture::kQwen2Moe),
                         [](const testing::TestParamInfo<model::Architecture>& i) {
                           return std::string(model::ArchitectureName(i.param));
                         });

}  // namespace
}  // namespace moe::attention
