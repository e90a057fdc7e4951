#include "attention_service/engine/model_runner.h"

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "attention_service/kv_cache/paged_attention.h"
#include "common/status.h"
#include "model/kernels/activations.h"
#include "model/kernels/thread_pool.h"

namespace moe::attention {

using kernels::LinearEpilogue;
using kernels::MatrixView;
using kernels::PackedLinear;
using model::TensorView;

struct ModelRunner::Layer {
  std::vector<float> input_norm, post_norm, q_norm, k_norm;
  std::optional<PackedLinear> qkv;  // [q | k | v] stacked
  std::vector<float> qkv_bias;      // empty = none
  std::vector<float> o_bias;        // empty = none
  std::optional<PackedLinear> o;
  bool moe = false;
  std::optional<PackedLinear> router;
  std::vector<float> router_bias;
  // Shared expert (MoE layers) or dense MLP (other layers): [gate | up] stacked, then down.
  std::optional<PackedLinear> mlp_gate_up, mlp_down;
  int mlp_inter = 0;
  std::vector<float> shared_expert_gate;  // [hidden]; empty = ungated
};

void RmsNorm(const float* x, const float* w, int rows, int n, double eps, float* out,
             int64_t stride) {
  if (stride < 0) stride = n;
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + r * stride;
    float* orow = out + r * stride;
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    float inv = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
    for (int i = 0; i < n; ++i) orow[i] = w[i] * (xr[i] * inv);
  }
}

namespace {

MatrixView View(const TensorView& t) {
  return MatrixView{t.dtype, t.data, t.shape.size() > 0 ? t.shape[0] : 0,
                    t.shape.size() > 1 ? t.shape[1] : 1};
}

absl::StatusOr<TensorView> GetShaped(const model::WeightStore& w, const std::string& name,
                                     std::vector<int64_t> shape) {
  MOE_ASSIGN_OR_RETURN(TensorView t, w.Get(name));
  MOE_RETURN_IF_ERROR(model::CheckShape(t, shape));
  return t;
}

absl::StatusOr<std::vector<float>> GetF32(const model::WeightStore& w, const std::string& name,
                                          std::vector<int64_t> shape) {
  MOE_ASSIGN_OR_RETURN(TensorView t, w.Get(name));
  return model::ToF32(t, shape);
}

absl::StatusOr<PackedLinear> Linear(const model::WeightStore& w, const std::string& name,
                                    int64_t out, int64_t in,
                                    const kernels::PackedLinearOptions& opts) {
  MOE_ASSIGN_OR_RETURN(TensorView t, GetShaped(w, name, {out, in}));
  return PackedLinear::Create(View(t), opts);
}

absl::StatusOr<PackedLinear> Stacked(const model::WeightStore& w,
                                     const std::vector<std::string>& names,
                                     const std::vector<int64_t>& rows, int64_t in,
                                     const kernels::PackedLinearOptions& opts) {
  std::vector<MatrixView> parts;
  for (size_t i = 0; i < names.size(); ++i) {
    MOE_ASSIGN_OR_RETURN(TensorView t, GetShaped(w, names[i], {rows[i], in}));
    parts.push_back(View(t));
  }
  return PackedLinear::CreateStacked(parts, opts);
}

}  // namespace

bool ModelRunner::IsDenseTensor(std::string_view name) {
  return name.find(".experts.") == std::string_view::npos;
}

ModelRunner::ModelRunner(const model::ModelConfig& config) : config_(config) {}
ModelRunner::~ModelRunner() = default;

namespace {

// The dense projections (attention, shared experts, LM head) carry activations as BF16 hi+lo
// (PackedLinearOptions::split_activation_max_rows) only up to this many rows: the split doubles
// the kernel's rows, which is free while a product is bound by weight streaming (up to 3 rows
// on this kernel) but makes 4-16 rows compute-bound (bench/README.md: +35% at 4 rows, +75% at
// 8), and a decode step at batch 8 runs every dense matrix with 8 rows. Batch-1 decode and
// teacher-forced prompts keep their precision; batched decode rounds the dense layers'
// activations to BF16 as llama.cpp does at every batch. The routed experts keep their own
// setting (the SwiGLU intermediate is what flips routing near-ties). MOE_DENSE_SPLIT_MAX_ROWS
// overrides it (A/B measurements).
int64_t DenseSplitMaxRows() {
  static const int64_t v = [] {
    const char* env = std::getenv("MOE_DENSE_SPLIT_MAX_ROWS");
    return env != nullptr && *env != '\0' ? int64_t{std::max(0, std::atoi(env))} : int64_t{3};
  }();
  return v;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Load(
    const model::ModelConfig& config, const model::ModelArchitecture& arch,
    const model::WeightStore& weights, const kernels::PackedLinearOptions& opts_in) {
  kernels::PackedLinearOptions opts = opts_in;
  opts.split_activation_max_rows =
      std::min(opts.split_activation_max_rows, DenseSplitMaxRows());
  if (config.hidden_act != "silu") {
    return absl::UnimplementedError(absl::StrCat("hidden_act ", config.hidden_act));
  }
  std::unique_ptr<ModelRunner> r(new ModelRunner(config));
  r->router_ = arch.Router();
  MOE_RETURN_IF_ERROR(model::ValidateRouterSpec(r->router_));
  const int64_t v = config.vocab_size, hid = config.hidden_size;
  MOE_ASSIGN_OR_RETURN(TensorView embed,
                       GetShaped(weights, std::string(arch.kEmbedTokens), {v, hid}));
  if (embed.dtype != DType::kF32 && embed.dtype != DType::kBF16 && embed.dtype != DType::kF16) {
    return absl::InvalidArgumentError("embed_tokens: unsupported dtype");
  }
  r->embed_dtype_ = embed.dtype;
  r->embed_.assign(embed.data, embed.data + embed.nbytes);
  MOE_ASSIGN_OR_RETURN(r->final_norm_, GetF32(weights, std::string(arch.kFinalNorm), {hid}));
  std::string head_name(config.tie_word_embeddings ? arch.kEmbedTokens : arch.kLmHead);
  MOE_ASSIGN_OR_RETURN(PackedLinear head, Linear(weights, head_name, v, hid, opts));
  r->lm_head_.emplace(std::move(head));
  r->weight_bytes_ = r->embed_.size() + r->lm_head_->packed_bytes();
  MOE_ASSIGN_OR_RETURN(RopeTable rope, RopeTable::Create(config.head_dim, config.rope_theta,
                                                         config.max_position_embeddings));
  r->rope_.emplace(std::move(rope));
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    MOE_RETURN_IF_ERROR(r->LoadLayer(arch, weights, l, opts));
  }
  r->expert_tokens_.assign(static_cast<size_t>(config.num_hidden_layers) * config.num_experts, 0);
  return r;
}

absl::Status ModelRunner::LoadLayer(const model::ModelArchitecture& arch,
                                    const model::WeightStore& w, int index,
                                    const kernels::PackedLinearOptions& opts) {
  const model::LayerTensorNames n = arch.LayerNames(index);
  const int64_t hid = config_.hidden_size, hd = config_.head_dim;
  const int64_t qd = config_.num_attention_heads * hd, kvd = config_.num_key_value_heads * hd;
  auto layer = std::make_unique<Layer>();
  MOE_ASSIGN_OR_RETURN(layer->input_norm, GetF32(w, n.input_norm, {hid}));
  MOE_ASSIGN_OR_RETURN(layer->post_norm, GetF32(w, n.post_attention_norm, {hid}));
  MOE_ASSIGN_OR_RETURN(PackedLinear qkv, Stacked(w, {n.q, n.k, n.v}, {qd, kvd, kvd}, hid, opts));
  layer->qkv.emplace(std::move(qkv));
  if (!n.q_bias.empty()) {
    MOE_ASSIGN_OR_RETURN(std::vector<float> qb, GetF32(w, n.q_bias, {qd}));
    MOE_ASSIGN_OR_RETURN(std::vector<float> kb, GetF32(w, n.k_bias, {kvd}));
    MOE_ASSIGN_OR_RETURN(std::vector<float> vb, GetF32(w, n.v_bias, {kvd}));
    layer->qkv_bias = qb;
    layer->qkv_bias.insert(layer->qkv_bias.end(), kb.begin(), kb.end());
    layer->qkv_bias.insert(layer->qkv_bias.end(), vb.begin(), vb.end());
  }
  if (!n.q_norm.empty()) {
    MOE_ASSIGN_OR_RETURN(layer->q_norm, GetF32(w, n.q_norm, {hd}));
    MOE_ASSIGN_OR_RETURN(layer->k_norm, GetF32(w, n.k_norm, {hd}));
  }
  MOE_ASSIGN_OR_RETURN(PackedLinear o, Linear(w, n.o, hid, qd, opts));
  if (!n.o_bias.empty()) {
    MOE_ASSIGN_OR_RETURN(layer->o_bias, GetF32(w, n.o_bias, {hid}));
  }
  layer->o.emplace(std::move(o));
  weight_bytes_ += layer->qkv->packed_bytes() + layer->o->packed_bytes();
  layer->moe = !n.router.empty();
  if (layer->moe) {
    // The router is tiny ([experts, hidden]) but decides which experts run: computing it in
    // F32 (BF16/F16 weights widened exactly) keeps bf16 activation rounding from flipping
    // near-tied routing decisions.
    MOE_ASSIGN_OR_RETURN(std::vector<float> router_f32,
                         GetF32(w, n.router, {config_.num_experts, hid}));
    MOE_ASSIGN_OR_RETURN(PackedLinear router,
                         PackedLinear::Create(DType::kF32, router_f32.data(),
                                              config_.num_experts, hid, opts));
    layer->router.emplace(std::move(router));
    if (!n.router_bias.empty()) {
      MOE_ASSIGN_OR_RETURN(layer->router_bias, GetF32(w, n.router_bias, {config_.num_experts}));
    }
  }
  std::string gate = layer->moe ? n.shared_gate : n.mlp_gate;
  std::string up = layer->moe ? n.shared_up : n.mlp_up;
  std::string down = layer->moe ? n.shared_down : n.mlp_down;
  if (!gate.empty()) {
    layer->mlp_inter = layer->moe ? config_.shared_expert_intermediate_size
                                  : config_.intermediate_size;
    const int64_t inter = layer->mlp_inter;
    MOE_ASSIGN_OR_RETURN(PackedLinear gu, Stacked(w, {gate, up}, {inter, inter}, hid, opts));
    layer->mlp_gate_up.emplace(std::move(gu));
    MOE_ASSIGN_OR_RETURN(PackedLinear d, Linear(w, down, hid, inter, opts));
    layer->mlp_down.emplace(std::move(d));
    weight_bytes_ += layer->mlp_gate_up->packed_bytes() + layer->mlp_down->packed_bytes();
    if (!n.shared_expert_gate.empty()) {
      MOE_ASSIGN_OR_RETURN(layer->shared_expert_gate, GetF32(w, n.shared_expert_gate, {1, hid}));
    }
  }
  layers_.push_back(std::move(layer));
  return absl::OkStatus();
}

// One lane's chunks and scratch buffers.
struct ModelRunner::Lane {
  absl::Span<const ForwardChunk> chunks;
  int rows = 0;        // tokens in `chunks`
  std::vector<int> positions;
  std::vector<float> h, x, qkv, q, attn, tmp, tmp2, moe_out, router_logits;
  model::Routing routing;
  DispatchMemory dispatch;  // this Forward's, for this lane's tokens (reset per Forward)
  int head_offset = 0;      // first row of this lane's logits rows in the batch
  absl::Status status;
};

// Shared by the lanes of one micro-batched Forward.
struct ModelRunner::LaneSync {
  // The compute baton: held by a lane whenever it computes (always, except inside Run when
  // release_in_run). Guards the kernels' thread pool, the KV cache, expert_tokens_ and
  // overlaps_ (and gives the happens-before between the lanes' uses of them).
  absl::Mutex baton;
  absl::Mutex run_mu;          // serialises Run when release_in_run && serialize_run
  bool release_in_run = false;  // experts->ComputesElsewhere()
  bool serialize_run = false;   // !experts->RunIsThreadSafe()
  int in_run = 0;               // lanes inside Run; guarded by baton
};

void ModelRunner::Embed(Lane& lane) {
  const int hid = config_.hidden_size;
  int row = 0;
  for (const ForwardChunk& c : lane.chunks) {
    for (size_t i = 0; i < c.tokens.size(); ++i, ++row) {
      lane.positions[row] = c.start + static_cast<int>(i);
      const size_t base = static_cast<size_t>(c.tokens[i]) * hid;
      float* dst = &lane.h[static_cast<size_t>(row) * hid];
      switch (embed_dtype_) {
        case DType::kF32:
          std::memcpy(dst, embed_.data() + base * 4, hid * sizeof(float));
          break;
        case DType::kBF16: {
          const uint16_t* src = reinterpret_cast<const uint16_t*>(embed_.data()) + base;
          for (int j = 0; j < hid; ++j) dst[j] = Bf16ToF32(src[j]);
          break;
        }
        default: {
          const uint16_t* src = reinterpret_cast<const uint16_t*>(embed_.data()) + base;
          for (int j = 0; j < hid; ++j) dst[j] = F16ToF32(src[j]);
          break;
        }
      }
    }
  }
}

absl::Status ModelRunner::Attention(Lane& lane, const Layer& layer, int index, KvCache* cache) {
  const int hid = config_.hidden_size, hd = config_.head_dim;
  const int nh = config_.num_attention_heads, nkv = config_.num_key_value_heads;
  const int64_t qd = static_cast<int64_t>(nh) * hd, kvd = static_cast<int64_t>(nkv) * hd;
  const int64_t stride = qd + 2 * kvd;
  const double eps = config_.rms_norm_eps;
  const int rows = lane.rows;
  RmsNorm(lane.h.data(), layer.input_norm.data(), rows, hid, eps, lane.x.data());
  LinearEpilogue ep;
  ep.bias = layer.qkv_bias.empty() ? nullptr : layer.qkv_bias.data();
  layer.qkv->Forward(lane.x.data(), rows, lane.qkv.data(), ep);
  if (!layer.q_norm.empty()) {
    for (int r = 0; r < rows; ++r) {
      float* row = &lane.qkv[r * stride];
      RmsNorm(row, layer.q_norm.data(), nh, hd, eps, row);
      RmsNorm(row + qd, layer.k_norm.data(), nkv, hd, eps, row + qd);
    }
  }
  rope_->ApplyStrided(lane.qkv.data(), rows, nh, stride, lane.positions);
  rope_->ApplyStrided(lane.qkv.data() + qd, rows, nkv, stride, lane.positions);
  std::vector<AttentionChunk> achunks;
  achunks.reserve(lane.chunks.size());
  int row = 0;
  for (const ForwardChunk& c : lane.chunks) {
    const int n = static_cast<int>(c.tokens.size());
    for (int i = 0; i < n; ++i) {
      const float* r = &lane.qkv[(row + i) * stride];
      cache->Append(index, c.seq, c.start + i, r + qd, r + qd + kvd);
      std::memcpy(&lane.q[(row + i) * qd], r, qd * sizeof(float));
    }
    achunks.push_back(AttentionChunk{c.seq, c.start, n, row});
    row += n;
  }
  // Work items (chunk, kv head, query-row tile) spread over the kernels' thread pool.
  PagedAttentionOptions opts;
  opts.parallel_for = [](int n, const std::function<void(int)>& fn) {
    kernels::ParallelFor(n, [&fn](int64_t i) { fn(static_cast<int>(i)); });
  };
  PagedAttention(*cache, index, achunks, nh, lane.q.data(), lane.attn.data(), opts);
  LinearEpilogue acc;
  acc.accumulate = true;
  acc.bias = layer.o_bias.empty() ? nullptr : layer.o_bias.data();
  layer.o->Forward(lane.attn.data(), rows, lane.h.data(), acc);
  return absl::OkStatus();
}

absl::Status ModelRunner::Mlp(Lane& lane, const Layer& layer, int index,
                              ExpertExecutor* experts, LaneSync* sync) {
  const int hid = config_.hidden_size;
  const int rows = lane.rows;
  RmsNorm(lane.h.data(), layer.post_norm.data(), rows, hid, config_.rms_norm_eps, lane.x.data());
  LinearEpilogue acc;
  acc.accumulate = true;
  if (layer.moe) {
    const int e = config_.num_experts;
    layer.router->Forward(lane.x.data(), rows, lane.router_logits.data());
    model::Route(router_, lane.router_logits.data(), rows, layer.router_bias, &lane.routing);
    for (int32_t id : lane.routing.experts) ++expert_tokens_[static_cast<size_t>(index) * e + id];
    absl::Status run;
    if (sync != nullptr && sync->release_in_run) {
      // Hand the baton to another lane while this one's experts compute elsewhere.
      ++sync->in_run;
      sync->baton.Unlock();
      if (sync->serialize_run) sync->run_mu.Lock();
      run = experts->Run(index, lane.x.data(), hid, lane.routing, lane.moe_out.data(),
                         &lane.dispatch);
      if (sync->serialize_run) sync->run_mu.Unlock();
      sync->baton.Lock();
      --sync->in_run;
      if (sync->in_run > 0) ++overlaps_;  // this lane now computes while another waits
    } else {
      run = experts->Run(index, lane.x.data(), hid, lane.routing, lane.moe_out.data(),
                         &lane.dispatch);
    }
    MOE_RETURN_IF_ERROR(run);
    for (size_t i = 0; i < static_cast<size_t>(rows) * hid; ++i) lane.h[i] += lane.moe_out[i];
  }
  if (layer.mlp_gate_up) {
    const int inter = layer.mlp_inter;
    layer.mlp_gate_up->Forward(lane.x.data(), rows, lane.tmp.data());
    kernels::SiluMulStacked(lane.tmp.data(), rows, inter, lane.tmp.data());
    if (layer.shared_expert_gate.empty()) {
      layer.mlp_down->Forward(lane.tmp.data(), rows, lane.h.data(), acc);
    } else {
      // Qwen2Moe: h += sigmoid(x . shared_expert_gate) * shared_expert(x).
      layer.mlp_down->Forward(lane.tmp.data(), rows, lane.tmp2.data());
      for (int r = 0; r < rows; ++r) {
        const float* xr = &lane.x[static_cast<size_t>(r) * hid];
        double dot = 0;
        for (int j = 0; j < hid; ++j) dot += static_cast<double>(xr[j]) * layer.shared_expert_gate[j];
        float g = static_cast<float>(1.0 / (1.0 + std::exp(-dot)));
        kernels::Axpy(g, &lane.tmp2[static_cast<size_t>(r) * hid], hid,
                      &lane.h[static_cast<size_t>(r) * hid]);
      }
    }
  }
  return absl::OkStatus();
}

namespace {

// Rows of logits the chunks want (ForwardChunk::logits).
int LogitRows(absl::Span<const ForwardChunk> chunks) {
  int rows = 0;
  for (const ForwardChunk& c : chunks) {
    rows += c.logits == ForwardChunk::Logits::kAll    ? static_cast<int>(c.tokens.size())
            : c.logits == ForwardChunk::Logits::kLast ? 1
                                                      : 0;
  }
  return rows;
}

}  // namespace

absl::Status ModelRunner::RunLane(Lane& lane, KvCache* cache, ExpertExecutor* experts,
                                  LaneSync* sync, float* head_rows) {
  const int hid = config_.hidden_size, hd = config_.head_dim;
  const int64_t qd = static_cast<int64_t>(config_.num_attention_heads) * hd;
  const int64_t kvd = static_cast<int64_t>(config_.num_key_value_heads) * hd;
  lane.rows = 0;
  for (const ForwardChunk& c : lane.chunks) lane.rows += static_cast<int>(c.tokens.size());
  const size_t r = lane.rows;
  int inter = config_.expert_intermediate_size;
  for (const auto& l : layers_) inter = std::max(inter, l->mlp_inter);
  lane.positions.resize(r);
  lane.h.resize(r * hid);
  lane.x.resize(r * hid);
  lane.qkv.resize(r * (qd + 2 * kvd));
  lane.q.resize(r * qd);
  lane.attn.resize(r * qd);
  lane.tmp.resize(r * 2 * inter);
  lane.tmp2.resize(r * hid);
  lane.moe_out.resize(r * hid);
  lane.router_logits.resize(r * std::max(config_.num_experts, 1));
  Embed(lane);
  lane.dispatch.Reset();
  for (int l = 0; l < static_cast<int>(layers_.size()); ++l) {
    MOE_RETURN_IF_ERROR(Attention(lane, *layers_[l], l, cache));
    MOE_RETURN_IF_ERROR(Mlp(lane, *layers_[l], l, experts, sync));
  }
  // The rows that want logits go to the head (final norm + LM head, run once per Forward).
  int out_row = 0, row = 0;
  for (const ForwardChunk& c : lane.chunks) {
    const int n = static_cast<int>(c.tokens.size());
    int first = c.logits == ForwardChunk::Logits::kAll ? 0 : n - 1;
    if (c.logits != ForwardChunk::Logits::kNone) {
      for (int i = first; i < n; ++i, ++out_row) {
        std::memcpy(head_rows + static_cast<size_t>(out_row) * hid,
                    &lane.h[static_cast<size_t>(row + i) * hid], hid * sizeof(float));
      }
    }
    row += n;
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::Forward(absl::Span<const ForwardChunk> chunks, KvCache* cache,
                                  ExpertExecutor* experts, std::vector<float>* logits,
                                  int micro_batches, int micro_batch_min_tokens) {
  std::vector<int> tokens_per_chunk;
  tokens_per_chunk.reserve(chunks.size());
  for (const ForwardChunk& c : chunks) {
    const int n = static_cast<int>(c.tokens.size());
    if (n == 0) return absl::InvalidArgumentError("forward chunk without tokens");
    for (int32_t t : c.tokens) {
      if (t < 0 || t >= config_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("token id ", t, " outside [0, ",
                                                       config_.vocab_size, ")"));
      }
    }
    const BlockTable* table = cache->Table(c.seq);
    if (table == nullptr || table->num_tokens < c.start + n) {
      return absl::FailedPreconditionError("forward chunk positions are not reserved");
    }
    if (c.start + n > rope_->max_positions()) {
      return absl::InvalidArgumentError("position beyond max_position_embeddings");
    }
    tokens_per_chunk.push_back(n);
  }
  const std::vector<int> bounds =
      SplitMicroBatches(tokens_per_chunk, micro_batches, micro_batch_min_tokens);
  const int num_lanes = std::max(static_cast<int>(bounds.size()) - 1, 1);
  while (static_cast<int>(lanes_.size()) < num_lanes) lanes_.push_back(std::make_unique<Lane>());
  const int hid = config_.hidden_size;
  const int logit_rows = LogitRows(chunks);
  head_rows_.resize(static_cast<size_t>(logit_rows) * hid);
  if (num_lanes == 1) {
    lanes_[0]->chunks = chunks;
    MOE_RETURN_IF_ERROR(RunLane(*lanes_[0], cache, experts, nullptr, head_rows_.data()));
  } else {
    int head_offset = 0;
    for (int g = 0; g < num_lanes; ++g) {
      lanes_[g]->chunks = chunks.subspan(bounds[g], bounds[g + 1] - bounds[g]);
      lanes_[g]->head_offset = head_offset;
      head_offset += LogitRows(lanes_[g]->chunks);
    }
    if (lane_threads_ == nullptr) lane_threads_ = std::make_unique<LaneThreads>();
    LaneSync sync;
    sync.release_in_run = experts->ComputesElsewhere();
    sync.serialize_run = !experts->RunIsThreadSafe();
    lane_threads_->Run(num_lanes, [&](int g) {
      Lane& lane = *lanes_[g];
      sync.baton.Lock();
      lane.status = RunLane(lane, cache, experts, &sync,
                            head_rows_.data() + static_cast<size_t>(lane.head_offset) * hid);
      sync.baton.Unlock();
    });
    for (int g = 0; g < num_lanes; ++g) MOE_RETURN_IF_ERROR(lanes_[g]->status);
  }
  // Final norm + LM head once for the whole batch: with micro-batches too, since at decode
  // sizes the head is bound by reading its weights, which one pass does once.
  RmsNorm(head_rows_.data(), final_norm_.data(), logit_rows, hid, config_.rms_norm_eps,
          head_rows_.data());
  logits->resize(static_cast<size_t>(logit_rows) * config_.vocab_size);
  lm_head_->Forward(head_rows_.data(), logit_rows, logits->data());
  return absl::OkStatus();
}

}  // namespace moe::attention
