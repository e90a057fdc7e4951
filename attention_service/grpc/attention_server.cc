#include "attention_service/grpc/attention_server.h"

#include <atomic>
#include <deque>

#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"

namespace moe::attention {

namespace v1 = ::moe::attention::v1;

absl::StatusOr<SequenceRequest> FromProto(const v1::GenerateRequest& req) {
  SequenceRequest r;
  r.prompt.assign(req.prompt_ids().begin(), req.prompt_ids().end());
  const v1::SamplingParams& s = req.sampling();
  r.max_tokens = s.max_tokens();
  r.ignore_eos = s.ignore_eos();
  r.stop_token_ids.assign(s.stop_token_ids().begin(), s.stop_token_ids().end());
  r.prompt_logprobs = s.prompt_logprobs();
  r.sampling.temperature = s.temperature();
  r.sampling.top_p = s.top_p() == 0.0f ? 1.0f : s.top_p();  // proto3 default: unset
  r.sampling.top_k = s.top_k();
  if (s.has_seed()) r.sampling.seed = s.seed();
  r.sampling.presence_penalty = s.presence_penalty();
  r.sampling.frequency_penalty = s.frequency_penalty();
  r.sampling.top_logprobs = s.logprobs();
  r.sampling.return_logprob = true;
  if (s.logprobs() < 0) return absl::InvalidArgumentError("logprobs must be >= 0");
  return r;
}

namespace {

void ToProto(const GeneratedToken& t, v1::GeneratedToken* out) {
  out->set_id(t.id);
  out->set_logprob(t.logprob);
  for (const TokenLogprob& a : t.top) {
    v1::TokenLogprob* p = out->add_top();
    p->set_id(a.id);
    p->set_logprob(a.logprob);
  }
}

std::atomic<uint64_t> next_seq_id{1};

// One Generate call. Lifetime: deleted in OnDone. The engine callback holds `state_` (shared),
// which it may touch after the reactor is gone; it never touches the reactor after Finish.
class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  GenerateReactor(EngineLoop* loop, const v1::GenerateRequest& req)
      : loop_(loop), state_(std::make_shared<State>()) {
    state_->reactor = this;
    id_ = next_seq_id.fetch_add(1);
    absl::StatusOr<SequenceRequest> sr = FromProto(req);
    if (!sr.ok()) {
      Finish(ToGrpcStatus(sr.status()));
      return;
    }
    state_->prompt_tokens = static_cast<int>(sr->prompt.size());
    std::shared_ptr<State> state = state_;
    absl::Status st = loop_->Submit(id_, std::move(*sr), [state](const SequenceUpdate& u) {
      state->OnUpdate(u);
    });
    if (!st.ok()) {
      {
        absl::MutexLock lock(&state_->mu);
        state_->finished = true;
      }
      Finish(ToGrpcStatus(st));
    }
  }

  void OnWriteDone(bool ok) override {
    if (!ok) loop_->Cancel(id_);
    state_->AfterWrite(ok);
  }

  void OnCancel() override {
    loop_->Cancel(id_);
    state_->Cancel();
  }

  void OnDone() override { delete this; }

 private:
  struct State {
    absl::Mutex mu;
    GenerateReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
    std::deque<v1::GenerateResponse> queue ABSL_GUARDED_BY(mu);  // front is being written
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool last_queued ABSL_GUARDED_BY(mu) = false;  // the final message is in the queue
    bool finished ABSL_GUARDED_BY(mu) = false;     // Finish was called
    grpc::Status final_status ABSL_GUARDED_BY(mu);
    int prompt_tokens = 0;
    int completion_tokens ABSL_GUARDED_BY(mu) = 0;

    void OnUpdate(const SequenceUpdate& u) {
      GenerateReactor* r = nullptr;
      const v1::GenerateResponse* write = nullptr;
      grpc::Status finish;
      bool do_finish = false;
      {
        absl::MutexLock lock(&mu);
        if (finished || last_queued) return;
        if (!u.error.ok()) {
          final_status = ToGrpcStatus(u.error);
          last_queued = true;
        } else {
          v1::GenerateResponse resp;
          for (const GeneratedToken& t : u.tokens) ToProto(t, resp.add_tokens());
          for (const GeneratedToken& t : u.prompt_logprobs) ToProto(t, resp.add_prompt_logprobs());
          completion_tokens += u.tokens.size();
          if (u.finish != FinishReason::kNone) {
            resp.set_finish_reason(FinishReasonName(u.finish));
            resp.set_prompt_tokens(prompt_tokens);
            resp.set_completion_tokens(completion_tokens);
            last_queued = true;
          }
          queue.push_back(std::move(resp));
        }
        r = reactor;
        if (!writing && !queue.empty()) {
          writing = true;
          write = &queue.front();
        } else if (!writing && last_queued) {
          finished = true;
          do_finish = true;
          finish = final_status;
        }
      }
      if (write != nullptr) r->StartWrite(write);
      if (do_finish) r->Finish(finish);
    }

    void AfterWrite(bool ok) {
      GenerateReactor* r;
      const v1::GenerateResponse* write = nullptr;
      grpc::Status finish;
      bool do_finish = false;
      {
        absl::MutexLock lock(&mu);
        writing = false;
        queue.pop_front();
        r = reactor;
        if (finished) return;
        if (!ok) {
          finished = true;
          do_finish = true;
          finish = grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        } else if (!queue.empty()) {
          writing = true;
          write = &queue.front();
        } else if (last_queued) {
          finished = true;
          do_finish = true;
          finish = final_status;
        }
      }
      if (write != nullptr) r->StartWrite(write);
      if (do_finish) r->Finish(finish);
    }

    void Cancel() {
      GenerateReactor* r;
      {
        absl::MutexLock lock(&mu);
        if (finished) return;
        last_queued = true;  // no more messages
        if (writing) return;  // AfterWrite(false) finishes
        finished = true;
        r = reactor;
      }
      r->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    }
  };

  EngineLoop* loop_;
  std::shared_ptr<State> state_;
  SeqId id_ = 0;
};

}  // namespace

class AttentionServer::Service final : public v1::AttentionService::CallbackService {
 public:
  explicit Service(EngineLoop* loop) : loop_(loop) {}

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* ctx, const v1::GenerateRequest* req) override {
    return new GenerateReactor(loop_, *req);
  }

  grpc::ServerUnaryReactor* GetLoad(grpc::CallbackServerContext* ctx,
                                    const v1::GetLoadRequest* req,
                                    v1::GetLoadResponse* resp) override {
    resp->set_running(loop_->running());
    resp->set_waiting(loop_->waiting());
    resp->set_kv_cache_usage(static_cast<float>(loop_->kv_cache_usage()));
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  EngineLoop* loop_;
};

absl::StatusOr<std::unique_ptr<AttentionServer>> AttentionServer::Start(
    const AttentionServerOptions& options, EngineLoop* loop) {
  std::unique_ptr<AttentionServer> s(new AttentionServer());
  s->service_ = std::make_unique<Service>(loop);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port),
                           grpc::InsecureServerCredentials(), &s->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("attention server cannot listen on ", options.host, ":", options.port));
  }
  s->SetServing(true);
  return s;
}

void AttentionServer::SetServing(bool serving) {
  if (server_ == nullptr) return;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(serving);
    health->SetServingStatus(v1::AttentionService::service_full_name(), serving);
  }
}

void AttentionServer::Shutdown(absl::Duration deadline) {
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + deadline));
    server_->Wait();
    server_.reset();
  }
}

AttentionServer::~AttentionServer() { Shutdown(); }

}  // namespace moe::attention
