#include "attention_service/engine/engine_loop.h"

#include <pthread.h>

#include <utility>

namespace moe::attention {

EngineLoop::EngineLoop(std::unique_ptr<Engine> engine) : engine_(std::move(engine)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "engine-loop");
    Run();
  });
}

EngineLoop::~EngineLoop() { Stop(); }

absl::Status EngineLoop::Submit(SeqId id, SequenceRequest request, Callback callback) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("engine is shutting down");
  if (draining_) return absl::UnavailableError("attention worker is draining (shutting down)");
  inbox_.push_back(Pending{id, std::move(request), std::move(callback)});
  ++live_;
  return absl::OkStatus();
}

void EngineLoop::Cancel(SeqId id) {
  absl::MutexLock lock(&mu_);
  cancels_.push_back(id);
}

void EngineLoop::StopAdmitting() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool EngineLoop::Drain(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return live_ == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

int EngineLoop::live() const {
  absl::MutexLock lock(&mu_);
  return live_;
}

void EngineLoop::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void EngineLoop::Run() {
  for (;;) {
    std::vector<Pending> inbox;
    std::vector<SeqId> cancels;
    bool stopping;
    const bool busy = engine_->HasWork();  // read here: conditions may run on other threads
    {
      absl::MutexLock lock(&mu_);
      // Sleep (not spin) until there is something to do.
      auto ready = [this, busy]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return busy || stopping_ || !inbox_.empty() || !cancels_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      inbox.swap(inbox_);
      cancels.swap(cancels_);
      stopping = stopping_;
    }
    int finished = 0;  // sequences whose last update went out (or were cancelled) this round
    for (SeqId id : cancels) {
      engine_->Cancel(id);
      finished += static_cast<int>(callbacks_.erase(id));
    }
    for (Pending& p : inbox) {
      absl::Status st = stopping ? absl::UnavailableError("engine is shutting down")
                                 : engine_->Add(p.id, std::move(p.request));
      if (!st.ok()) {
        SequenceUpdate u;
        u.id = p.id;
        u.finish = FinishReason::kAbort;
        u.error = st;
        p.callback(u);
        ++finished;
        continue;
      }
      callbacks_[p.id] = std::move(p.callback);
    }
    if (stopping) {
      for (auto& [id, cb] : callbacks_) {
        engine_->Cancel(id);
        SequenceUpdate u;
        u.id = id;
        u.finish = FinishReason::kAbort;
        u.error = absl::UnavailableError("engine is shutting down");
        cb(u);
        ++finished;
        aborted_.fetch_add(1);
      }
      callbacks_.clear();
      absl::MutexLock lock(&mu_);
      live_ -= finished;
      return;
    }
    if (engine_->HasWork()) {
      absl::StatusOr<std::vector<SequenceUpdate>> updates = engine_->Step();
      if (updates.ok()) {
        for (const SequenceUpdate& u : *updates) {
          auto it = callbacks_.find(u.id);
          if (it == callbacks_.end()) continue;
          it->second(u);
          if (u.finish != FinishReason::kNone) {
            callbacks_.erase(it);
            ++finished;
          }
        }
      }
    }
    running_ = engine_->num_running();
    waiting_ = engine_->num_waiting();
    kv_usage_ = engine_->kv_cache_usage();
    if (finished > 0) {
      absl::MutexLock lock(&mu_);
      live_ -= finished;
    }
  }
}

}  // namespace moe::attention
