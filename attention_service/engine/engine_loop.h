// EngineLoop: the attention worker's one scheduling thread ("engine-loop"). It owns an Engine;
// other threads (gRPC reactions) only Submit and Cancel, which enqueue and wake the loop.
// Updates are delivered by calling each sequence's callback on the loop thread: callbacks must
// be quick and must not call back into the loop synchronously except Cancel.
//
// Shutdown: Drain() stops admitting (Submit answers UNAVAILABLE) and waits, bounded, until
// every sequence already submitted has delivered its last update; Stop() then (or at once, for
// a hard stop) aborts whatever is still live and joins the thread.
#ifndef MOE_ATTENTION_SERVICE_ENGINE_ENGINE_LOOP_H_
#define MOE_ATTENTION_SERVICE_ENGINE_ENGINE_LOOP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "attention_service/engine/engine.h"

namespace moe::attention {

class EngineLoop {
 public:
  // Receives every update of one sequence; the last one has finish != kNone (or an error).
  using Callback = std::function<void(const SequenceUpdate&)>;

  explicit EngineLoop(std::unique_ptr<Engine> engine);
  ~EngineLoop();  // Stop()s

  // Queues a sequence. Validation happens on the loop thread: a rejected request gets one
  // update with finish kAbort and the error. Returns UNAVAILABLE after Drain or Stop.
  absl::Status Submit(SeqId id, SequenceRequest request, Callback callback);
  // Drops the sequence; its callback is not called again. Safe from any thread.
  void Cancel(SeqId id);
  // From now on Submit answers UNAVAILABLE; accepted sequences keep running. Idempotent.
  void StopAdmitting();
  // StopAdmitting, then waits until every accepted sequence has finished (its last update
  // delivered, or cancelled) or `timeout` passed. Returns true when none is live. The loop
  // keeps stepping; call Stop() afterwards. Any thread but the loop's; idempotent.
  bool Drain(absl::Duration timeout);
  // Finishes every live sequence with kAbort (UNAVAILABLE) and joins the thread. Thread-safe
  // and idempotent (a second caller waits for the first).
  void Stop();

  // Sequences accepted by Submit and not yet finished (includes queued ones).
  int live() const;
  // Sequences Stop() finished with kAbort because they were still live.
  int aborted() const { return aborted_.load(); }

  int running() const { return running_.load(); }
  int waiting() const { return waiting_.load(); }
  double kv_cache_usage() const { return kv_usage_.load(); }

 private:
  struct Pending {
    SeqId id;
    SequenceRequest request;
    Callback callback;
  };
  void Run();

  std::unique_ptr<Engine> engine_;  // loop thread only
  absl::flat_hash_map<SeqId, Callback> callbacks_;  // loop thread only

  mutable absl::Mutex mu_;
  std::vector<Pending> inbox_ ABSL_GUARDED_BY(mu_);
  std::vector<SeqId> cancels_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  // Accepted and not finished: +1 in Submit, -1 on the loop thread when a sequence's last
  // update went out (finish, error, rejection) or it was cancelled.
  int live_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Mutex stop_mu_;  // serialises Stop (join)

  std::atomic<int> running_{0}, waiting_{0};
  std::atomic<double> kv_usage_{0.0};
  std::atomic<int> aborted_{0};
  std::thread thread_;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_ENGINE_ENGINE_LOOP_H_
