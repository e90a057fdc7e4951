#include "gateway/routing/worker_pool.h"

#include <algorithm>

#include <grpcpp/grpcpp.h>

#include "common/grpc_status.h"

namespace moe::gateway {

namespace v1 = ::moe::attention::v1;

size_t PickLeastLoaded(absl::Span<const int> in_flight) {
  return static_cast<size_t>(std::min_element(in_flight.begin(), in_flight.end()) -
                             in_flight.begin());
}

// One Generate call: reads the whole stream, then reports and deletes itself (OnDone).
class WorkerPool::GenerateCall : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  GenerateCall(WorkerPool* pool, Worker* worker, v1::GenerateRequest request,
               absl::Duration timeout, GenerateDone done)
      : pool_(pool), worker_(worker), request_(std::move(request)), done_(std::move(done)) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  grpc::ClientContext* context() { return &context_; }
  void Start() {
    worker_->stub->async()->Generate(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    stream_.messages.push_back(std::move(response_));
    response_.Clear();
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    worker_->in_flight.fetch_sub(1);
    if (status.ok()) {
      done_(std::move(stream_));
    } else {
      done_(FromGrpcStatus(status));
    }
    WorkerPool* pool = pool_;
    {
      absl::MutexLock lock(&pool->mu_);
      auto& v = pool->live_contexts_;
      v.erase(std::remove(v.begin(), v.end(), &context_), v.end());
    }
    delete this;
    pool->CallEnded();
  }

 private:
  WorkerPool* pool_;
  Worker* worker_;
  grpc::ClientContext context_;
  v1::GenerateRequest request_;
  v1::GenerateResponse response_;
  GenerateStream stream_;
  GenerateDone done_;
};

WorkerPool::WorkerPool(const std::vector<std::string>& addresses) {
  for (const std::string& a : addresses) {
    auto w = std::make_unique<Worker>();
    w->address = a;
    w->stub = v1::AttentionService::NewStub(
        grpc::CreateChannel(a, grpc::InsecureChannelCredentials()));
    workers_.push_back(std::move(w));
  }
}

WorkerPool::~WorkerPool() {
  absl::MutexLock lock(&mu_);
  closing_ = true;
  for (grpc::ClientContext* c : live_contexts_) c->TryCancel();
  mu_.Await(absl::Condition(
      +[](int* live) { return *live == 0; }, &live_calls_));
}

std::vector<int> WorkerPool::InFlight() const {
  std::vector<int> v;
  for (const auto& w : workers_) v.push_back(w->in_flight.load());
  return v;
}

void WorkerPool::CallStarted() {
  absl::MutexLock lock(&mu_);
  ++live_calls_;
}

void WorkerPool::CallEnded() {
  absl::MutexLock lock(&mu_);
  --live_calls_;
}

void WorkerPool::Generate(v1::GenerateRequest request, absl::Duration timeout,
                          GenerateDone done) {
  if (workers_.empty()) {
    done(absl::UnavailableError("no attention worker configured"));
    return;
  }
  Worker* w;
  {
    // Pick and count under the lock so concurrent requests spread out.
    absl::MutexLock lock(&mu_);
    if (closing_) {
      done(absl::UnavailableError("the gateway is shutting down"));
      return;
    }
    std::vector<int> load;
    for (const auto& x : workers_) load.push_back(x->in_flight.load());
    w = workers_[PickLeastLoaded(load)].get();
    w->in_flight.fetch_add(1);
    ++live_calls_;
  }
  auto* call = new GenerateCall(this, w, std::move(request), timeout, std::move(done));
  {
    absl::MutexLock lock(&mu_);
    live_contexts_.push_back(call->context());
  }
  call->Start();
}

void WorkerPool::GetLoad(size_t i, absl::Duration timeout, LoadDone done) {
  struct State {
    grpc::ClientContext context;
    v1::GetLoadRequest request;
    v1::GetLoadResponse response;
  };
  auto state = std::make_shared<State>();
  state->context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  CallStarted();
  workers_[i]->stub->async()->GetLoad(
      &state->context, &state->request, &state->response,
      [this, state, done = std::move(done)](grpc::Status s) {
        if (s.ok()) {
          done(state->response);
        } else {
          done(FromGrpcStatus(s));
        }
        CallEnded();
      });
}

}  // namespace moe::gateway
