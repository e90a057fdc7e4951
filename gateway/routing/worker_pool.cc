#include "gateway/routing/worker_pool.h"

#include <algorithm>
#include <deque>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/metrics.h"

namespace moe::gateway {

namespace v1 = ::moe::attention::v1;

std::optional<Placement> PickWorker(absl::Span<const WorkerLoad> loads, int max_running,
                                    int max_queue) {
  std::optional<size_t> best;
  for (size_t i = 0; i < loads.size(); ++i) {
    if (loads[i].running >= max_running) continue;
    if (!best || loads[i].outstanding_tokens < loads[*best].outstanding_tokens) best = i;
  }
  if (best) return Placement{*best, false};
  for (size_t i = 0; i < loads.size(); ++i) {
    if (loads[i].queued >= max_queue) continue;
    if (!best || loads[i].outstanding_tokens < loads[*best].outstanding_tokens) best = i;
  }
  if (best) return Placement{*best, true};
  return std::nullopt;
}

namespace {
class Reactor;
}  // namespace

// One submitted call; also its handle.
class CallState : public GenerateHandle, public std::enable_shared_from_this<CallState> {
 public:
  enum class Phase { kQueued, kRunning, kDone };
  void Cancel() override;

  std::shared_ptr<WorkerPool::Core> core;
  v1::GenerateRequest request;
  GenerateCallbacks callbacks;
  absl::Time submitted;
  absl::Time deadline;
  size_t worker = 0;
  // Guarded by core->mu.
  Phase phase = Phase::kQueued;
  int64_t remaining = 0;  // of cost_tokens, not yet streamed
  Reactor* reactor = nullptr;
  // A running call is cancelled only after StartCall (a cancel before it is remembered here).
  bool started = false;
  bool cancel_requested = false;
};

struct WorkerPool::Core {
  struct Worker {
    std::string address;
    std::unique_ptr<v1::AttentionService::Stub> stub;
    int running = 0;
    std::deque<std::shared_ptr<CallState>> queue;
    int64_t outstanding = 0;
  };
  WorkerPoolOptions options;
  std::vector<Worker> workers;
  absl::Mutex mu;
  int live ABSL_GUARDED_BY(mu) = 0;  // reactors and GetLoad calls not yet finished
  std::vector<Reactor*> reactors ABSL_GUARDED_BY(mu);
  bool closing ABSL_GUARDED_BY(mu) = false;

  prometheus::Gauge* running_gauge = nullptr;
  prometheus::Gauge* waiting_gauge = nullptr;
  prometheus::Histogram* queue_time = nullptr;

  void UpdateGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    int r = 0, q = 0;
    for (const Worker& w : workers) {
      r += w.running;
      q += static_cast<int>(w.queue.size());
    }
    running_gauge->Set(r);
    waiting_gauge->Set(q);
  }
  // Moves queued calls of worker `i` into free running slots (creating their reactors) or,
  // past their deadline, out as expired.
  void DispatchLocked(size_t i, std::vector<std::shared_ptr<CallState>>* start,
                      std::vector<std::shared_ptr<CallState>>* expired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  Reactor* NewReactorLocked(const std::shared_ptr<CallState>& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Outside the lock: reports expired calls and starts the others.
  void Launch(std::vector<std::shared_ptr<CallState>>& start,
              std::vector<std::shared_ptr<CallState>>& expired);
  // Outside the lock: starts the reactor of `s` and applies a cancel that came before.
  void StartCall(const std::shared_ptr<CallState>& s);
};

namespace {

// One running Generate call: streams each message to the caller; deletes itself in OnDone.
class Reactor : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  explicit Reactor(std::shared_ptr<CallState> state) : state_(std::move(state)) {
    context_.set_deadline(absl::ToChronoTime(state_->deadline));
  }
  void TryCancel() { context_.TryCancel(); }
  CallState* state() const { return state_.get(); }
  void Start() {
    WorkerPool::Core::Worker& w = state_->core->workers[state_->worker];
    w.stub->async()->Generate(&context_, &state_->request, this);
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    WorkerPool::Core* core = state_->core.get();
    {
      absl::MutexLock lock(&core->mu);
      const int64_t take = std::min<int64_t>(response_.tokens_size(), state_->remaining);
      state_->remaining -= take;
      core->workers[state_->worker].outstanding -= take;
    }
    if (state_->callbacks.on_message) state_->callbacks.on_message(std::move(response_));
    response_.Clear();
    StartRead(&response_);
  }
  // Everything this callback owns (the call's context and its channel reference, the call
  // states it starts or reports) is released before `live` drops: ~WorkerPool waits for
  // live == 0, so the last gRPC object is destroyed on the thread that destroys the pool, not
  // on a gRPC callback thread racing the process exit.
  void OnDone(const grpc::Status& status) override {
    WorkerPool::Core* core = state_->core.get();  // alive: the pool waits for live == 0
    {
      std::vector<std::shared_ptr<CallState>> start, expired;
      {
        absl::MutexLock lock(&core->mu);
        WorkerPool::Core::Worker& w = core->workers[state_->worker];
        state_->phase = CallState::Phase::kDone;
        state_->reactor = nullptr;
        --w.running;
        w.outstanding -= state_->remaining;
        state_->remaining = 0;
        auto& v = core->reactors;
        v.erase(std::remove(v.begin(), v.end(), this), v.end());
        if (!core->closing) core->DispatchLocked(state_->worker, &start, &expired);
        core->UpdateGaugesLocked();
      }
      if (state_->callbacks.on_done) {
        state_->callbacks.on_done(status.ok() ? absl::OkStatus() : FromGrpcStatus(status));
      }
      core->Launch(start, expired);
    }
    delete this;
    absl::MutexLock lock(&core->mu);
    --core->live;
  }

 private:
  std::shared_ptr<CallState> state_;
  grpc::ClientContext context_;
  v1::GenerateResponse response_;
};

}  // namespace

Reactor* WorkerPool::Core::NewReactorLocked(const std::shared_ptr<CallState>& s) {
  auto* r = new Reactor(s);
  s->phase = CallState::Phase::kRunning;
  s->reactor = r;
  ++workers[s->worker].running;
  ++live;
  reactors.push_back(r);
  return r;
}

void WorkerPool::Core::DispatchLocked(size_t i, std::vector<std::shared_ptr<CallState>>* start,
                                      std::vector<std::shared_ptr<CallState>>* expired) {
  Worker& w = workers[i];
  const absl::Time now = absl::Now();
  while (w.running < options.max_running && !w.queue.empty()) {
    std::shared_ptr<CallState> s = std::move(w.queue.front());
    w.queue.pop_front();
    if (s->deadline <= now) {
      s->phase = CallState::Phase::kDone;
      w.outstanding -= s->remaining;
      s->remaining = 0;
      expired->push_back(std::move(s));
      continue;
    }
    NewReactorLocked(s);
    start->push_back(std::move(s));
  }
}

void WorkerPool::Core::Launch(std::vector<std::shared_ptr<CallState>>& start,
                              std::vector<std::shared_ptr<CallState>>& expired) {
  for (auto& s : expired) {
    if (s->callbacks.on_done) {
      s->callbacks.on_done(absl::DeadlineExceededError("the request timed out in the queue"));
    }
  }
  for (auto& s : start) {
    const absl::Duration waited = absl::Now() - s->submitted;
    queue_time->Observe(absl::ToDoubleSeconds(waited));
    if (s->callbacks.on_start) s->callbacks.on_start(waited);
    StartCall(s);
  }
}

void WorkerPool::Core::StartCall(const std::shared_ptr<CallState>& s) {
  Reactor* r;
  {
    absl::MutexLock lock(&mu);
    r = s->reactor;  // a call cannot end before Start: it is non-null here
  }
  r->Start();
  absl::MutexLock lock(&mu);
  s->started = true;
  if (s->cancel_requested && s->reactor != nullptr) s->reactor->TryCancel();
}

void CallState::Cancel() {
  bool report = false;
  {
    absl::MutexLock lock(&core->mu);
    if (phase == Phase::kDone) return;
    if (phase == Phase::kQueued) {
      auto& q = core->workers[worker].queue;
      q.erase(std::remove(q.begin(), q.end(), shared_from_this()), q.end());
      phase = Phase::kDone;
      core->workers[worker].outstanding -= remaining;
      remaining = 0;
      core->UpdateGaugesLocked();
      report = true;
    } else if (reactor != nullptr) {
      cancel_requested = true;
      if (started) reactor->TryCancel();
    }
  }
  if (report && callbacks.on_done) callbacks.on_done(absl::CancelledError("cancelled"));
}

WorkerPool::WorkerPool(const std::vector<std::string>& addresses, WorkerPoolOptions options)
    : core_(std::make_shared<Core>()) {
  core_->options = options;
  core_->options.max_running = std::max(1, core_->options.max_running);
  core_->options.max_queue = std::max(0, core_->options.max_queue);
  for (const std::string& a : addresses) {
    Core::Worker& w = core_->workers.emplace_back();
    w.address = a;
    // round_robin: an address that resolves to several pods (a headless Kubernetes Service)
    // spreads this entry's calls over all of them instead of pinning one (pick_first). The
    // gateway's admission and least-outstanding-tokens choice then treat the entry as one
    // worker; list per-worker addresses to route by each worker's own load.
    grpc::ChannelArguments args;
    args.SetLoadBalancingPolicyName("round_robin");
    w.stub = v1::AttentionService::NewStub(
        grpc::CreateCustomChannel(a, grpc::InsecureChannelCredentials(), args));
  }
  prometheus::Registry& r = MetricsRegistry();
  core_->running_gauge = &prometheus::BuildGauge()
                              .Name("moe_num_requests_running")
                              .Help("Generate calls the gateway has in flight to attention workers")
                              .Register(r)
                              .Add({});
  core_->waiting_gauge = &prometheus::BuildGauge()
                              .Name("moe_num_requests_waiting")
                              .Help("Generate calls waiting in the gateway's per-worker queues")
                              .Register(r)
                              .Add({});
  core_->queue_time = &prometheus::BuildHistogram()
                           .Name("moe_request_queue_time_seconds")
                           .Help("Time from admission to dispatch to an attention worker")
                           .Register(r)
                           .Add({}, ExponentialBuckets(0.001, 2, 16));
}

WorkerPool::~WorkerPool() {
  std::vector<std::shared_ptr<CallState>> queued;
  {
    absl::MutexLock lock(&core_->mu);
    core_->closing = true;
    for (Core::Worker& w : core_->workers) {
      for (auto& s : w.queue) {
        s->phase = CallState::Phase::kDone;
        queued.push_back(std::move(s));
      }
      w.queue.clear();
    }
    for (Reactor* r : core_->reactors) {
      r->state()->cancel_requested = true;
      if (r->state()->started) r->TryCancel();
    }
    core_->UpdateGaugesLocked();
  }
  for (auto& s : queued) {
    if (s->callbacks.on_done)
      s->callbacks.on_done(absl::CancelledError("the gateway is shutting down"));
  }
  absl::MutexLock lock(&core_->mu);
  core_->mu.Await(absl::Condition(
      +[](int* live) { return *live == 0; }, &core_->live));
}

size_t WorkerPool::size() const { return core_->workers.size(); }
const std::string& WorkerPool::address(size_t i) const { return core_->workers[i].address; }
const WorkerPoolOptions& WorkerPool::options() const { return core_->options; }

std::vector<WorkerLoad> WorkerPool::Loads() const {
  absl::MutexLock lock(&core_->mu);
  std::vector<WorkerLoad> v;
  for (const Core::Worker& w : core_->workers) {
    v.push_back(WorkerLoad{w.running, static_cast<int>(w.queue.size()), w.outstanding});
  }
  return v;
}

absl::StatusOr<std::shared_ptr<GenerateHandle>> WorkerPool::Submit(v1::GenerateRequest request,
                                                                   int64_t cost_tokens,
                                                                   absl::Time deadline,
                                                                   GenerateCallbacks callbacks) {
  auto s = std::make_shared<CallState>();
  s->core = core_;
  s->request = std::move(request);
  s->callbacks = std::move(callbacks);
  s->submitted = absl::Now();
  s->deadline = deadline;
  s->remaining = std::max<int64_t>(0, cost_tokens);
  Reactor* start = nullptr;
  {
    absl::MutexLock lock(&core_->mu);
    if (core_->workers.empty()) return absl::UnavailableError("no attention worker configured");
    if (core_->closing) return absl::UnavailableError("the gateway is shutting down");
    std::vector<WorkerLoad> loads;
    for (const Core::Worker& w : core_->workers) {
      loads.push_back(WorkerLoad{w.running, static_cast<int>(w.queue.size()), w.outstanding});
    }
    std::optional<Placement> p =
        PickWorker(loads, core_->options.max_running, core_->options.max_queue);
    if (!p) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the server is overloaded: every attention worker's queue is full (",
                       core_->options.max_running, " running and ", core_->options.max_queue,
                       " queued per worker); retry later"));
    }
    s->worker = p->worker;
    core_->workers[p->worker].outstanding += s->remaining;
    if (p->queued) {
      s->phase = CallState::Phase::kQueued;
      core_->workers[p->worker].queue.push_back(s);
    } else {
      start = core_->NewReactorLocked(s);
    }
    core_->UpdateGaugesLocked();
  }
  if (start != nullptr) {
    core_->queue_time->Observe(0);
    if (s->callbacks.on_start) s->callbacks.on_start(absl::ZeroDuration());
    core_->StartCall(s);
  }
  return std::shared_ptr<GenerateHandle>(s);
}

void WorkerPool::GetLoad(size_t i, absl::Duration timeout, LoadDone done) {
  struct State {
    grpc::ClientContext context;
    v1::GetLoadRequest request;
    v1::GetLoadResponse response;
  };
  auto state = std::make_shared<State>();
  state->context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  Core* c = core_.get();  // alive: the pool waits for live == 0
  {
    absl::MutexLock lock(&c->mu);
    ++c->live;
  }
  // As in Reactor::OnDone: the context (which holds the channel) and the callback are released
  // before `live` drops.
  c->workers[i].stub->async()->GetLoad(
      &state->context, &state->request, &state->response,
      [c, state, done = std::move(done)](grpc::Status s) mutable {
        if (s.ok()) {
          done(state->response);
        } else {
          done(FromGrpcStatus(s));
        }
        done = nullptr;
        state.reset();
        absl::MutexLock lock(&c->mu);
        --c->live;
      });
}

}  // namespace moe::gateway
